"""Handlers of `train` commands: find things, call the runtime, print."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from trainsh.cli import UserError
from trainsh.recipe.model import RecipeErrors, format_seconds
from trainsh.settings import paths

TEMPLATE = """\
# {name}: a recipe. `train recipe check {name}` finds mistakes; `train recipe run {name}` runs it.
var WORKDIR = /tmp/{name}

host gpu = local

tmux.open @gpu as work
@work > mkdir -p $WORKDIR && cd $WORKDIR
@work > python3 -c "print('hello from {name}')"
wait @work idle timeout=5m
tmux.close @work
"""


def dispatch(args) -> int:
    if args.group == "exec":
        return cmd_exec(args)
    return {
        "run": cmd_run, "check": cmd_check, "list": cmd_list, "show": cmd_show, "new": cmd_new,
        "edit": cmd_edit, "logs": cmd_logs, "status": cmd_status, "jobs": cmd_jobs,
        "resume": cmd_resume,
    }[args.cmd](args)


# ---- finding and reading recipes -----------------------------------------------------------

def find_recipe(name: str) -> Path:
    p = Path(name).expanduser()
    if p.is_file():
        return p
    folder = paths.recipes_dir()
    for candidate in (folder / name, folder / f"{name}.recipe"):
        if candidate.is_file():
            return candidate
    known = sorted(x.stem for x in folder.glob("*.recipe")) if folder.is_dir() else []
    hint = f"; recipes in {folder}: {', '.join(known)}" if known else f" (nor in {folder})"
    raise UserError(f"no recipe '{name}' here{hint}")


def read_recipe(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")  # as written: the parser decides what ends a line
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}") from None


def parse_file(path: Path, *, allow_host_commands: bool = False):
    from trainsh.recipe.parser import parse

    return parse(read_recipe(path), str(path), allow_host_commands=allow_host_commands)


def report(errors: RecipeErrors) -> None:
    for e in errors.errors:
        print(e.render(), file=sys.stderr)
    n = len(errors.errors)
    if n > 1:
        print(f"{n} errors", file=sys.stderr)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--{what} takes NAME=VALUE, got '{item}'")
        out[key.strip()] = value
    return out


# ---- running -------------------------------------------------------------------------------

def _check_config() -> None:
    """A bad config.toml is a one-line error before a job starts, not a crash mid-step."""
    from trainsh.settings import config

    try:
        for key in config.KEYS:
            config.get(key)
        for name in config.unknown_keys():
            import difflib

            close = difflib.get_close_matches(name, list(config.KEYS), n=1)
            print(f"train: warning: {paths.config_file()}: unknown key '{name}'"
                  + (f" (did you mean {close[0]}?)" if close else ""), file=sys.stderr)
    except config.ConfigError as e:
        where = str(paths.config_file())
        raise UserError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None


def _run_recipe(recipe, args, *, exec_mode: bool = False) -> int:
    from trainsh.runtime import preflight
    from trainsh.runtime.journal import Journal
    from trainsh.runtime.runner import RunOptions, Runner
    from trainsh.ui.console import Console

    variables = _pairs(args.var, "var")
    hosts = _pairs(args.host, "host")
    pick = getattr(args, "pick_host", None)
    autostop = _autostop(getattr(args, "autostop", None))
    if pick is not None:
        if pick in hosts:
            raise UserError(f"--pick-host {pick} and --host {pick}=... both give @{pick} a machine: give one")
        if not exec_mode and pick not in recipe.of_kind("host"):
            raise UserError(f"--pick-host {pick}: the recipe has no host '{pick}' "
                            f"(hosts: {', '.join(recipe.of_kind('host')) or 'none'})")
    storages = _pairs(args.storage, "storage")
    # Everything that can be known before the first step is checked here, so a run that
    # cannot go through starts nothing.
    problems = preflight.unknown_vars(recipe, variables) + \
        preflight.unknown_overrides(recipe, hosts, storages, exec_mode)
    if not problems:
        if exec_mode:
            from trainsh.settings.hosts import HostsError
            from trainsh.settings.storages import StorageError

            try:
                named_hosts, named_storages = preflight.exec_names(recipe)
            except (HostsError, StorageError) as e:
                raise UserError(str(e)) from None
            hosts = {**named_hosts, **hosts}
            storages = {**named_storages, **storages}
        unsupported = preflight.cannot_run(recipe, {**recipe.hosts, **hosts})
        if unsupported:
            report(RecipeErrors(unsupported))
            return 2
        problems = preflight.unfilled(recipe, {k: v for k, v in {**recipe.hosts, **hosts}.items() if k != pick},
                                      {**recipe.storages, **storages}, {**recipe.variables, **variables})
    if problems:
        for line in problems:
            print(f"train: {line}", file=sys.stderr)
        return 2
    _check_config()
    picks = None
    if pick is not None:
        picks = {pick: _pick_before(recipe, pick)}
        if "instance" in picks[pick]:  # an instance of the user's: the host is that machine
            hosts[pick] = f"vast:{picks[pick]['instance']}"
            picks = None
    console = Console(visual=not args.no_visual)
    journal = Journal()
    options = RunOptions(keep_sessions=args.keep_sessions, keep_hosts=args.keep_hosts,
                         autostop=autostop, picks=picks)
    runner = Runner.start(journal, recipe, console, options, variables, hosts, storages)
    if exec_mode:
        journal.set_job(runner.job.id, options={**runner.job.options, "exec": True})
    console.plain(f"job {runner.job.id}: {recipe.path} ({len(recipe.steps)} steps)")
    try:
        if picks and not _rent_picked(runner, recipe, pick):
            return 1
        return runner.run()
    finally:
        journal.close()


def _autostop(text: str | None) -> float | None:
    """--autostop: a duration, or 0 for never."""
    from trainsh.recipe.model import Duration

    if text is None:
        return None
    if text.strip() in ("0", "off"):
        return 0.0
    try:
        return Duration.parse(text).seconds
    except ValueError as e:
        raise UserError(f"--autostop {text}: {e} (0 turns it off)") from None


def _pick_before(recipe, host: str) -> dict:
    """--pick-host: the user chooses host's machine now, on a terminal; headless, the pick
    step's own rule (the user's matching instance, else the cheapest offer) decides now."""
    from trainsh.cloud.provider import ProviderError
    from trainsh.runtime import clouds

    try:
        if sys.stdin.isatty() and sys.stderr.isatty():
            return clouds.pick_before(recipe, host)
        own, offers = clouds.candidates(clouds._provider("vast"), clouds.pick_options(recipe, host))
    except ProviderError as e:
        raise UserError(str(e), 1) from None
    except (LookupError, EOFError) as e:
        raise UserError(f"--pick-host {host}: {e or 'no machine chosen'}", 1) from None
    if own:
        return {"instance": own[0].id}
    if offers:
        return {"offer": offers[0].id}
    raise UserError(f"--pick-host {host}: no Vast.ai offer matches (train vast search shows what there is)", 1)


def _rent_picked(runner, recipe, host: str) -> bool:
    """An offer chosen with --pick-host for a host no pick step fills is rented as the job
    starts, journaled as the job's like any it rents."""
    from trainsh.cloud.provider import ProviderError
    from trainsh.recipe.model import Cloud
    from trainsh.runtime import clouds
    from trainsh.runtime.runner import StepFailed

    if any(isinstance(s, Cloud) and s.action == "pick" and s.host == host for s in recipe.steps):
        return True  # the step rents it, in its turn
    ctx = runner.ctx
    try:
        inst, _ = clouds.take(ctx, "vast", host, clouds.pick_options(recipe, host),
                              ctx.job.options["picks"][host], resume=False)
    except (ProviderError, StepFailed) as e:
        runner.journal.set_job(ctx.job.id, status="failed", pid=None, error=f"--pick-host {host}: {e}")
        print(f"train: --pick-host {host}: {e}", file=sys.stderr)
        return False
    ctx.host_specs[host] = f"vast:{inst.id}"
    ctx.console.info(f"@{host} = vast {inst.id} (rented from the offer chosen)")
    return True


