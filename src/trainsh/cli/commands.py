"""Handlers of `train` commands: find things, call the runtime, print."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from trainsh.cli.common import UserError
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
        "resume": cmd_resume, "attach": cmd_attach,
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
    from trainsh.runtime import clouds
    from trainsh.runtime.journal import Journal
    from trainsh.runtime.context import RunOptions
    from trainsh.runtime.runner import Runner
    from trainsh.ui import watch
    from trainsh.ui.console import Console, live_view_wanted

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
    try:
        problems, hosts, storages = _preflight(recipe, variables, hosts, storages, pick, exec_mode)
    except RecipeErrors as e:
        report(e)
        return 2
    if problems:
        for line in problems:
            print(f"train: {line}", file=sys.stderr)
        return 2
    _check_config()
    picks = None
    if pick is not None:
        picks = {pick: _pick_before(recipe, pick)}
        if "instance" in picks[pick]:  # an instance of the user's: the host is that machine
            hosts[pick] = f"{clouds.pick_cloud(recipe, pick)}:{picks[pick]['instance']}"
            picks = None
    console = Console(visual=not args.no_visual)
    journal = Journal()
    options = RunOptions(keep_sessions=args.keep_sessions, keep_hosts=args.keep_hosts,
                         autostop=autostop, picks=picks, exec=exec_mode,
                         recover=getattr(args, "recover", None))
    runner = Runner.start(journal, recipe, console, options, variables, hosts, storages)
    console.plain(f"job {runner.job.id}: {recipe.path} ({len(recipe.steps)} steps)")
    try:  # `train exec` prints its commands' output: plain lines there
        if picks and not _rent_picked(runner, recipe, pick):
            return 1
        rc = watch.run(runner, journal, console, attach=getattr(args, "attach", False),
                       live=not exec_mode and live_view_wanted(args.no_visual))
        if exec_mode and rc == 1:  # `train exec` ends as its command did: that exit code
            failed = next((r for r in journal.steps(runner.job.id) if r["status"] == "failed"), None)
            if failed and failed["exit_code"]:
                return failed["exit_code"]
        return rc
    finally:
        journal.close()


def _preflight(recipe, variables: dict[str, str], hosts: dict[str, str], storages: dict[str, str],
               pick: str | None = None, exec_mode: bool = False):
    """Everything that can be known before the first step, so that a run which cannot go
    through starts nothing: (problems, hosts, storages), the last two with `train exec`'s
    names added. Steps or hosts this version cannot run raise RecipeErrors."""
    from trainsh.runtime import preflight

    problems = preflight.unknown_vars(recipe, variables) + \
        preflight.unknown_overrides(recipe, hosts, storages, exec_mode)
    if problems:
        return problems, hosts, storages
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
        raise RecipeErrors(unsupported)
    problems = preflight.unfilled(recipe, {k: v for k, v in {**recipe.hosts, **hosts}.items() if k != pick},
                                  {**recipe.storages, **storages}, {**recipe.variables, **variables})
    return problems, hosts, storages


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
    from trainsh.cloud.provider import ProviderError, provider
    from trainsh.runtime import clouds

    name = clouds.pick_cloud(recipe, host)
    try:
        if sys.stdin.isatty() and sys.stderr.isatty():
            return clouds.pick_before(recipe, host, name)
        cloud = provider(name)
        own, offers, _ = clouds.candidates(cloud, clouds.pick_options(recipe, host, name),
                                           clouds.holds_now())
    except ProviderError as e:
        raise UserError(str(e), 1) from None
    except (LookupError, EOFError) as e:
        raise UserError(f"--pick-host {host}: {e or 'no machine chosen'}", 1) from None
    if own:
        return {"instance": own[0].id}
    if offers:
        return {"offer": offers[0].id}
    raise UserError(f"--pick-host {host}: no {cloud.title} offer matches "
                    f"(train {name} search shows what there is)", 1)


def _rent_picked(runner, recipe, host: str) -> bool:
    """An offer chosen with --pick-host for a host no pick step fills is rented as the job
    starts, journaled as the job's like any it rents."""
    from trainsh.cloud.provider import ProviderError
    from trainsh.recipe.model import Cloud
    from trainsh.runtime import clouds
    from trainsh.runtime.context import StepFailed

    if any(isinstance(s, Cloud) and s.action == "pick" and s.host == host for s in recipe.steps):
        return True  # the step rents it, in its turn
    ctx = runner.ctx
    name = clouds.pick_cloud(recipe, host)  # no pick step for host: Vast.ai
    try:
        inst, _ = clouds.take(ctx, name, host, clouds.pick_options(recipe, host, name),
                              ctx.job.options["picks"][host], resume=False)
    except (ProviderError, StepFailed) as e:
        runner.journal.set_job(ctx.job.id, status="failed", pid=None, error=f"--pick-host {host}: {e}")
        print(f"train: --pick-host {host}: {e}", file=sys.stderr)
        return False
    ctx.host_specs[host] = f"{name}:{inst.id}"
    ctx.console.info(f"@{host} = {name} {inst.id} (rented from the offer chosen)")
    return True


