"""`train`: parse argv, call the library, print. Handlers import what they need lazily, so
`train --help` costs only argparse."""

from __future__ import annotations

import os
import sys

from trainsh.cli.common import UserError, ended, environment_error, signals_interrupt
from trainsh.cli.parser import CLOUDS, build_parser, subcommands

__all__ = ["CLOUDS", "UserError", "build_parser", "ended", "main"]


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["__complete"]:  # a shell asks, on TAB
        from trainsh.cli.completion import complete  # (loads only on TAB)

        return complete((sys.argv[1:] if argv is None else argv)[1:])
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=next((w for w in words if not w.startswith("-")), None))
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame `train`, not the subcommand that got them
        prog = " ".join(["train", *(w for w in (args.group, getattr(args, "cmd", None)) if w)])
        print(f"train: unrecognized arguments: {' '.join(extra)} (see '{prog} --help')", file=sys.stderr)
        return 2
    if not args.group:
        parser.print_help()
        return 0
    if args.group in ("recipe", "secrets", "config", "host", "storage", "pricing", "colab", "slurm",
                      *CLOUDS) and not getattr(args, "cmd", None):  # (`train vast --help` helps)
        print(f"train: {args.group} needs a subcommand: {', '.join(subcommands(parser, args.group))} "
              f"(see 'train {args.group} --help')", file=sys.stderr)
        return 2

    def run() -> int:
        if args.group in ("secrets", "config"):
            from trainsh.cli import settings as handlers
        elif args.group in ("host", "transfer"):
            from trainsh.cli import hosts as handlers
        elif args.group == "storage":
            from trainsh.cli import storage as handlers
        elif args.group == "colab":
            from trainsh.cli import colab as handlers
        elif args.group == "pricing":
            from trainsh.cli import pricing as handlers
        elif args.group in CLOUDS:
            from trainsh.cli import cloud as handlers
        elif args.group == "completion":
            from trainsh.cli import completion as handlers
        elif args.group == "slurm":
            from trainsh.cli import slurm as handlers
        elif args.group == "pick":
            from trainsh.cli import pick as handlers
        else:
            from trainsh.cli import commands as handlers

        return handlers.dispatch(args) or 0

    signals_interrupt()
    try:
        return ended("train", args.debug, run)
    except Exception as e:  # the last net: one line, unless --debug
        if args.debug or os.environ.get("TRAINSH_DEBUG"):
            raise
        print(f"train: {environment_error(e) or f'error: {e.__class__.__name__}: {e} (run with --debug for details)'}",
              file=sys.stderr)
        return 1


