"""`ow`: a shell on a fresh GPU machine whose folders stay in sync with this one (`ow ssh`),
or one command run there with its output here and its exit code as ow's (`ow exec`).

This module parses argv and checks every input before anything is rented; the work is in
runtime/ow.py. Bad input is one line and exit 2; a failed run exits 1; a command's own exit
code is ow exec's.
"""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import argparse
import os
import sys

from trainsh import numbers
from trainsh.cli.common import UserError, ended
from trainsh.owargs import DEFAULT_PROVIDER, existing, split_command

EPILOG = """\
examples:
  ow ssh --gpu L40                                a shell; . synced live to /workspace
  ow exec --gpu H100S python train.py cfg.json    run, sync back, terminate
  ow exec --env-file .env --mount ~/data:/data -- python -m train
  ow exec --existing ID --no-sync nvidia-smi      on a machine you already have
  ow exec --spot --recover 2 python train.py      interruptible; a lost machine replaced

GPUs: {gpus}
Synced: each --mount (default .:/workspace) with unison. The first sync goes one way, up:
files here replace the machine's, and what only the machine has (a network volume's files)
stays there and is not brought here (--pull merges both sides instead); then both ways.
Left out: {excludes},
the folder's .gitignore and --exclude patterns; --include NAME syncs one of them all the
same (--include .env.example). A rented machine is terminated when ow ends, whatever ends
it, unless --no-terminate (ow ssh asks on a terminal; ow exec never asks). If ow cannot end
it (killed, a laptop asleep, the network gone), the machine destroys itself once idle for
--autostop (no ow connected, no command running; default 5m, config ow.autostop; 0 turns
it off)."""


def _epilog() -> str:
    from trainsh.cloud.gpus import GPUS
    from trainsh.transfer.excludes import DEFAULT_EXCLUDES

    shown = [x for x in DEFAULT_EXCLUDES if x != ".ow_sync"]
    return EPILOG.format(gpus=" ".join(GPUS), excludes=" ".join(shown))



