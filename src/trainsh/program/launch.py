"""Running a Python recipe: `train recipe run|check|resume FILE.py` and `python FILE.py`
(`ts.main(main)` at its bottom) come here, so both run the same job."""

# The runtime, the ui and their dependencies load when a program runs, not when `ts` loads.

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from trainsh.program.load import ProgramError, load, typed


def check(path: str, variables: dict[str, str], required: bool = True) -> str:
    """Import the program, read main()'s signature and type the --vars, without running it:
    the line `train recipe check` prints; ProgramError otherwise. `required`: a parameter
    without default must be given (as a run needs it)."""
    program = load(path)
    typed(program, variables, required)
    line = f"{path}: ok (a Python recipe; main takes {program.describe()})"
    missing = [n for n in program.params if n in program.required and n not in variables]
    if missing:
        line += "\n  to give when it runs: " + ", ".join(f"--var {n}=..." for n in missing)
    return line


def run(path: str, variables: dict[str, str], hosts: dict[str, str] | None = None,
        storages: dict[str, str] | None = None, *, no_visual: bool = False,
        keep_sessions: bool = False, keep_hosts: bool = False, attach: bool = False,
        autostop: float | None = None, main: Callable | None = None) -> int:
    """Run the program as a new job: its exit code (ProgramError before it starts)."""
    from trainsh.program.sweep import Runner as ProgramRunner
    from trainsh.runtime.context import RunOptions
    from trainsh.runtime.journal import Journal
    from trainsh.ui import watch
    from trainsh.ui.console import Console, live_view_wanted

    program = load(path, main)
    program.values = typed(program, variables)
    console = Console(visual=not no_visual)
    journal = Journal()
    try:
        options = RunOptions(keep_sessions=keep_sessions, keep_hosts=keep_hosts, autostop=autostop)
        runner = ProgramRunner.start_program(journal, program, console, options, variables,
                                             hosts or {}, storages or {})
        console.plain(f"job {runner.job.id}: {path} (a Python recipe)")
        return watch.run(runner, journal, console, attach=attach, live=live_view_wanted(no_visual))
    finally:
        journal.close()


def resume(journal, job, console, options):
    """The runner that goes on with a program's job (see engine.py for how calls replay)."""
    from trainsh.program.sweep import Runner as ProgramRunner

    return ProgramRunner.resume_program(journal, job, console, options)


def main(fn: Callable) -> None:
    """`ts.main(main)` at the bottom of a recipe: `python sweep.py --var lr=1e-4` runs it as
    `train recipe run sweep.py --var lr=1e-4` would. Does nothing when the file was loaded by
    `train` (then it is no `__main__`)."""
    if getattr(fn, "__module__", None) != "__main__":
        return
    path = getattr(sys.modules["__main__"], "__file__", None) or "<program>"
    prog = f"python {os.path.basename(path)}"
    parser = argparse.ArgumentParser(prog=prog, description="Run this Python recipe as a trainsh job.")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--host", action="append", default=[], metavar="NAME=SPEC")
    parser.add_argument("--storage", action="append", default=[], metavar="NAME=SPEC")
    parser.add_argument("--no-visual", action="store_true")
    parser.add_argument("--keep-sessions", action="store_true")
    parser.add_argument("--keep-hosts", action="store_true")
    args = parser.parse_args()
    try:
        rc = run(path, pairs(args.var, "var"), pairs(args.host, "host"), pairs(args.storage, "storage"),
                 no_visual=args.no_visual, keep_sessions=args.keep_sessions,
                 keep_hosts=args.keep_hosts, main=fn)
    except ProgramError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        rc = 130
    raise SystemExit(rc)


def pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProgramError(f"--{what} takes NAME=VALUE, got '{item}'")
        out[key.strip()] = value
    return out
