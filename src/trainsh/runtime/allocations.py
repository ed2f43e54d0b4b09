"""Slurm allocations in a job: the `slurm.alloc/wait/release` steps, and the host an
allocation is (`@NAME` after `slurm.alloc @login as NAME`, or `--host NAME=slurm:LOGIN?...`).

Each allocation is a journaled machine (`machines.py`, kind `slurm`, how `allocated`, place =
the login host's spec), so a failed job cancels it, an interrupted one names it, and a resumed
one finds it again by its Slurm job id. The Slurm side lives in cloud/slurm.py.
"""

from __future__ import annotations

import shlex
import time

from trainsh.cloud import slurm
from trainsh.kinds import slurm as slurm_spec
from trainsh.recipe import model as m
from trainsh.remote.tmux import Tmux
from trainsh.runtime import steps
from trainsh.runtime.context import Context, HostHandle, StepFailed, local_tmux_socket
from trainsh.runtime.reach.base import HostError, Machine
from trainsh.runtime.reach.slurm import login_shell
from trainsh.runtime.recovery import name_for, replaced
from trainsh.settings import config
from trainsh.settings.hosts import HostsError

_LOGINS: dict[str, object] = {}  # login spec -> shell, shared by every allocation on it


def _login(spec: str):
    if spec not in _LOGINS:
        try:
            _LOGINS[spec] = login_shell(spec)
        except HostError as e:
            raise StepFailed(f"login host {spec}: {e}") from None
    return _LOGINS[spec]


def _run_dir(ctx: Context, sh, name: str) -> str:
    """The allocation's own run folder (exit codes, pane logs, its environment), beside the
    login host's: cleaning up the login host must not remove it under a live session."""
    if sh.is_local():
        return str(ctx.job.folder / f"alloc-{name}")
    return f"{sh.home()}/.cache/trainsh/run/{ctx.job.id}-{name}"


def is_allocation(ctx: Context, name: str) -> bool:
    mach = ctx.machines.get(name) if ctx.machines else None
    if mach is not None and mach.kind == "slurm":
        return True
    spec = ctx.host_specs.get(name, "")
    return "slurm:" in spec or _slurm_spec(ctx, spec) is not None


def _slurm_spec(ctx: Context, spec: str) -> str | None:
    try:
        return slurm.host_spec(ctx.expand(spec, "a host spec"))
    except HostsError as e:
        raise StepFailed(str(e)) from None


