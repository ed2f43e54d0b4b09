"""Shell completion: `train completion bash|zsh|fish` prints a small script; on TAB the shell
runs `train __complete CWORD WORDS...`, and this module answers with one candidate a line.

Commands and flags come from the argument parser itself, so they never go stale; names come
from the settings (recipes, hosts, storages, config keys, job ids, secret names from the
known list and the keyring's index, never a value, never asking for a passphrase).
`train --help` does not import this module.
"""

from __future__ import annotations

import argparse
import sys

from trainsh.cli import UserError

SCRIPTS = {
    "bash": r'''# train completion for bash: eval "$(train completion bash)"
_train_complete() {
    local IFS=$'\n'
    COMPREPLY=($(train __complete "$COMP_CWORD" "${COMP_WORDS[@]}" 2>/dev/null))
}
complete -o default -o nosort -F _train_complete train 2>/dev/null || complete -o default -F _train_complete train
''',
    "zsh": r'''#compdef train
# train completion for zsh: source <(train completion zsh)   (after compinit)
_train() {
    local -a reply
    reply=("${(@f)$(train __complete $((CURRENT - 1)) "${words[@]}" 2>/dev/null)}")
    if [[ -n "${reply[1]}" ]]; then
        compadd -Q -a reply
    else
        _files
    fi
}
compdef _train train
''',
    "fish": r'''# train completion for fish: train completion fish | source
function __train_complete
    set -l words (commandline -opc)
    train __complete (count $words) $words (commandline -ct) 2>/dev/null
end
complete -c train -f -a '(__train_complete)'
complete -c train -n 'string match -q -- "*/*" (commandline -ct)' -F
''',
}

# (command words, argument dest) -> what names it takes
NAMES = {
    ("recipe", "recipe"): "recipe", ("job",): "job", ("host", "name"): "host",
    ("colab", "name"): "host", ("storage", "name"): "storage", ("secrets", "key"): "secret",
    ("config", "key"): "config", ("completion", "shell"): "shell",
}


def dispatch(args) -> int:
    shell = args.shell.strip().lower()
    if shell not in SCRIPTS:
        raise UserError(f"no completion for shell '{args.shell}' (bash, zsh or fish)")
    sys.stdout.write(SCRIPTS[shell])
    return 0


def complete(argv: list[str]) -> int:
    """argv: CWORD and the command line's words (the first is `train`)."""
    try:
        cword = int(argv[0])
        words = argv[1:]
    except (IndexError, ValueError):
        return 0
    before = words[1:cword]
    current = words[cword] if cword < len(words) else ""
    try:
        for c in candidates(before, current):
            print(c)
    except Exception:  # completion never prints a traceback into the user's prompt
        pass
    return 0


def candidates(before: list[str], current: str) -> list[str]:
    from trainsh.cli import build_parser

    parser: argparse.ArgumentParser = build_parser()
    path: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(before):
        word = before[i]
        sub = _subparsers(parser)
        if sub is not None and word in sub.choices:
            parser = sub.choices[word]
            path.append(word)
        elif word.startswith("-"):
            action = _option(parser, word)
            if action is not None and action.nargs != 0 and "=" not in word:
                i += 1  # its value
        else:
            positionals.append(word)
        i += 1
    prev = before[-1] if before else ""
    action = _option(parser, prev) if prev.startswith("-") and "=" not in prev else None
    if action is not None and action.nargs != 0:  # the option's value
        return _match(_names("host"), current) if action.dest == "pick_host" else []
    if current.startswith("-"):
        return _match([o for a in parser._actions for o in a.option_strings], current)
    sub = _subparsers(parser)
    if sub is not None:
        return _match(list(sub.choices), current)
    args = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
    if not args:
        return []
    arg = args[min(len(positionals), len(args) - 1)]
    if len(positionals) >= len(args) and arg.nargs not in ("+", "*", argparse.REMAINDER):
        return []
    kind = NAMES.get((path[0] if path else "", arg.dest)) or NAMES.get((arg.dest,))
    return _match(_names(kind), current) if kind else []


def _subparsers(parser):
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _option(parser, word: str):
    word = word.split("=")[0]
    return next((a for a in parser._actions if word in a.option_strings), None)


def _match(items, current: str) -> list[str]:
    return sorted({x for x in items if x.startswith(current)})


def _names(kind: str) -> list[str]:
    from trainsh.settings import paths

    if kind == "shell":
        return list(SCRIPTS)
    if kind == "recipe":
        folder = paths.recipes_dir()
        return [p.stem for p in folder.glob("*.recipe")] if folder.is_dir() else []
    if kind == "host":
        from trainsh.settings import hosts

        return list(hosts.load())
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
    return []

