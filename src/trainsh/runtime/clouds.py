"""Cloud machines in jobs: the cloud recipe steps (`vast.pick`, `runpod.wait`, ...: pick, start,
stop, wait, cost), `vast:ID` and `runpod:ID` hosts, how a job releases and describes the
instances it rented or started, and the autostop watcher it leaves on each of them.

Everything here speaks only the `Provider` interface, so a cloud joins by its name in
recipe/model.py's CLOUDS: its steps, its `NAME:ID` hosts and its machines' lifecycle are this
code under that name, in the three registries the runtime keeps (steps.HANDLERS,
reach.SCHEMES, machines.KINDS).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from trainsh.numbers import digits
from trainsh.cloud.provider import local_public_key
from trainsh.recipe.model import CLOUDS
from trainsh.runtime.machines import KINDS, Kind, Machine

WAIT_READY = 600.0  # how long reaching a `vast:ID` host waits for it to run
FIRST_LOGIN = ["sh", "-c", 'touch "$HOME/.no_auto_tmux"; printf %s "$HOME"']

# Instances a wait just saw ready (and their home folder), so that reaching them right after
# costs no second lookup and no second login: (name, id) -> (when, Instance, home).
_ready: dict[tuple[str, str], tuple[float, object, str]] = {}


# ---- small helpers ---------------------------------------------------------------------------

def _provider(name: str):
    from trainsh.cloud.provider import provider

    return provider(name)


def _money(usd: float, digits: int = 2) -> str:
    from trainsh.cloud import pricing

    try:
        return pricing.money(usd, digits=digits)
    except Exception:  # a display nicety: never fail a step or a release over a rate
        return f"${usd:.{digits}f}"


def _gpu(inst_or_offer) -> str:
    n, name = inst_or_offer.num_gpus, inst_or_offer.gpu_name
    return f"{n}x {name}" if name else "?"


def _key() -> str | None:
    from trainsh.settings import config

    key = config.get("ssh.key")
    return os.path.expanduser(key) if key else None


def _tell(ctx, host: str | None, name: str, iid: str, state: str, inst=None,
          cost: float | None = None) -> None:
    """Say how host's machine is now (feed.MachineState): the live view's machines panel
    draws it; the plain printer leaves it to the step's own line."""
    from trainsh.runtime.feed import MachineState

    inst = inst or KINDS[name].known.get(iid)
    price = inst.price_per_hour if inst is not None else None
    started = inst.started_at if inst is not None and state == "running" else None
    ctx.console.emit(MachineState(host or f"{name}:{iid}", name, str(iid), state, price, started, cost))


# ---- machines: release, describe --------------------------------------------------------------

class CloudKind(Kind):
    """An instance of one cloud: released by stopping it (its disk stays), described with its
    GPU and price, stopped by hand with `train NAME stop ID`."""

    def __init__(self, name: str):
        self.name = name
        self.known: dict[str, object] = {}  # ident -> Instance seen this run (saves a call)

    def release(self, m: Machine) -> str:
        from trainsh.cloud.provider import NotFound

        _stop_heartbeat(self.name, m.ident)
        try:
            _provider(self.name).stop(m.ident)
        except NotFound:  # destroyed meanwhile (by hand, by the cloud): nothing left to bill
            return "gone"
        return "stopped"

    def released_note(self, m: Machine, state: str) -> str:
        if state != "stopped":
            return ""
        ends = f"train {self.name} destroy {m.ident} (or train {self.name} prune)"
        inst = self.known.get(m.ident)
        if inst is not None and not inst.storage_per_hour:
            return f"; nothing of it bills now, {ends} removes it"
        rate = f" {_money(inst.storage_per_hour, 3)}/h" if inst is not None else ""
        return f"; its disk still bills{rate}: {ends} ends that"

    def current(self, m: Machine) -> str | None:
        from trainsh.cloud.provider import NotFound

        try:
            inst = self.known[m.ident] = _provider(self.name).get(m.ident)
        except NotFound:
            return "gone"
        except Exception:  # noqa: BLE001 - cannot tell
            return None
        return inst.status

    def describe(self, m: Machine) -> str:
        inst = self.known.get(m.ident)
        if inst is None:
            try:
                inst = self.known[m.ident] = _provider(self.name).get(m.ident)
            except Exception:  # describing must never hide the line it is part of
                return f"{self.name} {m.ident}"
        return f"{self.name} {m.ident} ({_gpu(inst)}, {_money(inst.price_per_hour)}/h)"


