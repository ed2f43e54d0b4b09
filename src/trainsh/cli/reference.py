"""docs/reference.md: every `train` and `ow` command with its arguments, and every recipe
statement with its options, read from the real argument parsers and the recipe parser's tables.

Run as `python -m trainsh.cli.reference` (`./dev docs` writes its output to the file). The text
is built here, not by argparse's help formatter, so it does not depend on the terminal's width.
"""

from __future__ import annotations

import argparse
import sys
from trainsh.cli.ow import build_parser as build_ow
from trainsh.cli.parser import build_parser
from trainsh.recipe.model import CLOUDS
from trainsh.recipe.parser import CLOUD_OPTIONS, KEYWORDS, PICK_OPTIONS, SLURM_WAIT_OPTIONS

HEADER = """\
# Command reference

Every `train` and `ow` command with its arguments, and every recipe statement with its
options. This page is generated from the argument parsers and the recipe parser by
`./dev docs`; do not edit it by hand (a test fails when it is stale).
"""

# What each recipe statement looks like and does. The parser keeps the statement names
# (KEYWORDS) and some options in tables, but not a form or a meaning for each, so they are
# written here; a statement the parser knows and this table lacks stops the generator.
STATEMENTS = {
    "var": ("var NAME = value", "a variable; `$NAME` or `${NAME}` in later lines, `--var NAME=VALUE` sets it"),
    "host": ("host NAME = spec", "a host; `@NAME` in later lines, `--host NAME=SPEC` sets it"),
    "storage": ("storage NAME = spec", "a storage; `@NAME:path` in transfers, `--storage NAME=SPEC` sets it"),
    "@": ("@SESSION [timeout=D] > command [&]",
          "run a command in a session's shell (in the background with `&`); default timeout 10m"),
    "->": ("SRC -> DST [delete=true] [exclude=PATTERN]...",
           "copy; each side a local path, `@host:path` or `@storage:path` (rsync's rule for folders)"),
    "wait": ('wait @SESSION "regex" | file=PATH | port=N | idle [timeout=D]',
             "wait for output, a file, an open port, or the session's commands to end"),
    "tmux.open": ("tmux.open @HOST as SESSION", "open a tmux session on a host"),
    "tmux.close": ("tmux.close @SESSION", "close a session"),
    "tmux.config": ("tmux.config @HOST", "apply config `[tmux.options]` to the host's tmux server"),
    "notify": ('notify "message"', "print and log a message, and send it to `notify.urls`"),
    "sleep": ("sleep DURATION", "pause"),
    "pick": ("pick @HOST [clouds=vast,runpod] [options]",
             "take the cheapest matching machine per GPU hour over several clouds (default: every "
             "cloud with an API key) for a placeholder host: your own free one first, else the "
             "cheapest offer that can be had"),
    "pick.cloud": ("{cloud}.pick @HOST [options]", "choose or rent a {title} machine for a placeholder host"),
    "wait.cloud": ("{cloud}.wait [options]", "wait until the machine runs and an ssh login works"),
    "start": ("{cloud}.start [ID]", "start a stopped machine (default: the one the job picked)"),
    "stop": ("{cloud}.stop [ID]", "stop a machine; its disk stays (default: the one the job picked)"),
    "cost": ("{cloud}.cost [ID]", "show $/h, uptime and cost so far (default: the one the job picked)"),
    "slurm.alloc": ("slurm.alloc @LOGIN as NAME [options]",
                    "ask a Slurm cluster for an allocation; it is host `@NAME` from then on"),
    "slurm.wait": ("slurm.wait @NAME [options]", "wait until the allocation runs"),
    "slurm.release": ("slurm.release @NAME", "cancel the allocation and close its sessions"),
}

# The parser's option checkers, by what they take.
_CHECKERS = {"_count_opt": "a whole number from 1", "_num_opt": "a number",
             "_bool_opt": "true or false", "_dur_opt": "a duration (30s, 5m, 1h30m)",
             "_any_opt": "a value", "_clouds_opt": "clouds, comma-separated (vast,runpod)"}


# the order a recipe uses them in
_ACTIONS = {"open": 0, "config": 1, "close": 2, "alloc": 0, "pick": 0, "wait": 1, "start": 2,
            "stop": 3, "cost": 4, "release": 5}