def cmd_run(args) -> int:
    path = find_recipe(args.recipe)
    if path.suffix == ".py":
        return _run_program(path, args)
    try:
        recipe = parse_file(path)
    except RecipeErrors as e:
        report(e)
        return 2
    return _run_recipe(recipe, args)


def _run_program(path: Path, args) -> int:
    """A Python recipe (trainsh/program/): main(job, ...) with the --vars as its arguments."""
    from trainsh.program.launch import run
    from trainsh.program.load import ProgramError

    if getattr(args, "pick_host", None):
        raise UserError("--pick-host is for .recipe files: a Python recipe picks with job.host()")
    _check_config()
    try:
        return run(str(path), _pairs(args.var, "var"), _pairs(args.host, "host"),
                   _pairs(args.storage, "storage"), no_visual=args.no_visual,
                   keep_sessions=args.keep_sessions, keep_hosts=args.keep_hosts,
                   attach=getattr(args, "attach", False), autostop=_autostop(getattr(args, "autostop", None)))
    except ProgramError as e:
        raise UserError(str(e)) from None


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
    from trainsh.remote.shell import ShellError
    from trainsh.runtime.journal import JobHeld, Journal
    from trainsh.runtime.context import RunOptions, StepFailed
    from trainsh.runtime.runner import Runner
    from trainsh.ui import watch
    from trainsh.ui.console import Console, live_view_wanted

    _check_config()
    journal = Journal()
    try:
        if args.job:
            job = _one_job(journal, args.job)
            status = job.shown_status
            if job.parent:  # its parent's resume replays the job.parallel call that made it
                raise UserError(f"job {job.id} is a child job of {job.parent}: "
                                f"train recipe resume {job.parent}")
            if status == "done":
                raise UserError(f"job {job.id} finished; nothing to resume")
            try:
                job = journal.claim(job.id)
            except JobHeld as e:
                raise UserError(str(e), 1) from None
        else:
            job = status = None
            for candidate in journal.jobs():
                if candidate.shown_status != "interrupted" or candidate.parent:
                    continue
                try:  # (another resume may take it between the look and the claim)
                    job, status = journal.claim(candidate.id), "interrupted"
                    break
                except JobHeld:
                    continue
            if job is None:
                raise UserError("no interrupted job to resume (train recipe jobs lists them)")
        program = bool(job.options.get("program"))
        if getattr(args, "from_scratch", False):
            journal.set_job(job.id, status=status, pid=None)  # (left as it was, never resumed)
            if not program:
                raise UserError("--from-scratch is for a Python recipe's job; run a recipe again "
                                f"with: train recipe run {job.recipe_path}")
            return _program_again(job, args)
        console = Console(visual=not args.no_visual)
        console.plain(f"resuming job {job.id}: {job.recipe_path} (was {status})")
        if program:
            from trainsh.program.launch import resume as resume_program
        go = resume_program if program else Runner.resume
        try:
            runner = go(journal, job, console, RunOptions(keep_sessions=args.keep_sessions,
                                                          keep_hosts=args.keep_hosts))
        except (ShellError, StepFailed) as e:  # a host of its sessions cannot be reached
            journal.set_job(job.id, status=status, pid=None)
            raise UserError(f"cannot resume job {job.id}: {e}", 1) from None
        return watch.run(runner, journal, console, resumed=True,
                         live=live_view_wanted(args.no_visual))
    finally:
        journal.close()


