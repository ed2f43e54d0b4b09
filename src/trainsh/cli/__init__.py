"""`train`: parse argv, call the library, print. Handlers import what they need lazily, so
`train --help` costs only argparse."""

from __future__ import annotations

import argparse
import os
import sys

from trainsh import __version__


class UserError(Exception):
    """Bad input or a failed request: one line for the user, exit code 2."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


EPILOG = """\
Recipes (.recipe files) open tmux sessions on hosts, run commands, wait for patterns, files,
ports or idle sessions, and move files. Every run is a job with logs and resume.

  train recipe run examples/quickstart.recipe     run a recipe on this machine
  train recipe check my.recipe                    report every mistake, run nothing
  train exec '@local > nvidia-smi'                run one command
  train recipe logs --last                        what the last job did

Settings live in ~/.config/tmux-trainsh (TRAINSH_HOME moves them)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train", description="Training automation for rented GPU hosts and cloud storage.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"trainsh {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="group", metavar="COMMAND")

    # recipe
    rp = sub.add_parser("recipe", help="run, check and inspect recipes and their jobs",
                        description="Run, check and inspect recipes and their jobs.")
    rs = rp.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    run = rs.add_parser("run", help="run a recipe as a new job",
                        description="Run a recipe (a NAME from the recipes folder or a PATH).")
    run.add_argument("recipe", help="recipe name or path")
    _run_options(run)
    chk = rs.add_parser("check", help="report every mistake in a recipe without running it")
    chk.add_argument("recipe", nargs="+")
    rs.add_parser("list", help="list recipes in the recipes folder")
    sh = rs.add_parser("show", help="show a recipe's definitions and steps")
    sh.add_argument("recipe")
    nw = rs.add_parser("new", help="create a recipe from a template")
    nw.add_argument("name")
    ed = rs.add_parser("edit", help="edit a recipe in $EDITOR, then check it")
    ed.add_argument("recipe")
    lg = rs.add_parser("logs", help="show a job's log with each step's output",
                       description="Without arguments: recent jobs and where their logs are.")
    lg.add_argument("job", nargs="?", help="job id (or a unique prefix)")
    lg.add_argument("--last", action="store_true", help="the most recent job")
    st = rs.add_parser("status", help="running jobs, sessions still open, and how to attach to them")
    st.add_argument("--all", action="store_true", help="include finished jobs")
    jb = rs.add_parser("jobs", help="job history")
    jb.add_argument("--all", action="store_true", help="every job, not only the last 20")
    rsm = rs.add_parser("resume", help="resume an interrupted job (the last one by default)")
    rsm.add_argument("job", nargs="?")
    rsm.add_argument("--no-visual", action="store_true", help="plain line-by-line output")
    rsm.add_argument("--keep-sessions", action="store_true")

    ex = sub.add_parser("exec", help="run recipe lines directly",
                        description="Run DSL lines directly, e.g. train exec '@local > nvidia-smi'. "
                                    "'@host > cmd' runs on the host without a tmux session.")
    ex.add_argument("dsl", nargs="+", help="recipe lines (several arguments are several lines)")
    _run_options(ex)

    tr = sub.add_parser("transfer", help="copy files between two places",
                        description="Copy SRC to DST: local paths or @HOST:PATH (a hosts.toml "
                                    "name); rsync semantics for folders.")
    tr.add_argument("src")
    tr.add_argument("dst")
    tr.add_argument("--delete", action="store_true", help="delete files in DST that SRC lacks")
    tr.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    tr.add_argument("--dry-run", action="store_true", help="show what would be copied")
    ho = sub.add_parser("host", help="named ssh machines (hosts.toml)",
                        description="Named ssh machines, kept in hosts.toml; recipes use them as "
                                    "'host gpu = NAME'.")
    hs = ho.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    hs.add_parser("list", help="the hosts in hosts.toml")
    ha = hs.add_parser("add", help="add a host (asks on a terminal when arguments are missing)")
    ha.add_argument("name", nargs="?")
    ha.add_argument("destination", nargs="?", metavar="USER@HOST")
    ha.add_argument("-p", "--port")
    ha.add_argument("-i", "--key", help="identity file")
    ha.add_argument("-J", "--jump", help="jump host")
    ha.add_argument("--force", action="store_true", help="replace a host of the same name")
    for verb, text in (("show", "a host's settings and its ssh command line"),
                       ("ssh", "an interactive shell on the host"),
                       ("test", "reachable? auth, latency, tools, GPUs, disk, in one go"),
                       ("remove", "remove a host from hosts.toml")):
        hp = hs.add_parser(verb, help=text)
        hp.add_argument("name")
    hb = hs.add_parser("browse", help="list a remote folder; on a terminal move around and fetch files")
    hb.add_argument("name")
    hb.add_argument("path", nargs="?")

    so = sub.add_parser("storage", help="object stores and folders (storages.toml)",
                        description="Storage backends, kept in storages.toml (credentials are "
                                    "secrets, never stored there); recipes use them as "
                                    "'storage out = NAME' or 'r2:bucket'.")
    sos = so.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    sos.add_parser("list", help="the storages in storages.toml")
    sa = sos.add_parser("add", help="add a storage (asks on a terminal when arguments are missing)")
    sa.add_argument("name", nargs="?")
    sa.add_argument("spec", nargs="?", metavar="KIND:BUCKET",
                    help="r2:bucket, b2:bucket, s3:bucket, gdrive:folder or local:/path")
    sa.add_argument("--endpoint", help="an S3-compatible endpoint URL")
    sa.add_argument("--region")
    sa.add_argument("--account-id", help="the Cloudflare account id (R2)")
    sa.add_argument("--force", action="store_true", help="replace a storage of the same name")
    for verb, text in (("show", "a storage's settings and the secrets it needs"),
                       ("test", "list it, then write, read back and delete a small object"),
                       ("remove", "remove a storage from storages.toml")):
        sp = sos.add_parser(verb, help=text)
        sp.add_argument("name")

    se = sub.add_parser("secrets", help="API keys and tokens (environment first, then the store)",
                        description="Secrets are looked up in the environment first, then in the "
                                    "store: the OS keyring where one works, else an encrypted file "
                                    "(passphrase from TRAINSH_PASSPHRASE or asked once per run).")
    ss = se.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    ss.add_parser("list", help="known keys and where each value comes from (never the value)")
    sset = ss.add_parser("set", help="store a secret (asked without echo; or read from stdin)")
    sset.add_argument("key")
    sget = ss.add_parser("get", help="print a secret's value")
    sget.add_argument("key")
    sdel = ss.add_parser("delete", help="remove a secret from the store")
    sdel.add_argument("key")

    co = sub.add_parser("config", help="settings in config.toml",
                        description="Typed settings in config.toml; edits keep its comments.")
    cs = co.add_subparsers(dest="cmd", metavar="SUBCOMMAND")
    cs.add_parser("show", help="every key with its value and whether it is the default")
    cg = cs.add_parser("get", help="one key's value")
    cg.add_argument("key")
    cst = cs.add_parser("set", help="set a key (checked against its type)")
    cst.add_argument("key")
    cst.add_argument("value")
    cu = cs.add_parser("unset", help="remove a key from config.toml (back to its default)")
    cu.add_argument("key")
    cr = cs.add_parser("reset", help="back to the defaults (config.toml kept as config.toml.bak)")
    cr.add_argument("--yes", action="store_true", help="do not ask")
    return p


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="set a recipe variable (repeatable)")
    p.add_argument("--host", action="append", default=[], metavar="NAME=SPEC",
                   help="give a host a spec at run time (repeatable)")
    p.add_argument("--no-visual", action="store_true", help="plain line-by-line output (no live status)")
    p.add_argument("--keep-sessions", action="store_true",
                   help="keep the job's tmux sessions when it fails")
    p.add_argument("--pick-host", metavar="NAME", help="pick a Vast.ai machine for a host")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.group:
        parser.print_help()
        return 0
    if args.group in ("recipe", "secrets", "config", "host", "storage") and not getattr(args, "cmd", None):
        parser.parse_args([args.group, "--help"])
    try:
        if args.group in ("secrets", "config"):
            from trainsh.cli import settings as handlers
        elif args.group in ("host", "transfer"):
            from trainsh.cli import hosts as handlers
        elif args.group == "storage":
            from trainsh.cli import storage as handlers
        else:
            from trainsh.cli import commands as handlers

        return handlers.dispatch(args) or 0
    except UserError as e:
        if args.debug:
            raise
        print(f"train: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("train: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `train ... | head`: the reader is gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # the last net: one line, unless --debug
        if args.debug or os.environ.get("TRAINSH_DEBUG"):
            raise
        print(f"train: error: {e.__class__.__name__}: {e} (run with --debug for details)", file=sys.stderr)
        return 1