# ---- `vast:ID` hosts ----------------------------------------------------------------------------

def wait_ready(p, iid: str, timeout: float, poll: float = 10.0, say=None, login: bool = True):
    """Wait until the instance runs and (with `login`) an ssh login works; returns it. `say`
    gets each status change once. The login is the first one a job makes (FIRST_LOGIN), and
    its answer is kept in `_ready`. Raises TimeoutError with the last status."""
    from trainsh.cloud.provider import NotReady

    def logged_in(inst, home: str) -> None:
        _ready[(p.name, str(iid))] = (time.monotonic(), inst, home)

    try:
        return p.wait_ready(iid, timeout, login=FIRST_LOGIN if login else False, login_timeout=30,
                            key=_key(), say=say, poll=(0.25, 2.0, poll), logged_in=logged_in)
    except NotReady as e:
        if e.why == "gone":
            raise TimeoutError(f"{p.name} {iid} is gone") from None
        if e.why == "crashed":
            raise TimeoutError(f"{p.name} {iid} crashed ({e.last})") from None
        if e.why == "stopped":
            raise TimeoutError(f"{p.name} {iid} is stopped ({p.name}.start or train {p.name} start {iid} "
                               "starts it)") from None
        raise TimeoutError(f"{p.name} {iid} is not ready: {e.status}") from None


def host_opener(name: str):
    """`NAME:ID` -> an ssh shell on that instance: started first when it is stopped, waited for
    while it starts. The first connection creates ~/.no_auto_tmux (cloud images start tmux on
    every login otherwise). The shell carries `machine`, which the job calls to record it."""

    def open_shell(rest: str, reconnect: float):
        from trainsh.cloud.provider import RUNNING, STOPPED, ProviderError
        from trainsh.remote.shell import ShellError, SshShell
        from trainsh.runtime.reach import HostError

        how = "found"
        when, inst, home = _ready.pop((name, rest), (0.0, None, ""))
        if inst is not None and time.monotonic() - when < 5:  # a wait saw it ready just now
            KINDS[name].known[inst.id] = inst
            shell = SshShell(inst.ssh_spec(_key()), reconnect=reconnect, lost=_lost(name, inst.id))
            shell._home = home
            shell.machine = lambda ctx, host: _reached(ctx, host, name, inst, how, shell)
            return shell
        try:
            p = _provider(name)
            inst = p.get(rest)
            if inst.status == STOPPED:
                how = "started"
                p.start(inst.id)
            if inst.status != RUNNING or inst.ssh is None:
                inst = wait_ready(p, inst.id, WAIT_READY, login=False)
        except BaseException as e:  # a failure or a signal once started: the job started it
            err = HostError(str(e)) if isinstance(e, (ProviderError, TimeoutError)) else e
            if how == "started":
                err.started = (name, inst.id)
            if err is e:
                raise
            raise err from None
        KINDS[name].known[inst.id] = inst
        shell = SshShell(inst.ssh_spec(_key()), reconnect=reconnect, lost=_lost(name, inst.id))
        try:
            r = shell.run(FIRST_LOGIN, timeout=60, check=True)
        except ShellError as e:
            raise HostError(str(e)) from None
        shell._home = r.stdout
        shell.machine = lambda ctx, host: _reached(ctx, host, name, inst, how, shell)
        return shell

    return open_shell


