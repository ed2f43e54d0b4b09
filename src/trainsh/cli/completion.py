"""Shell completion: `train completion bash|zsh|fish` prints a small script; on TAB the shell
runs `train __complete CWORD WORDS...`, and this module answers with one candidate a line.

Commands and flags come from the argument parser itself, so they never go stale; names come
from the settings (recipes, hosts, storages, config keys, job ids, secret names from the
known list and the keyring's index, never a value, never asking for a passphrase).
`train --help` does not import this module.
"""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import argparse
import sys

from trainsh.cli.common import UserError

SCRIPTS = {
    "bash": r"""# train and ow completion for bash: eval "$(train completion bash)"
_train_complete() { _train_ask train; }
_ow_complete() { _train_ask ow; }
_train_ask() {
    local IFS=$'\n'
    if [[ -n $COMP_LINE ]]; then  # bash cuts `@gpu:path` into words at @ and : (COMP_WORDBREAKS)
        COMPREPLY=($("$1" __complete --line "${COMP_LINE:0:COMP_POINT}" 2>/dev/null))
    else
        COMPREPLY=($("$1" __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null))
    fi
    _train_nospace
}
_train_nospace() {  # `@gpu:` is half a word: the path comes next, not a space
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *: ]] && compopt -o nospace 2>/dev/null
    return 0
}
complete -o default -o nosort -F _train_complete train 2>/dev/null || complete -o default -F _train_complete train
complete -o default -o nosort -F _ow_complete ow 2>/dev/null || complete -o default -F _ow_complete ow
""",
    "zsh": r"""#compdef train ow
# train and ow completion for zsh: source <(train completion zsh)   (after compinit)
_train() {
    local -a reply open
    reply=("${(@f)$(${words[1]} __complete $((CURRENT - 1)) "${words[@]}" 2>/dev/null)}")
    if [[ -n "${reply[1]}" ]]; then
        open=(${(M)reply:#*:})   # `@gpu:` is half a word: no space after it
        reply=(${reply:#*:})
        (( ${#reply} )) && compadd -Q -a reply
        (( ${#open} )) && compadd -Q -S '' -a open
    else
        _files
    fi
}
compdef _train train ow
""",
    "fish": r"""# train and ow completion for fish: train completion fish | source
function __train_complete
    set -l words (commandline -opc)
    $words[1] __complete (count $words) $words (commandline -ct) 2>/dev/null
end
complete -c train -f -a '(__train_complete)'
complete -c train -n 'string match -q -- "*/*" (commandline -ct)' -F
complete -c ow -f -a '(__train_complete)'
complete -c ow -n 'string match -q -- "*/*" (commandline -ct)' -F
""",
}

# (command words, argument dest) -> what names it takes
NAMES = {
    ("recipe", "recipe"): "recipe", ("job",): "job", ("host", "name"): "host",
    ("colab", "name"): "colab", ("storage", "name"): "storage", ("secrets", "key"): "secret",
    ("config", "key"): "config", ("completion", "shell"): "shell",
}


def dispatch(args) -> int:
    shell = args.shell.strip().lower()
    if shell not in SCRIPTS:
        raise UserError(f"no completion for shell '{args.shell}' (bash, zsh or fish)")
    sys.stdout.write(SCRIPTS[shell])
    return 0


def complete(argv: list[str], prog: str = "train") -> int:
    """argv: CWORD and the command line's words (the first is `train`, or `ow`); or `--line`
    and the line up to the cursor (bash's COMP_WORDS are cut at `@` and `:`, which train's
    words hold: `@gpu:path`). bash replaces only what follows a word's last `:`, so that is
    all a candidate then says."""
    replaced = None
    try:
        if argv[:1] == ["--line"]:
            words, current = _split_line(argv[1])
            before, replaced = words[1:], current.rpartition(":")[2]
        else:
            cword = int(argv[0])
            words = argv[1:]
            before = words[1:cword]
            current = words[cword] if cword < len(words) else ""
    except (IndexError, ValueError):
        return 0
    try:
        found = (ow_candidates if prog == "ow" else candidates)(before, current)
        if replaced is not None and current != replaced and current.endswith(replaced):
            head = current[:len(current) - len(replaced)]
            found = [c[len(head):] for c in found if c.startswith(head)]
        for c in found:
            print(c)
    except Exception:  # completion never prints a traceback into the user's prompt
        pass
    return 0


def _split_line(line: str) -> tuple[list[str], str]:
    """A command line up to the cursor -> (the words before the cursor's word, that word)."""
    import shlex

    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    words: list[str] = []
    try:
        for w in lexer:
            words.append(w)
    except ValueError:  # an open quote: the word being typed
        words = line.split()
    if not line or line[-1].isspace():
        return words, ""
    return words[:-1], (words[-1] if words else "")


def candidates(before: list[str], current: str) -> list[str]:
    from trainsh.cli.parser import build_parser

    return _walk(build_parser(), before, current, _train_kind)


def ow_candidates(before: list[str], current: str) -> list[str]:
    """`ow`: its commands and flags from its parser, GPU short names, providers, and for
    --existing the ids the last `train PROVIDER list` saw (no API call on TAB). The command
    to run (the first other word) and what follows it complete as files."""
    from trainsh.cli.ow import build_parser
    from trainsh.owargs import DEFAULT_PROVIDER

    provider = DEFAULT_PROVIDER
    for i, w in enumerate(before):
        if w.startswith("--provider="):
            provider = w.split("=", 1)[1]
        elif w == "--provider" and i + 1 < len(before):
            provider = before[i + 1]

    def kind(path, dest):
        if dest == "existing":
            return "instance:" + provider
        if dest == "gpu":
            return "gpu"
        return None

    return _walk(build_parser(), before, current, kind, command_ends=True)


