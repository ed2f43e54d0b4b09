"""The cloud recipe steps (`vast.pick`, `runpod.wait`, ...: pick, start, stop, wait, cost) and
`--pick-host`. A cloud's instances as hosts, their release and autostop are
runtime/reach/cloud.py; everything here speaks only the `Provider` interface, so a cloud joins
by its name in recipe/model.py's CLOUDS (handlers.py takes `handlers(NAME)` for each).
"""

from __future__ import annotations

import sys
import time

from trainsh.cloud.gpus import memory
from trainsh.cloud.provider import (GONE, RUNNING, STARTING, STOPPED, UNKNOWN, CreateRequest,
                                    ProviderError, local_public_key)
from trainsh.numbers import digits, format_seconds
from trainsh.recipe.model import CLOUDS, Cloud, Duration
from trainsh.runtime import steps
from trainsh.runtime.holds import Holds, rent
from trainsh.runtime.journal import Journal
from trainsh.runtime.recovery import losses, name_for, replaced
from trainsh.runtime.context import StepFailed
from trainsh.runtime.reach.base import Machine
from trainsh.runtime.reach.cloud import KINDS as CLOUD_KINDS
from trainsh.runtime.reach.cloud import gpus, money, provider, stop_heartbeat, tell, wait_ready
from trainsh.settings import config
from trainsh.visible import visible


def _gone_with(ctx, host: str | None) -> None:
    """host's machine was stopped: the sessions on it ended with it. Journaled so (not left
    open for `recipe status`, not opened again by a resume); this run still lets
    `tmux.close` name them."""
    for s in list(ctx.sessions.values()) if host else ():
        if s.host == host:
            ctx.journal.session_closed(ctx.job.id, s.name, status="gone")




# ---- the steps ---------------------------------------------------------------------------------

def _opts(step) -> dict:
    o = dict(step.options)
    return {"gpu": o.get("gpu"), "num_gpus": int(o.get("num_gpus", 1)),
            "min_gpu_ram": float(o["min_gpu_ram"]) if "min_gpu_ram" in o else None,
            "max_dph": float(o["max_dph"]) if "max_dph" in o else None,
            "limit": int(o.get("limit", 10)),
            # a rent on a bid (`interruptible=`/`spot=`); bid= in USD/h for the machine
            "spot": any(o.get(w, "").lower() in ("true", "yes", "1") for w in ("interruptible", "spot")),
            "bid": float(o["bid"]) if "bid" in o else None}


def _wanted(opts: dict) -> str:
    parts = [f"{k}={v}" for k, v in opts.items() if v is not None and k not in ("limit", "spot")]
    return " ".join(parts)


def _matches(p, inst, opts: dict) -> bool:
    ram = inst.gpu_ram_gb
    return (inst.status not in (GONE, UNKNOWN)
            and (not opts["gpu"] or p.gpu_matches(inst.gpu_name, opts["gpu"]))
            and inst.num_gpus >= opts["num_gpus"]
            and (opts["min_gpu_ram"] is None or not ram or ram >= opts["min_gpu_ram"])
            and (opts["max_dph"] is None or inst.price_per_hour <= opts["max_dph"]))


def candidates(p, opts: dict, holds=None, me: str | None = None) -> tuple[list, list, list]:
    """(the user's own matching instances that nobody holds, running first; matching offers,
    cheapest first; [(instance, who)] matching ones another job or `ow` holds, never taken)."""
    offers = p.search(gpu=opts["gpu"], num_gpus=opts["num_gpus"], min_gpu_ram_gb=opts["min_gpu_ram"],
                      max_price=opts["max_dph"], limit=opts["limit"],
                      interruptible=bool(opts.get("spot")))  # (on a bid: cheapest bid first)
    own, taken = [], []
    held = holds.holders(p.name, me) if holds is not None else {}
    for i in p.list():
        if _matches(p, i, opts):
            who = holds.holder(i, me, held) if holds is not None else None
            if who:
                taken.append((i, who))
            else:
                own.append(i)
    own.sort(key=lambda i: (i.status not in (RUNNING, STARTING), i.price_per_hour))
    return own[: opts["limit"]], offers, taken