def _lost(name: str, iid: str):
    """For the ssh layer: (why, state) when instance `iid` will not answer again (it was
    stopped or destroyed by someone else than this job), asked when its connection drops."""

    def why() -> tuple[str, str] | None:
        from trainsh.cloud.provider import GONE, STOPPED, STOPPING, NotFound

        try:
            inst = _provider(name).get(iid)
        except NotFound:
            return f"{name} {iid} was destroyed outside this job", "gone"
        if inst.status in (STOPPED, STOPPING):
            return f"{name} {iid} was stopped outside this job ({inst.provider_status})", "stopped"
        if inst.status == GONE:
            return f"{name} {iid} was destroyed outside this job", "gone"
        return None

    return why


def _reached(ctx, host: str, name: str, inst, how: str, shell) -> None:
    """A job reached instance `inst` as host `host`: journal it (a resume keeps what it was
    to the job), and leave the autostop watcher on machines that are the job's to stop."""
    machines = ctx.machines
    m = machines.get(host)
    _tell(ctx, host, name, inst.id, "running", inst)
    if m and m.kind == name and m.ident == inst.id:
        machines.set_state(host, "running")
    else:
        m = Machine(host, name, inst.id, how, state="running")
        machines.add(m)
        if how == "started":
            ctx.console.info(f"{name} {inst.id} was stopped: started it")
    if m.ours:
        autostop(ctx, name, inst.id, shell)


def _gone_with(ctx, host: str | None) -> None:
    """host's machine was stopped: the sessions on it ended with it. Journaled so (not left
    open for `recipe status`, not opened again by a resume); this run still lets
    `tmux.close` name them."""
    for s in list(ctx.sessions.values()) if host else ():
        if s.host == host:
            ctx.journal.session_closed(ctx.job.id, s.name, status="gone")


def stopped(ctx, host: str) -> bool:
    """Whether host's machine was stopped by this job (`vast.stop`): its sessions went with it."""
    m = ctx.machines.get(host) if ctx.machines is not None else None
    return bool(m and m.state == "stopped")


# ---- autostop ----------------------------------------------------------------------------------

_beats: dict[tuple[str, str], threading.Event] = {}


def autostop_seconds(ctx) -> float:
    value = ctx.job.options.get("autostop")
    if value is None:
        from trainsh.settings import config

        value = config.off_or_duration("cloud.autostop")
    return float(value)


def autostop(ctx, name: str, iid: str, shell) -> None:
    """Leave the watcher (runtime/autostop.py) on the instance, once per instance and job, and
    keep its heartbeat fresh while this train runs."""
    from trainsh.runtime import autostop as watcher

    idle = autostop_seconds(ctx)
    if idle <= 0:
        return
    why = watcher.leave(shell, _provider(name), iid, ctx.job.id, idle)
    if why:
        ctx.events.warn(f"{name} {iid}: autostop {why}")
        return
    from trainsh.recipe.model import format_seconds

    ctx.console.info(f"{name} {iid}: autostop after {format_seconds(idle)} idle with no train "
                     "connected (--autostop 0 turns it off)")
    _heartbeat(name, iid, shell, ctx.job.id, idle)


def _heartbeat(name: str, iid: str, shell, job: str, idle: float) -> None:
    from trainsh.runtime import autostop as watcher

    old = _beats.pop((name, iid), None)
    if old:
        old.set()
    _beats[(name, iid)] = watcher.heartbeat(shell, job, idle, f"{name}-{iid}")


def _stop_heartbeat(name: str, iid: str) -> None:
    ev = _beats.pop((name, iid), None)
    if ev:
        ev.set()


# ---- the steps ---------------------------------------------------------------------------------

def _opts(step) -> dict:
    o = dict(step.options)
    return {"gpu": o.get("gpu"), "num_gpus": int(o.get("num_gpus", 1)),
            "min_gpu_ram": float(o["min_gpu_ram"]) if "min_gpu_ram" in o else None,
            "max_dph": float(o["max_dph"]) if "max_dph" in o else None,
            "limit": int(o.get("limit", 10))}


def _wanted(opts: dict) -> str:
    parts = [f"{k}={v}" for k, v in opts.items() if v is not None and k != "limit"]
    return " ".join(parts)