class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"ow: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ow", description="A GPU machine with your folders on it: a shell, or one command.",
                epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    ssh = sub.add_parser("ssh", help="a shell on the machine, folders synced live both ways",
                         description="A shell on a GPU machine. The prompt comes once the first sync is "
                                     "done; then changes on either side sync as they happen; a final sync "
                                     "on exit, then the machine is terminated (on a terminal, ow asks "
                                     "unless --terminate or --no-terminate).",
                         epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    ex = sub.add_parser("exec", help="run one command there, sync back, terminate",
                        usage="ow exec [options] [--] COMMAND [ARGS...]",
                        description="Sync up, run COMMAND on a GPU machine (in tmux: a dropped connection "
                                    "does not end it) with its output here, sync back, terminate (without "
                                    "asking; --no-terminate keeps it). ow exits "
                                    "with the command's exit code. One word is a shell line "
                                    "('make && ./run'); several are passed exactly as given.",
                        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    for sp in (ssh, ex):
        sp.error = p.error.__get__(sp)  # one line, as above
        sp.add_argument("--gpu", default="L40", help="GPU short name (default L40)")
        sp.add_argument("--count", type=numbers.GPUS, default=1, help="number of GPUs (default 1)")
        sp.add_argument("--image", help="container image (default: config PROVIDER.image)")
        sp.add_argument("--provider", default=DEFAULT_PROVIDER, choices=("runpod", "vast"),
                        help="the cloud (default runpod)")
        sp.add_argument("--mount", action="append", default=[], metavar="LOCAL[:REMOTE]",
                        help="a folder to sync (repeatable; default .:/workspace; LOCAL alone goes to "
                             "/workspace/NAME)")
        sp.add_argument("--env-file", metavar="FILE",
                        help="KEY=VALUE lines for the remote command or shell (never in an argv or log)")
        sp.add_argument("--existing", metavar="ID", help="use this running machine (it is left running)")
        t = sp.add_mutually_exclusive_group()
        t.add_argument("--no-terminate", dest="terminate", action="store_false", default=None,
                       help="leave the machine running at the end (ow names it)")
        t.add_argument("--terminate", dest="terminate", action="store_true",
                       help="terminate at the end without asking" + (" (the default)" if sp is ex else ""))
        sp.add_argument("--autostop", metavar="DURATION",
                        help="a rented machine nobody uses (no ow connected, no command running) "
                             "destroys itself after this long, should ow be gone without ending it "
                             "(default 5m: config ow.autostop; 0 = never)")
        sp.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help="also leave out of the sync (gitignore-style; repeatable)")
        sp.add_argument("--include", action="append", default=[], metavar="PATTERN",
                        help="sync it even though a default exclude, .gitignore or --exclude leaves "
                             "it out (as .env.local; not inside a folder left out; repeatable)")
        sp.add_argument("--pull", action="store_true",
                        help="the first sync merges both sides: what only the machine has comes here "
                             "(default: one way up; the machine's own files stay there)")
        sp.add_argument("--disk", type=numbers.DISK_GB, help="disk in GB (default: config PROVIDER.disk)")
        sp.add_argument("--no-editable-install", dest="editable", action="store_false",
                        help="no pip install -e of mounts holding a pyproject.toml")
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ex.add_argument("--no-sync", dest="sync", action="store_false", help="skip both syncs")
    ex.add_argument("--spot", action="store_true",
                    help="rent it interruptible (cheaper; the cloud may take it back): on a bid on "
                         "Vast, a spot pod on RunPod")
    ex.add_argument("--bid", type=numbers.BID, metavar="PRICE",
                    help="with --spot: the bid, USD/h, for the machine on Vast, per GPU on RunPod "
                         "(default: the minimum bid plus config PROVIDER.bid_margin, 10%%)")
    ex.add_argument("--recover", type=numbers.count(0, 99), default=0, metavar="N",
                    help="survive losing the machine (outbid, reclaimed, stopped, gone) up to N times: "
                         "another machine, a sync, the command again from its start (default 0)")
    ssh.add_argument("--no-sync", dest="sync", action="store_false", help="no sync at all")
    return p


def options(args):
    from pathlib import Path

    from trainsh.cloud import gpus
    from trainsh.runtime.ow import Mount, Options, OwError, parse_env_file

    if args.existing is not None and not args.existing.strip():
        raise UserError("--existing needs a machine id")  # (an unset $ID must not rent one)
    if args.existing is not None:
        try:  # each cloud's ids, as `train vast show ID` checks them
            (numbers.vast_id if args.provider == "vast" else numbers.pod_id)(args.existing)
        except ValueError as e:
            raise UserError(f"--existing: {e}") from None
    try:
        short = gpus.short_name(args.gpu)
        if args.existing is None:
            gpus.provider_name(short, args.provider)
    except gpus.UnknownGpu as e:
        raise UserError(str(e)) from None
    mounts = []
    for spec in args.mount or [".:/workspace"]:
        local, sep, remote = spec.partition(":")
        if not local:
            raise UserError(f"--mount {spec}: no local folder (LOCAL[:REMOTE])")
        try:
            path = Path(os.path.expanduser(local)).resolve()
            if not path.is_dir():
                raise UserError(f"--mount {spec}: {local} is not a folder here" if path.exists()
                                else f"--mount {spec}: no such folder: {local}")
        except OSError as e:  # (a name too long, a loop of links)
            raise UserError(f"--mount {_short(spec)}: {(e.strerror or str(e)).lower()}") from None
        remote = remote if sep else f"/workspace/{path.name}" if args.mount else "/workspace"
        if not remote or "\n" in remote or "\0" in remote:
            raise UserError(f"--mount {spec}: no remote folder after ':'")
        if remote == "~":
            remote = "."
        elif remote.startswith("~/"):
            remote = remote[2:]
        mounts.append(Mount(path, remote.rstrip("/") or "/"))
        _no_overlap(mounts, args.mount or [".:/workspace"])
    env = {}
    if args.env_file is not None:
        if not args.env_file.strip():
            raise UserError("--env-file needs a file")
        try:
            env = parse_env_file(os.path.expanduser(args.env_file))
        except OwError as e:
            raise UserError(str(e)) from None
    for flag, pats in (("--exclude", args.exclude), ("--include", args.include)):
        for pat in pats:
            if not pat.strip():
                raise UserError(f"{flag} needs a pattern")
    spot, bid, recover = (getattr(args, "spot", False), getattr(args, "bid", None),
                          getattr(args, "recover", 0))
    if bid is not None and not spot:
        raise UserError("--bid goes with --spot (the bid of an interruptible machine)")
    if args.existing is not None and (spot or recover):
        raise UserError(f"{'--spot' if spot else '--recover'} rents machines: not with --existing")
    terminate = args.terminate
    if terminate is None and args.cmd == "exec":
        terminate = True  # only `ow ssh` asks: an exec must not wait on a question while it bills
    return Options(provider=args.provider, gpu=short, count=args.count, image=args.image, disk=args.disk,
                   mounts=mounts, env=env, existing=args.existing, terminate=terminate,
                   excludes=tuple(args.exclude), includes=tuple(args.include), pull=args.pull,
                   sync=args.sync, editable=args.editable, spot=spot, bid=bid, recover=recover,
                   autostop=_autostop(args.autostop))


def _short(text: str, most: int = 80) -> str:
    return text if len(text) <= most else f"{text[:most]}..."


def _autostop(text: str | None) -> float:
    """--autostop DURATION (0 or off: never), else config ow.autostop."""
    from trainsh.settings import config

    if text is None:
        try:
            return config.off_or_duration("ow.autostop")
        except config.ConfigError as e:
            raise UserError(str(e), 2) from None
    if text.strip() in ("0", "off"):
        return 0.0
    from trainsh.recipe.model import Duration

    try:
        return Duration.parse(text).seconds
    except ValueError as e:
        raise UserError(f"--autostop {text}: {e} (0 turns it off)", 2) from None


def _no_overlap(mounts: list, specs: list[str]) -> None:
    """The newest mount's remote folder is neither another's nor inside or around one: two
    syncs into one tree would copy each local folder's files into the other."""
    import posixpath

    *before, m = mounts
    for i, other in enumerate(before):
        if m.remote.startswith("/") != other.remote.startswith("/"):
            continue  # (a relative one is under $HOME, which is not known yet)
        a, b = (posixpath.normpath(r if r.startswith("/") else f"~/{r}") for r in (m.remote, other.remote))
        if a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/"):
            raise UserError(f"--mount {specs[i]} and --mount {specs[len(before)]}: their remote "
                            f"folders overlap ({other.remote}, {m.remote}); give each its own")


_UNSET = object()


def main(argv: list[str] | None = None, early=_UNSET) -> int:
    """`early`: the login of `--existing`, when the console script (owstart.py) has started it already."""
    argv = sys.argv[1:] if argv is None else argv
    if early is _UNSET:
        target = existing(argv)
        if target:
            from trainsh.runtime.ow_connect import Early

            early = Early.start(target)
        else:
            early = None
    try:
        return _main(argv, early)
    finally:
        if early:
            early.discard()  # (when nothing took it)


def _main(argv: list[str], early) -> int:
    own, command = split_command(argv)
    parser = build_parser()
    args = parser.parse_args(own)
    debug = getattr(args, "debug", False)
    if not args.cmd:
        parser.print_help()
        return 0
    if args.cmd == "exec" and not command:
        print("ow: exec needs a command (ow exec [options] [--] COMMAND [ARGS...])", file=sys.stderr)
        return 2
    return ended("ow", debug, lambda: _run(args, command, early))


def _run(args, command: list[str], early) -> int:
    opts = options(args)
    from trainsh.cloud.provider import AuthError, NoCapacity, NotFound, ProviderError
    from trainsh.remote.shell import ShellError
    from trainsh.runtime import ow

    try:
        if args.cmd == "exec":
            return ow.ow_exec(opts, command, early)
        return ow.ow_ssh(opts)
    except NotFound as e:
        raise UserError(str(e), 2) from None
    except AuthError as e:
        missing = "no API key" in str(e)
        raise UserError(str(e), 2 if missing else 1) from None
    except NoCapacity as e:
        raise UserError(f"{e} (another --gpu, or --provider)", 1) from None
    except (ProviderError, ow.OwError, ShellError) as e:
        raise UserError(str(e), getattr(e, "code", 1)) from None

if __name__ == "__main__":
    sys.exit(main())
