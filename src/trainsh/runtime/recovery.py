"""A job that loses its machine and goes on: `recover=N` on a cloud pick (or `train recipe run
--recover N`) or on a `slurm.alloc` lets the job survive losing that host's machine (its
instance, its allocation) up to N times.

Lost means the machine's kind (runtime/reach/, `Kind.lost`) reports it no longer running for
the job by no doing of the job's, when a step on it fails: a cloud machine outbid, reclaimed,
stopped by someone else, exited or gone; an allocation cancelled from outside, preempted, ended
by a node failure or its time limit (reach/slurm.py says which of Slurm's end states count). A
command that fails on a running machine is not a loss. The connection to a lost cloud machine
drops when it goes (reach/cloud.py's `lost` hook asks the cloud at once), and an allocation's
sessions end with it, so a loss is noticed within a provider call of it.

On a loss the job journals it (job option `lost`: host, kind, machine, why, when, cost so far),
says so, ends what is left of the machine if the job made it (destroys the instance, cancels
the allocation; unless --keep-hosts), and marks the steps to run again as `lost` in the
journal: the step that gave the host its machine (the pick, the slurm.alloc), then every later
step up to the one that failed that involves the host or a session on it. The runner then goes
on from that step, skipping what is done, so exactly those steps run again, and a resume after
a kill continues the recovery the same way (a replacement rent is journaled before it is sent
and looked up by its own label, `-rK` for the K-th replacement; a replacement allocation is
looked up by its Slurm job name, which ends the same way).
"""

from __future__ import annotations

import threading
import time

from trainsh.numbers import format_seconds
from trainsh.recipe import model as m
from trainsh.runtime import notify
from trainsh.runtime.context import Context, StepFailed
from trainsh.runtime.journal import Journal
from trainsh.runtime.machines import Machines, kind_of
from trainsh.runtime.reach.cloud import KINDS as CLOUD_KINDS
from trainsh.runtime.reach.cloud import money, stop_heartbeat
from trainsh.settings import config


# Journaled states a machine is left in by the job's own doing (vast.stop, slurm.release):
# the cloud then reports it stopped, and that is no loss.
BY_THE_JOB = ("released", "stopped")


def _gives(step: m.Step) -> str | None:
    """The host a step gives a machine to (a cloud's pick, `pick`, `slurm.alloc`), or None."""
    if isinstance(step, m.Pick) or isinstance(step, m.Cloud) and step.action == "pick":
        return step.host
    if isinstance(step, m.Slurm) and step.action == "alloc":
        return step.name
    return None


def pick_of(recipe: m.Recipe, host: str) -> int | None:
    """The index of the step that gives `host` its machine (a pick or a slurm.alloc), or None."""
    return next((i for i, s in enumerate(recipe.steps) if _gives(s) == host), None)


def budget(ctx: Context, pick: m.Step) -> int:
    """How many losses of the pick's machine the job may survive."""
    own = pick.option("recover")
    return int(own) if own is not None else int(ctx.job.options.get("recover") or 0)


def losses(job, host: str | None = None, kind: str | None = None) -> list[dict]:
    """The machines the job lost (job option `lost`), of `host` and/or of `kind` when given."""
    return [x for x in job.options.get("lost", [])
            if (host is None or x["host"] == host) and (kind is None or x["kind"] == kind)]


def name_for(job, host: str) -> str:
    """What host's machine is rented or allocated under (a cloud label, a Slurm job name):
    `-rK` on the K-th replacement of a lost one, so that a resume finds the one in flight by
    its name, never the machine that was lost."""
    k = len(losses(job, host))
    return f"trainsh-{job.id}-{host}" + (f"-r{k}" if k else "")


def replaced(ctx: Context, host: str, ident: str) -> None:
    """A pick or alloc gave `host` a machine after a loss: when, for `recipe logs`; that ends
    the recovery (`recipe status` no longer says recovering), told as config `notify.on` asks."""
    mine = losses(ctx.job, host)
    if mine and not mine[-1].get("replaced_by"):
        lost = mine[-1]
        lost.update(replaced_by=ident, replaced_at=time.time())
        ctx.journal.set_job(ctx.job.id, options=ctx.job.options)
        if "recovered" in config.get("notify.on"):
            _, problem = notify.send(
                f"job {ctx.job.id}: @{host} recovered: {lost['kind']} {lost['ident']} was lost "
                f"({lost['why']}), replaced by {lost['kind']} {ident} in "
                f"{format_seconds(int(lost['replaced_at'] - lost['at']))}")
            if problem:
                ctx.console.warn(problem)