def choose(p, opts: dict, out=None, ask=input, holds=None, me: str | None = None) -> dict:
    """On a terminal: show the user's matching instances and the market's matching offers,
    and let the user choose (machines another job or `ow` holds are shown as taken, not
    offered). Returns {"instance": id} or {"offer": id}."""
    out = out or sys.stderr
    own, offers, taken = candidates(p, opts, holds, me)
    disk = config.get(f"{p.name}.disk")  # what `take` rents with: the price an offer will have
    rows = [("instance", i.id, f"{i.status:<9} {gpus(i):<18} {money(i.price_per_hour)}/h"
             + (f"  {i.label}" if i.label else "")) for i in own]
    rows += [("offer", o.id, f"{'market':<9} {gpus(o):<18} {money(o.price_with_disk(disk))}/h  "
              f"{memory(o.gpu_ram_gb)}/GPU  {o.location}") for o in offers]
    if not rows:
        held = f" ({len(taken)} taken by other jobs)" if taken else ""
        raise LookupError(f"nothing on {p.name} matches {_wanted(opts) or 'the request'}{held}")
    out.write(f"{p.name}: choose a machine ({_wanted(opts) or 'any'})\n")
    for n, (what, ident, text) in enumerate(rows, 1):
        out.write(visible(f"  {n:>2}) {what:<8} {ident:<10} {text}") + "\n")
    for i, who in taken:
        out.write(visible(f"   -) {'taken':<8} {i.id:<10} {i.status:<9} {gpus(i):<18} held by {who}") + "\n")
    out.flush()
    while True:
        answer = ask(f"number [1-{len(rows)}, Enter = 1, q = cancel]: ").strip().lower()
        if answer in ("q", "quit"):
            raise LookupError("no machine chosen")
        if answer == "":
            answer = "1"
        if digits(answer) and 1 <= int(answer) <= len(rows):
            what, ident, _ = rows[int(answer) - 1]
            return {what: ident}
        out.write(f"  '{answer}' is not one of 1-{len(rows)}\n")


def interactive(ctx) -> bool:
    return bool(ctx.console.visual and sys.stdin.isatty())


def lost_ids(ctx, name: str) -> set[str]:
    """The ids of cloud `name`'s machines this job lost (recover=N): never picked again."""
    return {lost["ident"] for lost in losses(ctx.job, kind=name)}


def take(ctx, name: str, host: str, opts: dict, choice: dict | None, resume: bool) -> tuple:
    """Give host a machine: the one chosen, else (headless) the user's own matching instance,
    running or stopped, else the cheapest matching offer, rented. Journals it the moment it is
    the job's. Returns (instance, how)."""
    p = provider(name)
    tag = name_for(ctx.job, host)
    holds, me = Holds(ctx.journal), f"job:{ctx.job.id}"
    if resume:  # rented before the runner stopped, not yet journaled: that one, not another
        for inst in p.find_by_label(tag):
            holds.set(tag, state="rented", ident=inst.id)
            ctx.machines.add(Machine(host, name, inst.id, "rented", state=inst.status))
            return inst, "rented"
    if choice is None:
        own, offers, _ = candidates(p, opts, holds, me)
        own = [i for i in own if i.id not in lost_ids(ctx, name)]  # never the machine it lost
        if own:
            choice = {"instance": own[0].id}
        elif offers:
            choice = {"offer": offers[0].id}
        else:
            raise StepFailed(f"no {name} offer matches {_wanted(opts) or 'the request'} "
                             f"(train {name} search shows what there is)")
    if "instance" in choice:
        inst = p.get(choice["instance"])
        who = holds.holder(inst, me)
        if who:
            raise StepFailed(f"{name} {inst.id} is held by {who}: another job's machine is never "
                             f"taken (train {name} list shows them)")
        how = "found" if inst.status in (RUNNING, STARTING) else "started"
        ctx.machines.add(Machine(host, name, inst.id, how, state=inst.status))
        if inst.status == STOPPED:
            p.start(inst.id)
            ctx.machines.set_state(host, "starting")
        return inst, how
    request = CreateRequest(image=config.get(f"{name}.image"), disk_gb=config.get(f"{name}.disk"),
                            label=tag, public_key=local_public_key(), gpu_count=opts["num_gpus"],
                            interruptible=opts["spot"], bid=opts["bid"] if opts["spot"] else None)
    try:
        inst = rent(holds, p, choice["offer"], request, me, say=ctx.console.info)
    except BaseException as e:  # cut short: what the cloud made is the job's, named at its end
        for made in getattr(e, "made", ()):
            ctx.machines.add(Machine(host, name, made.id, "rented", state=made.status))
        raise
    ctx.machines.add(Machine(host, name, inst.id, "rented", state=inst.status))
    return inst, "rented"


def lost_cost(ctx, name: str, host: str | None) -> tuple[float, list[dict]]:
    """What the machines of cloud `name` this job lost for `host` cost (recover=N), and them."""
    mine = losses(ctx.job, host, name)
    return sum(x.get("cost") or 0.0 for x in mine), mine