def _program_again(job, args) -> int:
    from trainsh.program.launch import run
    from trainsh.program.load import ProgramError

    try:
        return run(job.recipe_path, job.variables, job.host_overrides,
                   job.options.get("storage_overrides", {}), no_visual=args.no_visual,
                   keep_sessions=args.keep_sessions, keep_hosts=args.keep_hosts)
    except ProgramError as e:
        raise UserError(str(e)) from None


def cmd_attach(args) -> int:
    from trainsh.ui import attach

    journal = _journal()
    try:
        if args.job:
            job = _one_job(journal, args.job)
        else:
            job = next((j for j in journal.jobs(50) if j.shown_status == "running"), None)
            if job is None:
                raise UserError("no running job to attach to (train recipe status lists jobs)")
        if not attach.open_sessions(journal, job):
            raise UserError(f"job {job.id} ({job.shown_status}) has no open tmux session")
        try:
            name, added = attach.ensure_view(journal, job, rw=args.rw)
        except OSError as e:
            raise UserError(f"cannot open the view: {e}") from None
    finally:
        journal.close()
    if args.detach or not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"view of job {job.id}: {attach.attach_line(name)}")
        return 0
    return attach.go(name)


def cmd_check(args) -> int:
    """Each recipe as `run` would see it: with --var/--host/--storage, the same checks a run
    makes before its first step; without, placeholders still to fill are named, not faults."""
    variables = _pairs(args.var, "var")
    hosts = _pairs(args.host, "host")
    storages = _pairs(args.storage, "storage")
    given = bool(variables or hosts or storages)
    bad = 0
    for name in args.recipe:
        path = find_recipe(name)
        if path.suffix == ".py":
            bad += not _check_program(path, variables, given)
            continue
        try:
            recipe = parse_file(path)
            problems, _, _ = _preflight(recipe, variables, hosts, storages)
        except RecipeErrors as e:
            report(e)
            bad += 1
            continue
        unfilled = [p for p in problems if " is a placeholder: " in p]
        problems = [p for p in problems if p not in unfilled or given]
        if problems:
            for line in problems:
                print(f"train: {line}", file=sys.stderr)
            bad += 1
            continue
        print(f"{path}: ok ({len(recipe.steps)} steps)")
        for line in unfilled:  # (a run gives them with --host/--storage)
            print(f"  to fill when it runs: {line.split(': ', 1)[-1] if line.startswith(str(path)) else line}")
    return 2 if bad else 0


# ---- recipes on disk -----------------------------------------------------------------------

def _check_program(path: Path, variables: dict[str, str], given: bool = True) -> bool:
    """Import a Python recipe and check main() and the --vars (without --vars, a parameter
    without default is one a run must give, not a fault)."""
    from trainsh.program.launch import check
    from trainsh.program.load import ProgramError

    try:
        print(check(str(path), variables, required=given))
        return True
    except ProgramError as e:
        print(f"train: {e}", file=sys.stderr)
        return False


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
    if path.suffix == ".py":  # its steps are what it calls when it runs: there is no list
        return 0 if _check_program(path, {}, given=False) else 2
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
    if path.suffix == ".py":
        return 0 if _check_program(path, {}, given=False) else 2
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
    from trainsh.ui import table

    journal = _journal()
    try:
        jobs = _families(journal.jobs(None if args.all else 20))
        if not jobs:
            print("no jobs yet")
            return 0
        rows = [[j.id, j.shown_status, _when(j.created),
                 format_seconds(int(j.updated - j.created)) if j.shown_status != "running" else "-",
                 j.recipe_path] for j in jobs]
        for line in table.render(["JOB", "STATUS", "STARTED", "TOOK", "RECIPE"], rows,
                                 right={3}, limit=table.width()):
            print(line)
    finally:
        journal.close()
    return 0