def cmd_run(args) -> int:
    path = find_recipe(args.recipe)
    try:
        recipe = parse_file(path)
    except RecipeErrors as e:
        report(e)
        return 2
    return _run_recipe(recipe, args)


def cmd_exec(args) -> int:
    from trainsh.recipe.parser import parse

    text = "\n".join(args.dsl) + "\n"
    try:
        recipe = parse(text, "<exec>", allow_host_commands=True)
    except RecipeErrors as e:
        report(e)
        return 2
    if not recipe.steps:
        raise UserError("nothing to run: give at least one step, e.g. '@local > nvidia-smi'")
    return _run_recipe(recipe, args, exec_mode=True)


def cmd_resume(args) -> int:
    from trainsh.runtime.journal import Journal
    from trainsh.runtime.runner import RunOptions, Runner
    from trainsh.ui.console import Console

    _check_config()
    journal = Journal()
    try:
        if args.job:
            job = _one_job(journal, args.job)
        else:
            job = next((j for j in journal.jobs() if j.shown_status == "interrupted"), None)
            if job is None:
                raise UserError("no interrupted job to resume (train recipe jobs lists them)")
        status = job.shown_status
        if status == "running":
            raise UserError(f"job {job.id} is still running (pid {job.pid})")
        if status == "done":
            raise UserError(f"job {job.id} finished; nothing to resume")
        console = Console(visual=not args.no_visual)
        console.plain(f"resuming job {job.id}: {job.recipe_path} (was {status})")
        runner = Runner.resume(journal, job, console, RunOptions(keep_sessions=args.keep_sessions,
                                                                   keep_hosts=args.keep_hosts))
        return runner.run()
    finally:
        journal.close()


