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

from trainsh.owargs import existing

def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["__complete"]:  # a shell asks, on TAB (train completion SHELL sets it up)
        from trainsh.cli.completion import complete  # (loads only on TAB)

        sys.exit(complete(argv[1:], prog="ow"))
    early = None
    target = existing(argv)
    if target:
        from trainsh.runtime.ow_connect import Early  # (loads only for --existing)

        early = Early.start(target)
    from trainsh.cli import ow  # (after the login has started)

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