def _matches(p, inst, opts: dict) -> bool:
    from trainsh.cloud.provider import GONE, UNKNOWN

    ram = inst.gpu_ram_gb
    return (inst.status not in (GONE, UNKNOWN)
            and (not opts["gpu"] or p.gpu_matches(inst.gpu_name, opts["gpu"]))
            and inst.num_gpus >= opts["num_gpus"]
            and (opts["min_gpu_ram"] is None or not ram or ram >= opts["min_gpu_ram"])
            and (opts["max_dph"] is None or inst.price_per_hour <= opts["max_dph"]))


def candidates(p, opts: dict, holds=None, me: str | None = None) -> tuple[list, list, list]:
    """(the user's own matching instances that nobody holds, running first; matching offers,
    cheapest first; [(instance, who)] matching ones another job or `ow` holds, never taken)."""
    from trainsh.cloud.provider import RUNNING, STARTING

    offers = p.search(gpu=opts["gpu"], num_gpus=opts["num_gpus"], min_gpu_ram_gb=opts["min_gpu_ram"],
                      max_price=opts["max_dph"], limit=opts["limit"])
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
    from trainsh.cloud.gpus import memory
    from trainsh.settings import config

    own, offers, taken = candidates(p, opts, holds, me)
    disk = config.get(f"{p.name}.disk")  # what `take` rents with: the price an offer will have
    rows = [("instance", i.id, f"{i.status:<9} {_gpu(i):<18} {_money(i.price_per_hour)}/h"
             + (f"  {i.label}" if i.label else "")) for i in own]
    rows += [("offer", o.id, f"{'market':<9} {_gpu(o):<18} {_money(o.price_with_disk(disk))}/h  "
              f"{memory(o.gpu_ram_gb)}/GPU  {o.location}") for o in offers]
    if not rows:
        held = f" ({len(taken)} taken by other jobs)" if taken else ""
        raise LookupError(f"nothing on {p.name} matches {_wanted(opts) or 'the request'}{held}")
    out.write(f"{p.name}: choose a machine ({_wanted(opts) or 'any'})\n")
    from trainsh.ui.text import visible

    for n, (what, ident, text) in enumerate(rows, 1):
        out.write(visible(f"  {n:>2}) {what:<8} {ident:<10} {text}") + "\n")
    for i, who in taken:
        out.write(visible(f"   -) {'taken':<8} {i.id:<10} {i.status:<9} {_gpu(i):<18} held by {who}") + "\n")
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


def _label(ctx, host: str) -> str:
    return f"trainsh-{ctx.job.id}-{host}"


def take(ctx, name: str, host: str, opts: dict, choice: dict | None, resume: bool) -> tuple:
    """Give host a machine: the one chosen, else (headless) the user's own matching instance,
    running or stopped, else the cheapest matching offer, rented. Journals it the moment it is
    the job's. Returns (instance, how)."""
    from trainsh.cloud.provider import RUNNING, STARTING, STOPPED, CreateRequest
    from trainsh.runtime.runner import StepFailed
    from trainsh.settings import config

    from trainsh.runtime.holds import Holds, rent

    p = _provider(name)
    label = _label(ctx, host)
    holds, me = Holds(ctx.journal), f"job:{ctx.job.id}"
    if resume:  # rented before the runner stopped, not yet journaled: that one, not another
        for inst in p.find_by_label(label):
            holds.set(label, state="rented", ident=inst.id)
            ctx.machines.add(Machine(host, name, inst.id, "rented", state=inst.status))
            return inst, "rented"
    if choice is None:
        own, offers, _ = candidates(p, opts, holds, me)
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
                            label=label, public_key=local_public_key(), gpu_count=opts["num_gpus"])
    try:
        inst = rent(holds, p, choice["offer"], request, me, say=ctx.console.info)
    except BaseException as e:  # cut short: what the cloud made is the job's, named at its end
        for made in getattr(e, "made", ()):
            ctx.machines.add(Machine(host, name, made.id, "rented", state=made.status))
        raise
    ctx.machines.add(Machine(host, name, inst.id, "rented", state=inst.status))
    return inst, "rented"


