"""The `pick @host` recipe step: the cheapest matching machine per GPU hour over several clouds.

It keeps the rules of each cloud's own pick (runtime/clouds.py `NAME.pick`), applied across
clouds: the user's own matching instance that nobody holds comes first (running before stopped,
then the cheapest per GPU hour), else the market's offers, cheapest per GPU hour first
(cloud/market.py). An offer that cannot be had (no capacity, the rent refused) falls through to
the next; a rent whose answer was lost does not, as the rents ledger (holds.py) settles it and
a second rent could make a second machine. Each machine is taken by `clouds.take`, so it is
journaled as the job's under its cloud's name, and release, resume, status, cost and autostop
treat it as one a `NAME.pick` took.
"""

from __future__ import annotations

from trainsh.cloud import market
from trainsh.cloud.provider import (RUNNING, STARTING, AuthError, ProviderError, Unavailable)
from trainsh.recipe.model import CLOUDS, cloud_names
from trainsh.runtime import clouds, recovery, steps
from trainsh.runtime.context import StepFailed
from trainsh.runtime.holds import Holds
from trainsh.runtime.reach.base import Machine
from trainsh.runtime.reach.cloud import KINDS as CLOUD_KINDS
from trainsh.runtime.reach.cloud import gpus, money, provider, tell


def want(step) -> market.Want:
    """The step's options as a market.Want (the parser has checked them)."""
    o = dict(step.options)
    return market.Want(gpu=o.get("gpu"), num_gpus=int(o.get("num_gpus", 1)),
                       min_gpu_ram=float(o["min_gpu_ram"]) if "min_gpu_ram" in o else None,
                       max_dph=float(o["max_dph"]) if "max_dph" in o else None,
                       limit=int(o.get("limit", 10)))


def named(step) -> tuple[str, ...] | None:
    text = step.option("clouds")
    return cloud_names(text) if text else None


def prices(item) -> str:
    """`$0.68/h ($0.34/GPU/h)`."""
    return f"{money(item.price_per_hour)}/h ({money(market.per_gpu(item), 3)}/GPU/h)"


def others(found: market.Comparison, taken: str, missed: set) -> str:
    """What the other clouds would have cost: the cheapest offer of each (`missed`: the offers
    tried that could not be had)."""
    best = found.cheapest()

    def said(name: str) -> str:
        if name not in best:
            return f"{name} had no match"
        o = best[name]
        return f"{name} {o.id} {prices(o)}" + (" (could not be had)" if (name, o.id) in missed else "")

    return "; ".join(said(name) for name in found.clouds if name != taken)


def _opts(w: market.Want) -> dict:
    """A Want as clouds.py's pick options, so its rules (and `take`) apply unchanged."""
    return {"gpu": w.gpu, "num_gpus": w.num_gpus, "min_gpu_ram": w.min_gpu_ram,
            "max_dph": w.max_dph, "limit": w.limit, "spot": False, "bid": None}  # (on demand)


def _rented_before(ctx, host: str, label: str, holds: Holds):
    """On resume: the machine a rent of this step made before the runner stopped, not yet
    journaled (the rents ledger names its cloud); (instance, cloud) or None."""
    r = holds.rent(label)
    if r is None or r.state not in ("sending", "rented") or r.cloud not in CLOUDS:
        return None
    for inst in provider(r.cloud).find_by_label(label):
        holds.set(label, state="rented", ident=inst.id)
        ctx.machines.add(Machine(host, r.cloud, inst.id, "rented", state=inst.status))
        return inst, r.cloud
    return None


def _take(ctx, host: str, found: market.Comparison, w: market.Want, missed: set):
    """(instance, cloud, how, offer or None): the user's own instance when one matches, else the
    cheapest offer that can be had; `missed` gets each (cloud, offer id) that could not be."""
    opts = _opts(w)
    own = [i for i in found.own if i.id not in clouds.lost_ids(ctx, i.provider)]  # never one it lost
    if own:
        mine = sorted(own, key=lambda i: (i.status not in (RUNNING, STARTING), market.per_gpu(i)))[0]
        inst, how = clouds.take(ctx, mine.provider, host, opts, {"instance": mine.id}, resume=False)
        return inst, mine.provider, how, None
    refused: set[str] = set()  # clouds that refused the key: their other offers go the same way
    for offer in found.offers:
        if offer.provider in refused:
            continue
        try:
            inst, how = clouds.take(ctx, offer.provider, host, opts, {"offer": offer.id}, resume=False)
        except ProviderError as e:
            if isinstance(e, Unavailable) or getattr(e, "made", None):
                raise  # the answer was lost (and settled): no second rent
            if isinstance(e, AuthError):
                refused.add(offer.provider)
            ctx.console.info(f"{offer.provider} offer {offer.id} cannot be had ({e}): trying the next")
            missed.add((offer.provider, offer.id))
            continue
        return inst, offer.provider, how, offer
    tried = " (none that matched could be had)" if found.offers else ""
    raise StepFailed(f"no offer on {', '.join(found.clouds)} matches {w.words()}{tried} "
                     "(train pick shows what there is)")


def pick(ctx, idx, step, resume=None):
    host = step.host
    label = recovery.name_for(ctx.job, host)  # as clouds.py's picks label their rents
    steps.start(ctx, idx, step, host=host, label=label)
    if clouds.has_machine(ctx, idx, host, CLOUDS):
        return
    holds, me = Holds(ctx.journal), f"job:{ctx.job.id}"
    w = want(step)
    opts = _opts(w)
    missed: set = set()
    try:
        again = _rented_before(ctx, host, label, holds) if resume else None
        if again:
            (inst, name), how, offer, found = again, "rented", None, None
        else:
            found = market.compare(named(step), CLOUDS, w,
                                   look=lambda p: clouds.candidates(p, opts, holds, me)[:2])
            for note in found.notes:
                ctx.console.info(note)
            inst, name, how, offer = _take(ctx, host, found, w, missed)
    except ProviderError as e:
        raise StepFailed(str(e)) from None
    CLOUD_KINDS[name].known[inst.id] = inst
    ctx.host_specs[host] = f"{name}:{inst.id}"
    ctx.hosts.pop(host, None)
    recovery.replaced(ctx, host, inst.id)
    steps.done(ctx, idx, 0, instance=inst.id, cloud=name, how=how, offer=offer.id if offer else None)
    tell(ctx, host, name, inst.id, "starting" if how == "started" else inst.status, inst)
    said = {"rented": f"rented offer {offer.id}" if offer else "rented",
            "found": "your running instance", "started": "your stopped instance, starting"}[how]
    rest = others(found, name, missed) if found else ""
    ctx.console.ok(f"@{host} = {name} {inst.id}: {gpus(inst)}, {prices(offer or inst)}, {said}"
                   + (f"; others: {rest}" if rest else ""))