def cmd_check(args) -> int:
    from trainsh.runtime.preflight import cannot_run

    bad = 0
    for name in args.recipe:
        path = find_recipe(name)
        try:
            recipe = parse_file(path)
            unsupported = cannot_run(recipe)
            if unsupported:
                raise RecipeErrors(unsupported)
        except RecipeErrors as e:
            report(e)
            bad += 1
            continue
        print(f"{path}: ok ({len(recipe.steps)} steps)")
    return 2 if bad else 0


# ---- recipes on disk -----------------------------------------------------------------------

def cmd_list(args) -> int:
    folder = paths.recipes_dir()
    items = sorted(folder.glob("*.recipe")) if folder.is_dir() else []
    if not items:
        print(f"no recipes in {folder} (train recipe new NAME makes one)")
        return 0
    for p in items:
        first = next((ln[1:].strip() for ln in read_recipe(p).splitlines() if ln.startswith("#")), "")
        print(f"{p.stem:<24} {first}")
    return 0


def cmd_show(args) -> int:
    path = find_recipe(args.recipe)
    try:
        recipe = parse_file(path)
    except RecipeErrors as e:
        report(e)
        return 2
    print(f"{path}")
    for kind in ("var", "host", "storage"):
        for name, value in getattr(recipe, {"var": "variables", "host": "hosts", "storage": "storages"}[kind]).items():
            print(f"  {kind:<8} {name} = {value}")
    print(f"  {len(recipe.steps)} steps:")
    for i, step in enumerate(recipe.steps, 1):
        print(f"  {i:>3}. line {step.pos.line:<4} {step.source}")
    return 0


def cmd_new(args) -> int:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", args.name):
        raise UserError(f"bad recipe name '{args.name}' (letters, digits, '_', '-', '.'; "
                        "not starting with '.' or '-')")
    folder = paths.ensure(paths.recipes_dir())
    path = folder / f"{args.name.removesuffix('.recipe')}.recipe"
    if path.exists():
        raise UserError(f"{path} exists already (train recipe edit {args.name})")
    path.write_text(TEMPLATE.format(name=path.stem), encoding="utf-8")
    print(f"created {path}")
    return 0


def cmd_edit(args) -> int:
    import shlex

    path = find_recipe(args.recipe)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(editor)
        if not argv:
            raise ValueError("empty command")
        rc = subprocess.call([*argv, str(path)])
    except (OSError, ValueError) as e:
        raise UserError(f"cannot start editor '{editor}': {getattr(e, 'strerror', None) or e} "
                        "(set EDITOR)") from None
    if rc != 0:
        raise UserError(f"editor exited with code {rc}", 1)
    try:
        recipe = parse_file(path)
    except RecipeErrors as e:
        report(e)
        return 2
    print(f"{path}: ok ({len(recipe.steps)} steps)")
    return 0


# ---- jobs ----------------------------------------------------------------------------------

def _journal():
    from trainsh.runtime.journal import Journal

    return Journal.reader()


