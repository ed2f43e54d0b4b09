"""A job that loses its machine and goes on: `recover=N` on a pick (or `train recipe run
--recover N`) lets the job survive losing that host's machine up to N times.

Lost means the cloud reports the machine no longer running (outbid, reclaimed, stopped by
someone else, exited or gone) when a step on it fails; a command that fails on a running
machine is not a loss. The connection to a lost machine drops when it goes (reach/cloud.py's
`lost` hook asks the cloud at once), so a loss is noticed within a provider call of it.

On a loss the job journals it (job option `lost`: host, machine, why, when, cost so far),
says so, destroys the machine if the job rented it (unless --keep-hosts), and marks the
steps to run again as `lost` in the journal: the pick, then every later step up to the one
that failed that involves the host or a session on it. The runner then goes on from the
pick, skipping what is done, so exactly those steps run again, and a resume after a kill
continues the recovery the same way (the replacement's rent is journaled before it is sent
and looked up by its own label, `-rK` for the K-th replacement).
"""

from __future__ import annotations

import time

from trainsh.recipe import model as m
from trainsh.runtime.context import Context, StepFailed
from trainsh.runtime.machines import kind_of
from trainsh.runtime.reach.cloud import KINDS as CLOUD_KINDS
from trainsh.runtime.reach.cloud import money, provider, stop_heartbeat

NOT_RUNNING = ("stopped", "stopping", "gone")


def _is_pick(step: m.Step) -> bool:
    return isinstance(step, m.Pick) or isinstance(step, m.Cloud) and step.action == "pick"


def pick_of(recipe: m.Recipe, host: str) -> int | None:
    """The index of the step that gives `host` its machine (a cloud's pick or `pick`), or None."""
    return next((i for i, s in enumerate(recipe.steps) if _is_pick(s) and s.host == host), None)


def budget(ctx: Context, pick: m.Step) -> int:
    """How many losses of the pick's machine the job may survive."""
    own = pick.option("recover")
    return int(own) if own is not None else int(ctx.job.options.get("recover") or 0)


def attempt(ctx: Context, host: str) -> int:
    """How many machines of `host` this job has lost so far."""
    return sum(1 for lost in ctx.job.options.get("lost", []) if lost["host"] == host)


def sessions_on(recipe: m.Recipe, host: str) -> set[str]:
    return {s.name for s in recipe.steps if isinstance(s, m.TmuxOpen) and s.host == host}


def involves(step: m.Step, host: str, sessions: set[str], cloud: str) -> bool:
    """Whether `step` works on `host` or a session on it (and so runs again on a new machine)."""
    if isinstance(step, (m.Command, m.Wait, m.TmuxClose)):
        return step.session in sessions
    if isinstance(step, (m.HostCommand, m.TmuxOpen, m.TmuxConfig)):
        return step.host == host
    if isinstance(step, m.Transfer):
        return host in (step.src.name, step.dst.name)
    if isinstance(step, m.Cloud):
        return step.host == host or (step.host is None and step.instance is None
                                     and step.provider == cloud and step.action == "wait")
    return False


def lost_host(ctx: Context, step: m.Step) -> tuple[str, int, int, str] | None:
    """(host, pick index, budget, its state) when `step` failed because a machine it works on is lost
    and the job may recover it; None otherwise. One provider call per machine asked."""
    recipe = ctx.recipe
    for host in sorted({s.host for s in recipe.steps if _is_pick(s) and s.host}):
        at = pick_of(recipe, host)
        mach = ctx.machines.get(host) if ctx.machines is not None else None
        if at is None or mach is None or mach.kind not in CLOUD_KINDS:
            continue
        if not involves(step, host, sessions_on(recipe, host), mach.kind):
            continue
        n = budget(ctx, recipe.steps[at])
        if n <= 0:
            continue
        state = kind_of(mach).current(mach)
        if state in NOT_RUNNING:
            return host, at, n, state
    return None


def recover(ctx: Context, idx: int, lost: tuple[str, int, int, str], keep_hosts: bool) -> int:
    """Journal the loss of host's machine, destroy it if the job rented it, and set up the
    replay; returns the index to go on from (the pick). Raises StepFailed naming every machine
    lost once the budget is spent."""
    host, at, n, state = lost
    mach = ctx.machines.get(host)
    inst = CLOUD_KINDS[mach.kind].known.get(mach.ident)
    why = inst.status_words if inst is not None and state != "gone" else "gone"
    cost = inst.cost_so_far() if inst is not None else 0.0
    lost = [*ctx.job.options.get("lost", []),
            {"host": host, "kind": mach.kind, "ident": mach.ident, "why": why, "at": time.time(),
             "cost": round(cost, 4), "step": idx + 1}]
    ctx.job.options["lost"] = lost
    ctx.journal.set_job(ctx.job.id, options=ctx.job.options)
    mine = [x for x in lost if x["host"] == host]
    names = ", ".join(f"{x['kind']} {x['ident']} ({x['why']})" for x in mine)
    spent = len(mine) > n
    ctx.events.warn(f"@{host}: {mach.kind} {mach.ident} was lost ({why}) at step {idx + 1}; "
                    + ("no recovery left" if spent else
                       f"recovering ({len(mine)} of {n}): a new machine, then its steps again"))
    stop_heartbeat(mach.kind, mach.ident)
    if mach.ours and not keep_hosts:
        try:
            provider(mach.kind).destroy(mach.ident)
            ctx.machines.set_state(host, "gone")
            ctx.events.info(f"{mach.kind} {mach.ident} destroyed ({money(cost)} spent on it)")
        except Exception as e:  # noqa: BLE001 - said; the replacement matters more
            ctx.events.warn(f"{mach.kind} {mach.ident} could not be destroyed: {e} "
                            f"(train {mach.kind} destroy {mach.ident})")
            ctx.machines.set_state(host, "lost")
    else:
        ctx.machines.set_state(host, "lost")
    if spent:  # (a lost machine the job rented is destroyed all the same: it would bill on)
        raise StepFailed(f"@{host} lost {len(mine)} machines, more than recover={n}: {names}") from None
    # the host's sessions went with the machine; the host is reached anew after the pick
    for s in list(ctx.sessions.values()):
        if s.host == host:
            del ctx.sessions[s.name]
            ctx.journal.session_closed(ctx.job.id, s.name, status="gone")
    ctx.hosts.pop(host, None)
    ctx.host_specs[host] = "placeholder"
    sessions = sessions_on(ctx.recipe, host)
    for j in range(at, idx + 1):
        if j == at or involves(ctx.recipe.steps[j], host, sessions, mach.kind):
            ctx.journal.step_update(ctx.job.id, j, status="lost")
    return at
