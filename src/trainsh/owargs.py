"""ow's argv before argparse: where ow's own arguments end and the command begins, and the
machine of `ow exec --existing ID`. Standard library only: the `ow` console script
(owstart.py) reads it before anything else has loaded, and cli/ow.py parses with it."""

from __future__ import annotations

DEFAULT_PROVIDER = "runpod"

# options that take a value: everything after the first other word is the command
VALUED = {"--gpu", "--count", "--image", "--provider", "--mount", "--env-file", "--existing",
          "--exclude", "--include", "--disk", "--autostop", "--bid", "--recover"}


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """(ow's own arguments, the command): the command starts at the first word that is no
    option of ow's (or after `--`) and is passed on untouched."""
    i = 0
    if argv and argv[0] in ("exec",):
        i = 1
    elif argv and argv[0] == "--debug" and len(argv) > 1 and argv[1] == "exec":
        i = 2
    else:
        return argv, []
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[:i], argv[i + 1:]
        if not a.startswith("-") or a == "-":
            return argv[:i], argv[i:]
        if a in VALUED:
            i += 2
        else:
            i += 1
    return argv, []


def existing(argv: list[str]) -> str | None:
    """`PROVIDER:ID` of `ow exec --existing ID`, else None: the machine whose login can start
    before the rest of ow has loaded. A guess at argv is enough: a wrong guess is a login the
    run does not use."""
    own, command = split_command(argv)
    if not command:
        return None
    values: dict[str, str] = {}
    i = 0
    while i < len(own):
        name, eq, value = own[i].partition("=")
        if name in ("--existing", "--provider"):
            if not eq:
                i += 1
                value = own[i] if i < len(own) else ""
            values[name] = value
        i += 1
    if not values.get("--existing"):
        return None
    return f"{values.get('--provider', DEFAULT_PROVIDER)}:{values['--existing']}"