def cmd_status(args) -> int:
    from trainsh.runtime.context import attach_line, local_tmux_socket
    from trainsh.ui import table
    from trainsh.visible import visible

    journal = _journal()
    try:
        sock = local_tmux_socket()
        local_alive = None  # names of the sessions on this machine's tmux server, read once
        shown = []
        for j in _families(journal.jobs(None if args.all else 200)):
            live = j.shown_status in ("running", "interrupted")
            sessions = []
            for s in journal.sessions(j.id):
                if s["status"] != "open":
                    continue
                spec = "local" if s["host"] == "local" else j.hosts.get(s["host"], "local")
                if not live and spec == "local":
                    # A finished job's session stays listed while it is open; here that is
                    # cheap to check (on a remote host it would take a connection).
                    if local_alive is None:
                        local_alive = _local_sessions(sock)
                    if s["real"] not in local_alive:
                        continue
                sessions.append((s, spec))
            if args.all or live or sessions:
                shown.append((j, sessions))
        if not shown:
            print("no running or interrupted jobs, and no sessions left open"
                  + ("" if args.all else " (--all shows finished jobs)"))
            return 0
        rows, under = [], []
        limit = table.width()
        for j, sessions in shown:
            steps = journal.steps(j.id)
            now = next((r for r in reversed(steps) if r["status"] in ("running", "interrupted", "failed")), None)
            step = f"{now['idx'] + 1}: {now['source']}" if now else "-"
            # the recipe's file name: its folder is in `recipe logs`, and a path pushed the
            # step out of an 80-column terminal
            lost = j.options.get("lost", [])
            # from a loss until a pick gives the host its replacement, a running job is recovering
            shown_status = "recovering" if j.shown_status == "running" and any(
                not x.get("replaced_by") for x in lost) else j.shown_status
            rows.append([j.id, shown_status, _when(j.created), os.path.basename(j.recipe_path), step])
            extra = [f"    {j.error}"] if j.error else []
            extra += [f"    lost {x['kind']} {x['ident']} for @{x['host']} ({x['why']}) at {_when(x['at'])}, "
                      f"${x['cost']:.3f} spent on it; "
                      + (f"replaced by {x['kind']} {x['replaced_by']}" if x.get("replaced_by") else "recovering")
                      for x in lost]
            for s, spec in sessions:
                head = f"    session {s['name']:<12} on {s['host']:<10}"
                attach = attach_line(spec, s["real"], sock)  # whole: it is there to be copied
                # on a terminal too narrow for a cloud's ssh line, the short way to the same
                fits = limit is None or len(head) + 1 + len(attach) <= limit
                extra.append(f"{head} {attach}" if fits else f"{head} (train recipe attach {j.id})")
            if sessions:
                extra.append(f"    all its sessions at once: train recipe attach {j.id}")
            extra += _machine_lines(journal, j.id)
            under.append(extra)
        lines = table.render(["JOB", "STATUS", "STARTED", "RECIPE", "STEP"], rows, flex=None, limit=limit)
        print(lines[0])
        for line, extra in zip(lines[1:], under):
            print(line)
            for e in map(visible, extra):  # errors and machines carry a cloud's words
                print(table.cut(e, limit) if limit and not e.lstrip().startswith("session ") else e)
    finally:
        journal.close()
    return 0