def has_machine(ctx, idx: int, host: str, names: tuple[str, ...]) -> bool:
    """Whether a pick step for `host` has nothing to do, and if so end it saying why: a machine
    of one of the clouds `names` was taken before the runner stopped, or the host has a spec."""
    m = ctx.machines.get(host)
    if m and m.kind in names and m.ident not in lost_ids(ctx, m.kind):  # (never a machine it lost)
        ctx.host_specs[host] = f"{m.kind}:{m.ident}"
        steps.done(ctx, idx, 0, instance=m.ident)
        tell(ctx, host, m.kind, m.ident, m.state or "starting")
        ctx.console.ok(f"@{host} is {m.kind} {m.ident} (taken before the runner stopped)")
        return True
    spec = ctx.expand(ctx.host_specs.get(host, "placeholder")).strip()
    if spec != "placeholder":
        steps.done(ctx, idx, 0, kept=spec)
        ctx.console.ok(f"@{host} is {spec} already: nothing to pick")
        return True
    return False


def handlers(name: str) -> dict:
    """The recipe steps of cloud `name`: `NAME.pick`, `.wait`, `.start`, `.stop`, `.cost`."""
    def fail(e: Exception):
        return StepFailed(str(e))

    def current(ctx, ident: str | None) -> tuple[str, str | None]:
        """(instance id, the host it backs): the one named, else the one the job took last."""
        mine = [m for m in ctx.machines.all() if m.kind == name]
        if ident:
            ident = ctx.expand(ident)
            host = next((m.host for m in mine if m.ident == ident), None)
            return ident, host
        if not mine:  # a host written as `NAME:ID` that no step reached yet
            for host, spec in ctx.host_specs.items():
                head, _, ident = ctx.expand(spec).strip().partition(":")
                if head == name and ident:
                    return ident, host
            raise StepFailed(f"no {name} instance yet: give an id or run {name}.pick first")
        return mine[-1].ident, mine[-1].host

    def pick(ctx, idx, step, resume=None):
        host = step.host
        steps.start(ctx, idx, step, host=host, label=name_for(ctx.job, host))
        if has_machine(ctx, idx, host, (name,)):
            return
        opts = _opts(step)
        replacing = bool(losses(ctx.job, host))
        choice = None if replacing else (ctx.job.options.get("picks") or {}).get(host)
        try:
            if choice is None and interactive(ctx) and not replacing:  # (a recovery never asks)
                with ctx.console.prompting():
                    choice = choose(provider(name), opts, holds=Holds(ctx.journal), me=f"job:{ctx.job.id}")
            inst, how = take(ctx, name, host, opts, choice, resume=bool(resume))
        except (ProviderError, LookupError, EOFError) as e:
            raise fail(e) from None
        CLOUD_KINDS[name].known[inst.id] = inst
        ctx.host_specs[host] = f"{name}:{inst.id}"
        ctx.hosts.pop(host, None)
        replaced(ctx, host, inst.id)
        steps.done(ctx, idx, 0, instance=inst.id, how=how)
        tell(ctx, host, name, inst.id, "starting" if how == "started" else inst.status, inst)
        said = {"rented": "rented", "found": "your running instance", "started": "your stopped instance, starting"}[how]
        ctx.console.ok(f"@{host} = {name} {inst.id}: {gpus(inst)}, {money(inst.price_per_hour)}/h ({said})")

    def wait(ctx, idx, step, resume=None):
        iid, host = current(ctx, None)
        timeout = Duration.parse(step.option("timeout", "10m")).seconds
        poll = Duration.parse(step.option("poll", "10s")).seconds
        stop_on_fail = (step.option("stop_on_fail", "false") or "").lower() in ("true", "yes", "1")
        steps.start(ctx, idx, step, instance=iid)
        p = provider(name)
        begin = time.monotonic()
        try:
            inst = wait_ready(p, iid, timeout, poll, say=lambda s: ctx.console.info(f"{name} {iid}: {s}"))
        except TimeoutError as e:
            if stop_on_fail:
                try:
                    p.stop(iid)
                    if host:
                        ctx.machines.set_state(host, "stopped")
                    tell(ctx, host, name, iid, "stopped")
                    raise StepFailed(f"{e}; stopped it (stop_on_fail); its disk still bills storage: "
                                     f"train {name} destroy {iid} (or train {name} prune) ends that") from None
                except ProviderError as e2:
                    raise StepFailed(f"{e}; stopping it failed too: {e2}") from None
            raise StepFailed(str(e)) from None
        except ProviderError as e:
            raise fail(e) from None
        took = time.monotonic() - begin
        steps.done(ctx, idx, 0, instance=iid, seconds=round(took, 2))
        CLOUD_KINDS[name].known[iid] = inst
        tell(ctx, host, name, iid, "running", inst)
        ctx.console.ok(f"{name} {iid} is running and answers ssh ({format_seconds(round(took, 1))})")

    def start(ctx, idx, step, resume=None):
        iid, host = current(ctx, step.instance)
        steps.start(ctx, idx, step, instance=iid)
        try:
            p = provider(name)
            inst = p.get(iid)
            if inst.status in (RUNNING, STARTING):
                steps.done(ctx, idx, 0, instance=iid)
                tell(ctx, host, name, iid, inst.status, inst)
                ctx.console.ok(f"{name} {iid} is {inst.status} already")
                return
            host = host or f"{name}:{iid}"
            if ctx.machines.get(host) is None:  # the job starts it: the job's to stop now
                ctx.machines.add(Machine(host, name, iid, "started", state="starting"))
            p.start(iid)
        except ProviderError as e:
            raise fail(e) from None
        ctx.machines.set_state(host, "starting")
        ctx.hosts.pop(host, None)  # its address may change with the start: reach it again
        steps.done(ctx, idx, 0, instance=iid)
        tell(ctx, host, name, iid, "starting", inst)
        ctx.console.ok(f"{name} {iid}: starting ({name}.wait waits until it runs)")

    def stop(ctx, idx, step, resume=None):
        iid, host = current(ctx, step.instance)
        steps.start(ctx, idx, step, instance=iid)
        try:
            p = provider(name)
            mine = ctx.machines.get(host) if host else None
            if not (mine and mine.ident == iid and mine.ours):
                who = Holds(ctx.journal).holder(p.get(iid), f"job:{ctx.job.id}")
                if who:
                    raise StepFailed(f"{name} {iid} is held by {who}: this job does not stop it")
            stop_heartbeat(name, iid)
            p.stop(iid)
        except ProviderError as e:
            raise fail(e) from None
        if host:
            ctx.machines.set_state(host, "stopped")
        _gone_with(ctx, host)
        steps.done(ctx, idx, 0, instance=iid)
        tell(ctx, host, name, iid, "stopped")
        ctx.console.ok(f"{name} {iid}: stopped (its disk stays and bills storage; "
                       f"train {name} destroy {iid} ends that)")

    def cost(ctx, idx, step, resume=None):
        iid, host = current(ctx, step.instance)
        steps.start(ctx, idx, step, instance=iid)
        try:
            inst = provider(name).get(iid)
        except ProviderError as e:
            raise fail(e) from None
        up = inst.uptime()
        # the machines the job lost were paid for too: the sum is what the job cost on this cloud
        paid, lost = lost_cost(ctx, name, host)
        steps.done(ctx, idx, 0, instance=iid, price_per_hour=inst.price_per_hour,
                    uptime=round(up), cost=round(inst.cost_so_far(), 4),
                    **({"lost_cost": round(paid, 4), "total_cost": round(paid + inst.cost_so_far(), 4)}
                       if lost else {}))
        tell(ctx, host, name, iid, inst.status, inst, cost=inst.cost_so_far())
        them = ", ".join(f"{name} {x['ident']} {money(x.get('cost') or 0.0)}" for x in lost)
        ctx.console.ok(f"{name} {iid}: {money(inst.price_per_hour)}/h, {inst.status}, up "
                       f"{format_seconds(int(up))}, {money(inst.cost_so_far())} so far"
                       + (f"; {money(paid + inst.cost_so_far())} in all with the {len(lost)} "
                          f"machine{'s' if len(lost) > 1 else ''} it lost ({them})" if lost else ""))

    return {f"{name}.pick": pick, f"{name}.wait": wait, f"{name}.start": start,
            f"{name}.stop": stop, f"{name}.cost": cost}