def sessions_on(recipe: m.Recipe, host: str) -> set[str]:
    return {s.name for s in recipe.steps if isinstance(s, m.TmuxOpen) and s.host == host}


def involves(step: m.Step, host: str, sessions: set[str], kind: str) -> bool:
    """Whether `step` works on `host` or a session on it (and so runs again on a new machine of
    `kind`)."""
    if isinstance(step, (m.Command, m.Wait, m.TmuxClose)):
        return step.session in sessions
    if isinstance(step, (m.HostCommand, m.TmuxOpen, m.TmuxConfig)):
        return step.host == host
    if isinstance(step, m.Transfer):
        return host in (step.src.name, step.dst.name)
    if isinstance(step, m.Cloud):
        return step.host == host or (step.host is None and step.instance is None
                                     and step.provider == kind and step.action == "wait")
    if isinstance(step, m.Slurm):  # a slurm.wait on the allocation (an alloc's host is its login)
        return step.action == "wait" and step.host == host
    return False


def lost_host(ctx: Context, step: m.Step) -> tuple[str, int, int, str] | None:
    """(host, index of the step that gave it its machine, budget, why in words) when `step`
    failed because a machine it works on is lost and the job may recover it; None otherwise.
    One question to the machine's kind per machine asked."""
    recipe = ctx.recipe
    for host in sorted({h for h in map(_gives, recipe.steps) if h}):
        at = pick_of(recipe, host)
        mach = ctx.machines.get(host) if ctx.machines is not None else None
        if at is None or mach is None or mach.state in BY_THE_JOB:
            continue  # (one the job stopped or released itself is not lost)
        if not involves(step, host, sessions_on(recipe, host), mach.kind):
            continue
        n = budget(ctx, recipe.steps[at])
        if n <= 0:
            continue
        kind = kind_of(mach)
        lost = kind.lost(mach)
        if lost is not None:
            return host, at, n, lost[1]
        if mach.kind in CLOUD_KINDS:
            why = _unreachable(ctx, host, mach, kind)
            if why is not None:
                return host, at, n, why
    return None


def _unreachable(ctx: Context, host: str, mach, kind) -> str | None:
    """Why a cloud machine counts as lost though its cloud says it runs: ssh has not reached it
    for `cloud.lost_after` (the failed step's own retries count). Looks every few seconds while
    that lasts, and asks the cloud again every 30 s; None as soon as ssh answers."""
    handle = ctx.hosts.get(host)
    if handle is None or not hasattr(handle.shell, "reconnect"):
        return None
    shell = handle.shell
    after = config.duration("cloud.lost_after")
    began = time.monotonic() - min(shell.reconnect, after)
    asked = time.monotonic()
    while not _answers(shell):
        if time.monotonic() - began >= after:
            return f"unreachable for {format_seconds(after)} while its cloud said it runs"
        if time.monotonic() - asked >= 30:
            asked = time.monotonic()
            lost = kind.lost(mach)
            if lost is not None:
                return lost[1]
        time.sleep(min(5.0, max(0.5, after / 10)))
    return None


def _answers(shell) -> bool:
    saved, shell.reconnect = shell.reconnect, 0.0  # one try: the caller keeps the time
    try:
        return shell.run(["true"], timeout=15).ok
    except Exception:  # noqa: BLE001 - any failure to answer is no answer
        return False
    finally:
        shell.reconnect = saved


def recover(ctx: Context, idx: int, lost: tuple[str, int, int, str], keep_hosts: bool) -> int:
    """Journal the loss of host's machine, end what is left of it if the job made it, and set
    up the replay; returns the index to go on from (the pick or alloc). Raises StepFailed
    naming every machine lost once the budget is spent."""
    host, at = lost[0], lost[1]
    mach = lose(ctx, idx, lost, keep_hosts)
    sessions = sessions_on(ctx.recipe, host)
    for j in range(at, idx + 1):
        if j == at or involves(ctx.recipe.steps[j], host, sessions, mach.kind):
            ctx.journal.step_update(ctx.job.id, j, status="lost")
    return at