def _one_job(journal, ident: str):
    found = journal.find_job(ident)
    if not found:
        raise UserError(f"no job '{ident}' (train recipe jobs lists them)")
    if len(found) > 1:
        raise UserError(f"'{ident}' matches {len(found)} jobs: {', '.join(j.id for j in found[:5])}")
    return found[0]


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def cmd_jobs(args) -> int:
    journal = _journal()
    try:
        jobs = journal.jobs(None if args.all else 20)
        if not jobs:
            print("no jobs yet")
            return 0
        print(f"{'JOB':<10}{'STATUS':<13}{'STARTED':<18}{'TOOK':>8}  RECIPE")
        for j in jobs:
            took = format_seconds(int(j.updated - j.created)) if j.shown_status != "running" else "-"
            print(f"{j.id:<10}{j.shown_status:<13}{_when(j.created):<18}{took:>8}  {j.recipe_path}")
    finally:
        journal.close()
    return 0


def cmd_status(args) -> int:
    from trainsh.runtime.runner import attach_line, local_tmux_socket

    journal = _journal()
    try:
        jobs = [j for j in journal.jobs(None if args.all else 200)
                if args.all or j.shown_status in ("running", "interrupted")]
        if not jobs:
            print("no running or interrupted jobs" + ("" if args.all else " (--all shows finished ones)"))
            return 0
        sock = local_tmux_socket()
        for j in jobs:
            print(f"{j.id}  {j.shown_status:<12} {_when(j.created)}  {j.recipe_path}")
            if j.error:
                print(f"    {j.error}")
            for s in journal.sessions(j.id):
                if s["status"] != "open":
                    continue
                spec = "local" if s["host"] == "local" else j.hosts.get(s["host"], "local")
                attach = attach_line(spec, s["real"], sock)
                print(f"    session {s['name']:<12} on {s['host']:<10} {attach}")
            _print_machines(journal, j.id)
    finally:
        journal.close()
    return 0


def _print_machines(journal, job_id: str) -> None:
    """The job's machines that are still up, and how to stop each."""
    import sqlite3

    from trainsh.runtime import clouds  # noqa: F401  (registers the cloud kinds)
    from trainsh.runtime.machines import KINDS, Kind, _machine

    try:
        rows = journal.db.execute("SELECT * FROM machines WHERE job_id=? ORDER BY rowid", (job_id,)).fetchall()
    except sqlite3.OperationalError:  # a journal from before machines were kept
        return
    for m in map(_machine, rows):
        if m.state in ("released", "stopped", "gone"):
            continue
        kind = KINDS.get(m.kind) or Kind()
        whose = "the job's" if m.ours else "yours, from before the job"
        print(f"    machine {kind.describe(m)} for @{m.host}: up ({whose}); stop it with: "
              f"{kind.release_hint(m)}")


def cmd_logs(args) -> int:
    journal = _journal()
    try:
        if args.last or args.job:
            jobs = journal.jobs(1) if args.last else [_one_job(journal, args.job)]
            if not jobs:
                print("no jobs yet")
                return 0
            show_job(journal, jobs[0])
            return 0
        jobs = journal.jobs(10)
        if not jobs:
            print("no jobs yet")
        for j in jobs:
            print(f"{j.id}  {j.shown_status:<12} {_when(j.created)}  {j.folder / 'job.log'}")
        if jobs:
            print("train recipe logs ID (or --last) shows one job with each step's output")
    finally:
        journal.close()
    return 0


def show_job(journal, job) -> None:
    print(f"job {job.id}  {job.shown_status}  {job.recipe_path}  started {_when(job.created)}")
    if job.error:
        print(f"error: {job.error}")
    for row in journal.steps(job.id):
        took = ""
        if row["started"] and row["ended"]:
            took = f" {row['ended'] - row['started']:.2f}s"
        code = "" if row["exit_code"] is None else f" exit {row['exit_code']}"
        print(f"[{row['idx'] + 1}] line {row['line']} {row['status']}{code}{took}: {row['source']}")
        err = row["detail"].get("error")
        if err:
            print(f"    error: {err}")
        if row["log_path"] and os.path.exists(row["log_path"]):
            for line in Path(row["log_path"]).read_text(encoding="utf-8", errors="replace").splitlines():
                print(f"    | {line}")
    print(f"full log: {job.folder / 'job.log'}")