def _submit(ctx: Context, name: str, login_spec: str, options: dict[str, str]) -> Machine:
    sh = _login(login_spec)
    label = login_spec if login_spec == "local" else sh.name
    run_dir = _run_dir(ctx, sh, name)
    try:
        job, st = slurm.submit(sh, label, name_for(ctx.job, name), options, run_dir)
    except slurm.SlurmError as e:
        raise StepFailed(str(e)) from None
    granted = st.state == "RUNNING"
    mach = Machine(name, "slurm", job, "allocated", login_spec, "running" if granted else "pending")
    ctx.machines.add(mach)  # at once: from here on a failure cancels it, a resume finds it
    ctx.console.ok(f"slurm job {job} {'granted' if granted else 'submitted'} on {label} for @{name}"
                   + (" (" + " ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else ""))
    _fail_if_never(ctx, mach, sh, label, st, keep=False)
    return mach


def _fail_if_never(ctx: Context, mach: Machine, sh, where: str, st: slurm.State, keep: bool) -> None:
    """A pending allocation whose reason can never clear by itself fails at once, in one line
    with Slurm's reason and what to change, and is cancelled (kept with keep=true, or when it
    is not the job's own)."""
    try:
        change = slurm.never_starts(sh, where, st)
    except slurm.SlurmError:
        change = None
    if change is None:
        return
    why = f"slurm job {mach.ident} on {where} can never start as asked: Slurm's reason is {st.code}" \
        + (f" ({st.said})" if st.said else "") + f"; {change}"
    if keep or mach.how == "found":
        raise StepFailed(f"{why}; kept: cancel it with train slurm cancel {shlex.quote(mach.place)} {mach.ident}")
    try:
        slurm.cancel(sh, where, mach.ident)
    except slurm.SlurmError as e:
        raise StepFailed(f"{why}; cancelling it failed: {e}") from None
    ctx.machines.set_state(mach.host, "released")
    raise StepFailed(f"{why}; cancelled")


def _allocation(ctx: Context, name: str) -> Machine:
    """The allocation behind host `name`: the journaled one, or a new one for a
    `slurm:LOGIN?...` spec (`?job=ID` names one held outside the job: never ours to cancel)."""
    mach = ctx.machines.get(name)
    if mach is not None and mach.kind == "slurm":
        return mach
    spec = _slurm_spec(ctx, ctx.host_specs.get(name, ""))
    if spec is None:
        raise StepFailed(f"@{name} is not a Slurm allocation (make one with 'slurm.alloc @login as "
                         f"{name}' or --host {name}=slurm:LOGIN?nodes=N)")
    try:
        parsed = slurm_spec.Spec.parse(spec[len("slurm:"):])
    except ValueError as e:
        raise StepFailed(f"host @{name}: {e}") from None
    login = _login_spec(ctx, parsed.login)
    if parsed.job:
        mach = Machine(name, "slurm", parsed.job, "found", login, "")
        ctx.machines.add(mach)
        return mach
    return _submit(ctx, name, login, dict(parsed.options))


def _login_spec(ctx: Context, login: str) -> str:
    """A login written as a recipe host name stands for that host's spec."""
    if login in ctx.host_specs and login != "local":
        return ctx.host(login).spec
    return login


def _wait_ready(ctx: Context, mach: Machine, timeout: float, poll: float, keep: bool) -> slurm.State:
    """Poll until the allocation runs with its environment recorded; on timeout cancel it
    (unless keep) and fail."""
    sh = _login(mach.place)
    where = mach.place if mach.place == "local" else sh.name
    start = time.monotonic()
    checked = None  # the last pending reason looked at for one that never clears
    shown, tick = "", 0.05  # quick at first: a free cluster starts a job in well under a second
    try:
        while True:
            try:
                st = slurm.state(sh, where, mach.ident)
            except slurm.SlurmError as e:
                raise StepFailed(str(e)) from None
            if st.state == "RUNNING":
                ctx.machines.set_state(mach.host, "running")
                return st
            if st.reason != checked:  # (looked at once a reason: it may cost a round trip)
                _fail_if_never(ctx, mach, sh, where, st, keep)
                checked = st.reason
            if st.ended:
                was = mach.state
                ctx.machines.set_state(mach.host, "gone")
                if was == "running":
                    raise StepFailed(f"slurm job {mach.ident} on {where} has ended "
                                     f"({st.state.lower()}: its time limit, or cancelled)")
                raise StepFailed(f"slurm job {mach.ident} on {where} ended ({st.state.lower()}) "
                                 "before it ran")
            line = f"@{mach.host}: slurm job {mach.ident} {st.state.lower()}"
            if st.state == "PENDING":
                line += f" ({st.reason or 'queued'}" + (f", position {st.position}" if st.position else "") + ")"
            if line != shown:
                ctx.console.live(line)
                ctx.events.record("info", line)
                shown = line
            if time.monotonic() - start >= timeout:
                break
            time.sleep(min(tick, max(0.05, timeout - (time.monotonic() - start))))
            tick = min(poll, tick * 2)
    finally:
        ctx.console.live_done()
    limit = m.format_seconds(timeout)
    why = f"still {st.state.lower()}" + (f" ({st.reason})" if st.reason else "")
    if keep or mach.how == "found":
        raise StepFailed(f"slurm job {mach.ident} {why} after {limit}; kept: cancel it with "
                         f"train slurm cancel {mach.place} {mach.ident}")
    try:
        slurm.cancel(sh, where, mach.ident)
        ctx.machines.set_state(mach.host, "released")
    except slurm.SlurmError as e:
        raise StepFailed(f"slurm job {mach.ident} {why} after {limit}, and cancelling it failed: {e}") from None
    raise StepFailed(f"slurm job {mach.ident} {why} after {limit}: cancelled")


def host_handle(ctx: Context, name: str) -> HostHandle | None:
    """Host `name` as an allocation: the login host's shell, with sessions whose shell runs
    in the allocation. Waits (with the default wait timeout) until it runs. None when `name`
    is no allocation of the job."""
    if not is_allocation(ctx, name):
        return None
    mach = _allocation(ctx, name)
    if mach.state != "running":
        _wait_ready(ctx, mach, config.duration("defaults.wait_timeout"), 1.0, keep=False)
    sh = _login(mach.place)
    run_dir = _run_dir(ctx, sh, name)
    tmux = Tmux(sh, local_tmux_socket() if sh.is_local() else None)
    if not slurm.prepared(sh, mach.ident, run_dir):  # (granted at once: done with the submit)
        r = sh.script(slurm.prepare_script(mach.ident, run_dir), timeout=60)
        if not r.ok:
            raise StepFailed(f"@{name}: could not prepare the allocation's sessions on "
                             f"{mach.place}: {(r.stderr or r.stdout).strip()}")
    tmux.pane_command = slurm.pane_command(mach.ident, run_dir)
    tmux.log_command = slurm.log_command(run_dir, tmux.socket)
    # (its spec is the login host's: that is where its sessions are attached)
    return HostHandle(name, mach.place, sh, tmux, run_dir, node_shell=slurm.NodeShell(sh, run_dir))


# ---- steps ---------------------------------------------------------------------------------

def _submitted_before(ctx: Context, name: str, login_spec: str) -> Machine | None:
    """The allocation an alloc step asked for before the runner stopped, when the runner
    stopped before journaling it (a kill while salloc answered): found by its job name."""
    sh = _login(login_spec)
    where = login_spec if login_spec == "local" else sh.name
    try:
        found = slurm.live_named(sh, where, name_for(ctx.job, name))
    except slurm.SlurmError as e:
        raise StepFailed(str(e)) from None
    if not found:
        return None
    mach = Machine(name, "slurm", found[0], "allocated", login_spec, "pending")
    ctx.machines.add(mach)
    for extra in found[1:]:  # (one alloc step asks once; should there be more, they are not needed)
        try:
            slurm.cancel(sh, where, extra)
        except slurm.SlurmError as e:
            ctx.events.warn(f"slurm job {extra} could not be cancelled: {e}")
    return mach


def alloc(ctx: Context, idx: int, step: m.Slurm, resume: dict | None = None) -> None:
    steps.start(ctx, idx, step, login=step.host, name=step.name)
    mach = ctx.machines.get(step.name)
    login_spec = ctx.host(step.host).spec
    if mach is not None and mach.kind == "slurm" and mach.state not in ("released", "gone", "lost"):
        ctx.console.ok(f"slurm job {mach.ident} for @{step.name} was submitted before the runner "
                       "stopped: using it")
    elif resume is not None and (mach := _submitted_before(ctx, step.name, login_spec)) is not None:
        ctx.console.ok(f"slurm job {mach.ident} for @{step.name} was asked for before the runner "
                       "stopped: using it")
    else:
        options = {}
        for key, value in step.options:
            if key == "recover":  # the job's, not Slurm's
                continue
            value = ctx.expand(value, "a slurm option")
            problem = slurm_spec.option_problem(key, value)
            if problem:
                raise StepFailed(problem)
            options[key] = value
        mach = _submit(ctx, step.name, login_spec, options)
    replaced(ctx, step.name, mach.ident)  # (after a loss: when, for `recipe logs`)
    ctx.host_specs[step.name] = f"slurm:{mach.place}?job={mach.ident}"
    ctx.hosts.pop(step.name, None)
    steps.done(ctx, idx, 0, job=mach.ident, login=mach.place)


def wait(ctx: Context, idx: int, step: m.Slurm, resume: dict | None = None) -> None:
    steps.start(ctx, idx, step, host=step.host)
    mach = _allocation(ctx, step.host)
    timeout = m.Duration.parse(step.option("timeout")).seconds if step.option("timeout") \
        else config.duration("defaults.wait_timeout")
    poll = m.Duration.parse(step.option("poll")).seconds if step.option("poll") else 2.0
    keep = (step.option("keep") or "false").lower() in ("true", "yes", "1")
    begin = time.monotonic()
    st = _wait_ready(ctx, mach, timeout, poll, keep)
    took = round(time.monotonic() - begin, 2)
    steps.done(ctx, idx, 0, job=mach.ident, nodes=st.nodes, seconds=took)
    ctx.console.ok(f"slurm job {mach.ident} running on {st.nodes or '?'} after {m.format_seconds(took)}")


def release(ctx: Context, idx: int, step: m.Slurm, resume: dict | None = None) -> None:
    steps.start(ctx, idx, step, host=step.host)
    mach = ctx.machines.get(step.host)
    if mach is None or mach.kind != "slurm":
        raise StepFailed(f"@{step.host} holds no Slurm allocation of this job")
    for s in [s for s in ctx.sessions.values() if s.host == step.host]:
        steps.close_session(ctx, s)  # their shells end with the allocation
    sh = _login(mach.place)
    if mach.state not in ("released", "gone"):
        try:
            slurm.cancel(sh, mach.place if sh.is_local() else sh.name, mach.ident)
        except slurm.SlurmError as e:
            raise StepFailed(str(e)) from None
        ctx.machines.set_state(step.host, "released")
    ctx.hosts.pop(step.host, None)
    steps.done(ctx, idx, 0, job=mach.ident)
    ctx.console.ok(f"slurm job {mach.ident} released")