def _code(text: str) -> str:
    """`text` as inline code, whatever backticks it holds."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _flat(text: str | None) -> str:
    return " ".join((text or "").replace("%%", "%").split())  # (argparse's help escapes %)


def _subparsers(p: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)


def _argument(a: argparse.Action) -> str:
    if a.option_strings:
        takes = a.nargs != 0
        metavar = a.metavar or (a.dest.upper() if takes else "")
        names = ", ".join(a.option_strings)
        return f"{names} {metavar}" if takes and metavar else names
    metavar = a.metavar or a.dest
    if a.nargs in ("?",):
        return f"[{metavar}]"
    if a.nargs in ("*", argparse.REMAINDER):
        return f"[{metavar}...]"
    if a.nargs == "+":
        return f"{metavar}..."
    return metavar


def _command(p: argparse.ArgumentParser, path: str, help_text: str | None, out: list[str],
             epilog: str | None = None) -> None:
    sub = _subparsers(p)
    out.append(f"### {path}\n")
    about = _flat(p.description) or _flat(help_text)
    if about:
        out.append(about + "\n")
    if p.usage:  # (ow exec: the command after ow's options is not argparse's)
        out.append(f"Usage: {_code(p.usage)}\n")
    args = [a for a in p._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    if args:
        for a in args:
            choices = f" (one of: {', '.join(map(str, a.choices))})" if a.choices and not sub else ""
            out.append(f"- {_code(_argument(a))}: {_flat(a.help)}{choices}")
        out.append("")
    if p.epilog and p.epilog != epilog:  # (ow's subcommands repeat ow's)
        out.append("```text\n" + p.epilog.rstrip() + "\n```\n")
    if sub is not None:
        helps = {c.dest: c.help for c in sub._choices_actions}
        out.append("Subcommands: " + ", ".join(f"`{name}`" for name in sub.choices) + ".\n")
        for name, child in sub.choices.items():
            _command(child, f"{path} {name}", helps.get(name), out, p.epilog)


def _statements() -> list[str]:
    from trainsh.kinds import slurm, title
    out = ["## Recipe statements\n",
           "One statement a line (a `\\` at the end continues it; a heredoc's body belongs to its "
           "command); `#` starts a comment line. Definitions come first, then the workflow.\n"]

    def entry(key: str, cloud: str = "", options: dict | None = None, described: str = "") -> None:
        if key not in STATEMENTS:
            raise SystemExit(f"reference: recipe statement '{key}' has no entry in STATEMENTS "
                             f"(src/trainsh/cli/reference.py)")
        form, meaning = (s.replace("{cloud}", cloud).replace("{title}", title(cloud))
                         for s in STATEMENTS[key])
        out.append(f"- {_code(form)}: {meaning}")
        for name, check in (options or {}).items():
            out.append(f"  - `{name}=`: {_CHECKERS.get(getattr(check, '__name__', ''), 'a value')}")
        if described:
            out.append(f"  - {described}")

    for word in ("var", "host", "storage", "@", "->"):
        entry(word)
    entry("wait")
    # tmux and plain statements first, then each cloud's, then Slurm's
    heads = ["tmux", "notify", "sleep", "pick", *CLOUDS, "slurm"]
    words = sorted((w for w in KEYWORDS if w not in ("var", "host", "storage", "wait")),
                   key=lambda w: (heads.index(w.partition(".")[0]) if w.partition(".")[0] in heads
                                  else len(heads), _ACTIONS.get(w.partition(".")[2], 9), w))
    for word in words:
        head, _, action = word.partition(".")
        if head in CLOUDS:
            entry({"wait": "wait.cloud", "pick": "pick.cloud"}.get(action, action), head, CLOUD_OPTIONS.get(word))
        elif word == "pick":
            entry(word, options=PICK_OPTIONS)
        elif word == "slurm.alloc":
            entry(word, described="options, each salloc's of the same name: " + ", ".join(
                f"`{k}=` ({flag})" if flag else f'`{k}="..."` (any other salloc options)'
                for k, flag in slurm.FLAGS.items())
                + "; and `recover=N`, the job's own: survive losing the allocation up to N times")
        elif word == "slurm.wait":
            entry(word, options=SLURM_WAIT_OPTIONS)
        else:
            entry(word)
    out.append("")
    return out


def generate() -> str:
    out = [HEADER]
    for title, parser in (("train", build_parser()), ("ow", build_ow())):
        out.append(f"## {title}\n")
        _command(parser, title, None, out)
    out += _statements()
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(generate())