def lose(ctx: Context, idx: int, lost: tuple[str, int, int, str], keep_hosts: bool):
    """The loss itself, for a recipe's replay and a program's HostLost alike: journal it (once,
    however often a resume finds it), say it, end what is left of the machine if the job made
    it, and forget the host's sessions and machine so that its pick runs anew. Returns the
    lost machine; raises StepFailed naming every machine lost once the budget is spent."""
    host, at, n, why = lost
    mach = ctx.machines.get(host)
    kind = kind_of(mach)
    cost = kind.spent(mach)
    known = losses(ctx.job)
    if not any(x["host"] == host and x["ident"] == mach.ident for x in known):
        # (a resume that finds the same loss again, after a kill in here, counts it once)
        known = [*known, {"host": host, "kind": mach.kind, "ident": mach.ident, "why": why,
                          "at": time.time(), "cost": round(cost, 4), "step": idx + 1}]
        ctx.job.options["lost"] = known
        ctx.journal.set_job(ctx.job.id, options=ctx.job.options)
    mine = losses(ctx.job, host)
    names = ", ".join(f"{x['kind']} {x['ident']} ({x['why']})" for x in mine)
    spent = len(mine) > n
    cloud = mach.kind in CLOUD_KINDS
    what = "machine" if cloud else "allocation"
    ctx.events.warn(f"@{host}: {mach.kind} {mach.ident} was lost ({why}) at step {idx + 1}; "
                    + ("no recovery left" if spent else
                       f"recovering ({len(mine)} of {n}): a new {what}, then its steps again"))
    if cloud:  # (its autostop heartbeat, kept or not: nothing of the job works there now)
        stop_heartbeat(mach.kind, mach.ident)
    if mach.ours and not keep_hosts:
        try:
            said = kind.discard(mach)
            ctx.machines.set_state(host, "gone")
            ctx.events.info(f"{mach.kind} {mach.ident} {said}"
                            + (f" ({money(cost)} spent on it)" if cloud else ""))
        except Exception as e:  # noqa: BLE001 - said; the replacement matters more
            hint = f"train {mach.kind} destroy {mach.ident}" if cloud else kind.release_hint(mach)
            ctx.events.warn(f"{mach.kind} {mach.ident} could not be {'destroyed' if cloud else 'cancelled'}: "
                            f"{e} ({hint})")
            ctx.machines.set_state(host, "lost")
    else:
        ctx.machines.set_state(host, "lost")
    if spent:  # (a lost machine the job rented is destroyed all the same: it would bill on)
        raise StepFailed(f"@{host} lost {len(mine)} {what}s, more than recover={n}: {names}") from None
    # the host's sessions went with the machine; the host is reached anew after the pick/alloc.
    # An allocation's sessions live on its login host, which is still there: their tmux
    # sessions are closed, so that the replacement's open the same names
    handle = None if cloud else ctx.hosts.get(host)
    for s in list(ctx.sessions.values()):
        if s.host == host:
            if handle is not None:
                try:
                    handle.tmux.close(s)
                except Exception as e:  # noqa: BLE001 - said; opening it again says the rest
                    ctx.events.warn(f"session {s.name} could not be closed: {e}")
            del ctx.sessions[s.name]
            ctx.journal.session_closed(ctx.job.id, s.name, status="gone")
    ctx.hosts.pop(host, None)
    ctx.host_specs[host] = "placeholder"
    return mach


def watch(ctx: Context, stop: threading.Event, every: float = 30.0) -> threading.Thread | None:
    """While the job runs, ask the cloud about each cloud machine the job may recover, once
    every `every` seconds: one its cloud no longer runs has its ssh connection ended, so a step
    waiting on it fails at once (each dropped call asks the cloud, reach/cloud.py's `lost`) and
    the runner recovers it. A loss the cloud reports while the machine still answers ssh is so
    noticed within `every` seconds, at one provider call per machine per `every`."""
    def hosts() -> list[str]:  # (asked each round: a Python recipe's picks come as it runs)
        return [s.host for s in list(ctx.recipe.steps)
                if _gives(s) and not isinstance(s, m.Slurm) and budget(ctx, s) > 0]

    if not hosts() and not ctx.job.options.get("program"):
        return None

    def loop() -> None:
        journal = Journal.reader()  # (sqlite connections stay in their thread)
        try:
            machines = Machines.reading(journal, ctx.job.id)
            while not stop.wait(every):
                for host in hosts():
                    handle, mach = ctx.hosts.get(host), machines.get(host)
                    if handle is None or mach is None or mach.kind not in CLOUD_KINDS \
                            or mach.state in BY_THE_JOB:
                        continue
                    lost = CLOUD_KINDS[mach.kind].lost(mach)
                    if lost is not None and hasattr(handle.shell, "disconnect"):
                        handle.shell.lost_as = (f"{mach.kind} {mach.ident} was lost ({lost[1]})", lost[0])
                        handle.shell.disconnect()
        finally:
            journal.close()

    t = threading.Thread(target=loop, name="trainsh-recovery-watch", daemon=True)
    t.start()
    return t
