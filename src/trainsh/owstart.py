"""The `ow` console script: what runs before the rest of ow has loaded.

A short `ow exec --existing ID` is mostly one ssh login, so that login starts first, before
argparse, the cloud client and the rest are imported (runtime/ow_connect.py says why that is
safe). Then cli/ow.py takes over. At the end ow leaves without Python's module teardown, which
is a tenth of such a run; the exit handlers still run.

Standard library only, and little of it: everything here is on the clock.
"""

from __future__ import annotations

import os
import sys

DEFAULT_PROVIDER = "runpod"

# options that take a value: everything after the first other word is the command
VALUED = {"--gpu", "--count", "--image", "--provider", "--mount", "--env-file", "--existing",
          "--exclude", "--include", "--disk", "--autostop"}


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


def early_login(argv: list[str]):
    """For `ow exec --existing ID`: the login to ID as it was reached last time, under way
    (an ow_connect.Early), else None. A guess at argv is enough: a wrong guess is a login the
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
    from trainsh.runtime.ow_connect import Early

    return Early.start(f"{values.get('--provider', DEFAULT_PROVIDER)}:{values['--existing']}")


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["__complete"]:  # a shell asks, on TAB (train completion SHELL sets it up)
        from trainsh.cli.completion import complete

        sys.exit(complete(argv[1:], prog="ow"))
    early = early_login(argv)
    from trainsh.cli import ow

    code = ow.main(argv, early=early)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # (a closed pipe: nothing more to say)
        pass
    import atexit

    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    main()