# ---- before a run: --pick-host ------------------------------------------------------------------

def pick_cloud(recipe, host: str) -> str:
    """The cloud `--pick-host NAME` chooses from: that of the recipe's `CLOUD.pick @NAME`,
    else Vast.ai."""
    return next((s.provider for s in recipe.steps if isinstance(s, Cloud) and s.action == "pick"
                 and s.host == host and s.provider in CLOUDS), "vast")


def pick_before(recipe, host: str, name: str = "vast") -> dict:
    """`--pick-host NAME`: the choice the job's pick makes, made now (on a terminal the user
    chooses; headless, the job's own rule applies when its step runs). Uses the options of the
    recipe's `vast.pick @NAME` when it has one."""
    return choose(provider(name), pick_options(recipe, host, name), holds=holds_now())


def holds_now():
    """Who holds what, before this run has a job (the journal's jobs, live `ow` runs)."""
    return Holds(Journal.reader())


def pick_options(recipe, host: str, name: str = "vast") -> dict:
    """The options of the recipe's `NAME.pick @host` (the defaults when it has none)."""
    step = next((s for s in recipe.steps if isinstance(s, Cloud) and s.provider == name
                 and s.action == "pick" and s.host == host), None)
    return _opts(step if step else Cloud(None, "", provider=name, action="pick", host=host))