def _families(jobs: list) -> list:
    """Jobs newest first, each job's children (job.parallel's JOB/1, JOB/2, ...) right after
    it in their order."""
    kids: dict[str, list] = {}
    for j in jobs:
        if j.parent:
            kids.setdefault(j.parent, []).append(j)
    out = []

    def add(j) -> None:
        out.append(j)
        for k in sorted(kids.get(j.id, []), key=lambda c: int(c.id.rpartition("/")[2])):
            add(k)

    for j in jobs:
        if not j.parent or not any(p.id == j.parent for p in jobs):
            add(j)
    return out


def _local_sessions(socket: str | None) -> set[str]:
    argv = ["tmux", *(["-S", socket] if socket else []), "list-sessions", "-F", "#{session_name}"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(r.stdout.split()) if r.returncode == 0 else set()


def _machine_lines(journal, job_id: str) -> list[str]:
    """The job's machines that are still up, and how to stop each."""
    import sqlite3

    from trainsh.runtime.machines import Machines, kind_of

    try:
        machines = Machines.reading(journal, job_id).all()
    except sqlite3.OperationalError:  # a journal from before machines were kept
        return []
    lines = []
    for m in machines:
        if m.state in ("released", "stopped", "gone"):
            continue
        kind = kind_of(m)
        if kind.current(m) in ("stopped", "gone"):  # stopped since (autostop, by hand): not up
            continue
        whose = "the job's" if m.ours else "yours, from before the job"
        lines.append(f"    machine {kind.describe(m)} for @{m.host}: up ({whose}); stop it with: "
                     f"{kind.release_hint(m)}")
    job = journal.job(job_id)
    if job is not None and job.shown_status != "running":
        lines += [f"    {line}" for line in Machines.reading(journal, job_id).rents_in_flight(look=True)]
    return lines


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


SAID = {"ok": "    ok {}", "info": "    {}", "plain": "    {}"}


def show_job(journal, job) -> None:
    from trainsh.visible import visible

    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def c(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    status = {"failed": "1;31", "done": "32", "interrupted": "35", "running": "33"}
    print(f"job {job.id}  {c(status.get(job.shown_status, '0'), job.shown_status)}  "
          f"{job.recipe_path}  started {_when(job.created)}")
    if job.error:
        print(c("31", f"error: {visible(job.error)}"))
    for lost in job.options.get("lost", []):  # each machine a recovery replaced (recover=N)
        then = f"; replaced by {lost['kind']} {lost['replaced_by']} in {lost['replaced_at'] - lost['at']:.0f}s" \
            if lost.get("replaced_by") else ""
        print(c("33", f"lost: @{lost['host']} {lost['kind']} {lost['ident']} ({visible(lost['why'])}) at "
                      f"{_when(lost['at'])} during step {lost['step']}, ${lost['cost']:.3f} spent on it{then}"))
    for row in journal.steps(job.id):
        took = ""
        if row["started"] and row["ended"]:
            took = f" {row['ended'] - row['started']:.2f}s"
        code = "" if row["exit_code"] is None else f" exit {row['exit_code']}"
        failed = row["status"] == "failed"
        head = f"[{row['idx'] + 1}] line {row['line']} {row['status']}{code}{took}"
        print(f"{c('1;31' if failed else status.get(row['status'], '0'), head)}: {row['source']}")
        for level, text in row["detail"].get("said", []):  # the step's result lines, as shown
            if text.startswith("exit "):  # a command's exit code and time: the line above has them
                continue
            print(SAID.get(level, "    {}").format(text) if level != "warn" else
                  "    " + c("33", "warning:") + f" {text}")
        err = row["detail"].get("error")
        if err:
            print(c("31", f"    error: {visible(err)}"))
        if row["log_path"] and os.path.exists(row["log_path"]):
            for line in Path(row["log_path"]).read_text(encoding="utf-8", errors="replace").splitlines():
                print(c("31" if failed else "2", f"    | {line}"))
    print(f"full log: {job.folder / 'job.log'}")