def handlers(name: str) -> dict:
    """The recipe steps of cloud `name`: `NAME.pick`, `.wait`, `.start`, `.stop`, `.cost`."""
    from trainsh.cloud.provider import ProviderError
    from trainsh.runtime import steps
    from trainsh.runtime.runner import StepFailed

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
        m = ctx.machines.get(host)
        steps._start(ctx, idx, step, host=host, label=_label(ctx, host))
        if m and m.kind == name:  # taken before the runner stopped
            ctx.host_specs[host] = f"{name}:{m.ident}"
            steps._done(ctx, idx, 0, instance=m.ident)
            _tell(ctx, host, name, m.ident, m.state or "starting")
            ctx.console.ok(f"@{host} is {name} {m.ident} (taken before the runner stopped)")
            return
        spec = ctx.expand(ctx.host_specs.get(host, "placeholder")).strip()
        if spec != "placeholder":
            steps._done(ctx, idx, 0, kept=spec)
            ctx.console.ok(f"@{host} is {spec} already: nothing to pick")
            return
        opts = _opts(step)
        choice = (ctx.job.options.get("picks") or {}).get(host)
        try:
            if choice is None and interactive(ctx):
                from trainsh.runtime.holds import Holds

                with ctx.console.prompting():
                    choice = choose(_provider(name), opts, holds=Holds(ctx.journal), me=f"job:{ctx.job.id}")
            inst, how = take(ctx, name, host, opts, choice, resume=bool(resume))
        except (ProviderError, LookupError, EOFError) as e:
            raise fail(e) from None
        KINDS[name].known[inst.id] = inst
        ctx.host_specs[host] = f"{name}:{inst.id}"
        ctx.hosts.pop(host, None)
        steps._done(ctx, idx, 0, instance=inst.id, how=how)
        _tell(ctx, host, name, inst.id, "starting" if how == "started" else inst.status, inst)
        said = {"rented": "rented", "found": "your running instance", "started": "your stopped instance, starting"}[how]
        ctx.console.ok(f"@{host} = {name} {inst.id}: {_gpu(inst)}, {_money(inst.price_per_hour)}/h ({said})")

    def wait(ctx, idx, step, resume=None):
        from trainsh.recipe.model import Duration

        iid, host = current(ctx, None)
        timeout = Duration.parse(step.option("timeout", "10m")).seconds
        poll = Duration.parse(step.option("poll", "10s")).seconds
        stop_on_fail = (step.option("stop_on_fail", "false") or "").lower() in ("true", "yes", "1")
        steps._start(ctx, idx, step, instance=iid)
        p = _provider(name)
        begin = time.monotonic()
        try:
            inst = wait_ready(p, iid, timeout, poll, say=lambda s: ctx.console.info(f"{name} {iid}: {s}"))
        except TimeoutError as e:
            if stop_on_fail:
                try:
                    p.stop(iid)
                    if host:
                        ctx.machines.set_state(host, "stopped")
                    _tell(ctx, host, name, iid, "stopped")
                    raise StepFailed(f"{e}; stopped it (stop_on_fail); its disk still bills storage: "
                                     f"train {name} destroy {iid} (or train {name} prune) ends that") from None
                except ProviderError as e2:
                    raise StepFailed(f"{e}; stopping it failed too: {e2}") from None
            raise StepFailed(str(e)) from None
        except ProviderError as e:
            raise fail(e) from None
        took = time.monotonic() - begin
        steps._done(ctx, idx, 0, instance=iid, seconds=round(took, 2))
        KINDS[name].known[iid] = inst
        _tell(ctx, host, name, iid, "running", inst)
        from trainsh.recipe.model import format_seconds

        ctx.console.ok(f"{name} {iid} is running and answers ssh ({format_seconds(round(took, 1))})")

    def start(ctx, idx, step, resume=None):
        from trainsh.cloud.provider import RUNNING, STARTING

        iid, host = current(ctx, step.instance)
        steps._start(ctx, idx, step, instance=iid)
        try:
            p = _provider(name)
            inst = p.get(iid)
            if inst.status in (RUNNING, STARTING):
                steps._done(ctx, idx, 0, instance=iid)
                _tell(ctx, host, name, iid, inst.status, inst)
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
        steps._done(ctx, idx, 0, instance=iid)
        _tell(ctx, host, name, iid, "starting", inst)
        ctx.console.ok(f"{name} {iid}: starting ({name}.wait waits until it runs)")

    def stop(ctx, idx, step, resume=None):
        from trainsh.runtime.holds import Holds

        iid, host = current(ctx, step.instance)
        steps._start(ctx, idx, step, instance=iid)
        try:
            p = _provider(name)
            mine = ctx.machines.get(host) if host else None
            if not (mine and mine.ident == iid and mine.ours):
                who = Holds(ctx.journal).holder(p.get(iid), f"job:{ctx.job.id}")
                if who:
                    raise StepFailed(f"{name} {iid} is held by {who}: this job does not stop it")
            _stop_heartbeat(name, iid)
            p.stop(iid)
        except ProviderError as e:
            raise fail(e) from None
        if host:
            ctx.machines.set_state(host, "stopped")
        _gone_with(ctx, host)
        steps._done(ctx, idx, 0, instance=iid)
        _tell(ctx, host, name, iid, "stopped")
        ctx.console.ok(f"{name} {iid}: stopped (its disk stays and bills storage; "
                       f"train {name} destroy {iid} ends that)")

    def cost(ctx, idx, step, resume=None):
        from trainsh.recipe.model import format_seconds

        iid, host = current(ctx, step.instance)
        steps._start(ctx, idx, step, instance=iid)
        try:
            inst = _provider(name).get(iid)
        except ProviderError as e:
            raise fail(e) from None
        up = inst.uptime()
        steps._done(ctx, idx, 0, instance=iid, price_per_hour=inst.price_per_hour,
                    uptime=round(up), cost=round(inst.cost_so_far(), 4))
        _tell(ctx, host, name, iid, inst.status, inst, cost=inst.cost_so_far())
        ctx.console.ok(f"{name} {iid}: {_money(inst.price_per_hour)}/h, {inst.status}, up "
                       f"{format_seconds(int(up))}, {_money(inst.cost_so_far())} so far")

    return {f"{name}.pick": pick, f"{name}.wait": wait, f"{name}.start": start,
            f"{name}.stop": stop, f"{name}.cost": cost}