def _train_kind(path: list[str], dest: str) -> str | None:
    from trainsh.cli.parser import CLOUDS

    if path[:2] == ["recipe", "resume"] and dest == "job":
        return "resumable"
    if path and path[0] in CLOUDS and dest in ("id", "instance"):
        return "instance:" + path[0]
    if path == ["transfer"] and dest in ("src", "dst"):
        return "side"
    if dest == "pick_host":
        return "host"
    return NAMES.get((path[0] if path else "", dest)) or NAMES.get((dest,))


def _walk(parser: argparse.ArgumentParser, before: list[str], current: str, kind_of,
          command_ends: bool = False) -> list[str]:
    """Follow the words typed so far through the parser, then name what may come next: a
    subcommand, a flag, an option's value or a positional's (kind_of(path, dest) says which
    names it takes; none: the shell's own file completion). With `command_ends` the first
    positional word (or `--`) starts a command of the user's, which completes as files."""
    path: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(before):
        word = before[i]
        sub = _subparsers(parser)
        if sub is not None and word in sub.choices:
            parser = sub.choices[word]
            path.append(word)
        elif word.startswith("-") and word != "--":
            action = _option(parser, word)
            if action is not None and action.nargs != 0 and "=" not in word:
                i += 1  # its value
        elif command_ends and path:
            return []
        else:
            positionals.append(word)
        i += 1
    prev = before[-1] if before else ""
    action = _option(parser, prev) if prev.startswith("-") and "=" not in prev else None
    if action is not None and action.nargs != 0:  # the option's value
        if action.choices:
            return _match([str(c) for c in action.choices], current)
        kind = kind_of(path, action.dest)
        return _match(_names(kind, current), current) if kind else []
    if current.startswith("-"):
        return _match([o for a in parser._actions for o in a.option_strings
                       if a.help != argparse.SUPPRESS], current)
    sub = _subparsers(parser)
    if sub is not None:
        return _match(list(sub.choices), current)
    args = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
    if not args:
        return []
    arg = args[min(len(positionals), len(args) - 1)]
    if len(positionals) >= len(args) and arg.nargs not in ("+", "*", argparse.REMAINDER):
        return []
    kind = kind_of(path, arg.dest)
    return _match(_names(kind, current), current) if kind else []


def _subparsers(parser):
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _option(parser, word: str):
    word = word.split("=")[0]
    return next((a for a in parser._actions if word in a.option_strings), None)


def _match(items, current: str) -> list[str]:
    return sorted({x for x in items if x.startswith(current)})


def _names(kind: str, current: str = "") -> list[str]:
    from trainsh.settings import paths

    if kind == "side":  # train transfer: `@HOST:` and `@STORAGE:`; a local path is the shell's
        if not current.startswith("@"):
            return []
        return [f"@{n}:" for n in (*_names("host"), *_names("storage"))]
    if kind.startswith("instance:"):
        return known_instances(kind.split(":", 1)[1])
    if kind == "gpu":
        from trainsh.cloud.gpus import GPUS

        return list(GPUS)
    if kind == "shell":
        return list(SCRIPTS)
    if kind == "recipe":
        folder = paths.recipes_dir()
        return [p.stem for p in folder.glob("*.recipe")] if folder.is_dir() else []
    if kind == "host":
        from trainsh.settings import hosts

        return list(hosts.load())
    if kind == "colab":
        from trainsh.settings import hosts

        return [n for n, e in hosts.load().items() if e.get("kind") == "colab"]
    if kind == "storage":
        from trainsh.settings import storages

        return list(storages.load())
    if kind == "config":
        from trainsh.settings import config

        return list(config.KEYS)
    if kind == "secret":
        from trainsh.settings import secrets

        import json

        names = list(secrets.KNOWN)
        try:  # the keyring's index of names; the encrypted file's names stay locked in it
            names += json.loads((paths.home() / "secrets-index.json").read_text())
        except (OSError, ValueError):
            pass
        return [n for n in names if isinstance(n, str)]
    if kind == "job":
        from trainsh.runtime.journal import Journal

        j = Journal.reader()
        try:
            return [job.id for job in j.jobs(50)]
        finally:
            j.close()
    if kind == "resumable":  # what `train recipe resume` takes: not done, not being run
        from trainsh.runtime.journal import Journal

        j = Journal.reader()
        try:
            return [job.id for job in j.jobs(50) if job.shown_status in ("interrupted", "failed")]
        finally:
            j.close()
    return []


# ---- instance ids, for completion without an API call: what `train CLOUD list` last saw

def _ids_file():
    from trainsh.settings import paths

    return paths.home() / "instance-ids.json"


def known_instances(provider: str) -> list[str]:
    import json

    try:
        ids = json.loads(_ids_file().read_text()).get(provider, [])
    except (OSError, ValueError, AttributeError):
        return []
    return [str(i) for i in ids if isinstance(i, (str, int))]


def remember_instances(provider: str, ids=None, *, add=(), drop=()) -> None:
    """Keep the ids of `provider`'s machines for completion: `ids` is the whole list (a
    `train CLOUD list`), `add` and `drop` change it (a create, a destroy). Only a cache: a
    failure to write it is no failure of the command."""
    import json
    import os

    from trainsh.settings import paths

    try:
        path = _ids_file()
        try:
            known = json.loads(path.read_text())
            known = known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            known = {}
        now = [str(i) for i in (ids if ids is not None else known.get(provider, []))]
        now += [str(i) for i in add if str(i) not in now]
        known[provider] = [i for i in now if i not in {str(d) for d in drop}]
        paths.ensure(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, path)
    except OSError:
        pass