# The clouds whose instances jobs can use (recipe/model.py names them): steps.py and reach.py
# take `handlers(NAME)` and `host_opener(NAME)` for each.
for _name in CLOUDS:
    KINDS[_name] = CloudKind(_name)


# ---- before a run: --pick-host ------------------------------------------------------------------

def pick_cloud(recipe, host: str) -> str:
    """The cloud `--pick-host NAME` chooses from: that of the recipe's `CLOUD.pick @NAME`,
    else Vast.ai."""
    from trainsh.recipe.model import Cloud

    return next((s.provider for s in recipe.steps if isinstance(s, Cloud) and s.action == "pick"
                 and s.host == host and s.provider in CLOUDS), "vast")


def pick_before(recipe, host: str, name: str = "vast") -> dict:
    """`--pick-host NAME`: the choice the job's pick makes, made now (on a terminal the user
    chooses; headless, the job's own rule applies when its step runs). Uses the options of the
    recipe's `vast.pick @NAME` when it has one."""
    return choose(_provider(name), pick_options(recipe, host, name), holds=holds_now())


def holds_now():
    """Who holds what, before this run has a job (the journal's jobs, live `ow` runs)."""
    from trainsh.runtime.holds import Holds
    from trainsh.runtime.journal import Journal

    return Holds(Journal.reader())


def pick_options(recipe, host: str, name: str = "vast") -> dict:
    """The options of the recipe's `NAME.pick @host` (the defaults when it has none)."""
    from trainsh.recipe.model import Cloud

    step = next((s for s in recipe.steps if isinstance(s, Cloud) and s.provider == name
                 and s.action == "pick" and s.host == host), None)
    return _opts(step if step else Cloud(None, "", provider=name, action="pick", host=host))
