"""Cloud instances as hosts (`vast:ID`, `runpod:ID`), the reach half of the cloud kinds: an
instance is started when stopped and waited for, its first login is made, and a job's
instances are released (stopped), described (GPU, price) and left with the autostop watcher.

Everything here speaks only the `Provider` interface (cloud/provider.py), so every cloud of
recipe/model.py's CLOUDS is this code under its name: KINDS holds one CloudKind each. The
cloud recipe steps that use them are runtime/clouds.py.
"""

from __future__ import annotations

import os
import threading
import time

from trainsh.cloud import pricing
from trainsh.cloud.provider import (GONE, RUNNING, STOPPED, STOPPING, NotFound, NotReady,
                                    ProviderError)
from trainsh.cloud.provider import provider as cloud_provider
from trainsh.numbers import format_seconds
from trainsh.recipe.model import CLOUDS
from trainsh.remote.shell import ShellError, SshShell
from trainsh.runtime import autostop as watcher
from trainsh.runtime.feed import MachineState
from trainsh.runtime.reach.base import HostError, Kind, Machine
from trainsh.settings import config

WAIT_READY = 600.0  # how long reaching a `vast:ID` host waits for it to run
FIRST_LOGIN = ["sh", "-c", 'touch "$HOME/.no_auto_tmux"; printf %s "$HOME"']

# Instances a wait just saw ready (and their home folder), so that reaching them right after
# costs no second lookup and no second login: (name, id) -> (when, Instance, home).
_ready: dict[tuple[str, str], tuple[float, object, str]] = {}


# ---- small helpers ---------------------------------------------------------------------------

def provider(name: str):
    return cloud_provider(name)


def money(usd: float, digits: int = 2) -> str:
    try:
        return pricing.money(usd, digits=digits)
    except Exception:  # a display nicety: never fail a step or a release over a rate
        return f"${usd:.{digits}f}"


def gpus(inst_or_offer) -> str:
    n, name = inst_or_offer.num_gpus, inst_or_offer.gpu_name
    return f"{n}x {name}" if name else "?"


def _key() -> str | None:
    key = config.get("ssh.key")
    return os.path.expanduser(key) if key else None


def tell(ctx, host: str | None, name: str, iid: str, state: str, inst=None,
         cost: float | None = None) -> None:
    """Say how host's machine is now (feed.MachineState): the live view's machines panel
    draws it; the plain printer leaves it to the step's own line."""
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

    def shell(self, rest: str, reconnect: float):
        return open_shell(self.name, rest, reconnect)

    def release(self, m: Machine) -> str:
        stop_heartbeat(self.name, m.ident)
        try:
            provider(self.name).stop(m.ident)
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
        rate = f" {money(inst.storage_per_hour, 3)}/h" if inst is not None else ""
        return f"; its disk still bills{rate}: {ends} ends that"

    def current(self, m: Machine) -> str | None:
        try:
            inst = self.known[m.ident] = provider(self.name).get(m.ident)
        except NotFound:
            return "gone"
        except Exception:  # noqa: BLE001 - cannot tell
            return None
        return inst.status

    # (a stopped machine is lost too: someone else stopped it, or its cloud did)
    LOST = (STOPPED, STOPPING, GONE)

    def lost(self, m: Machine) -> tuple[str, str] | None:
        state = self.current(m)
        if state not in self.LOST:
            return None
        inst = self.known.get(m.ident)
        return state, inst.status_words if inst is not None and state != GONE else "gone"

    def discard(self, m: Machine) -> str:
        stop_heartbeat(self.name, m.ident)
        provider(self.name).destroy(m.ident)
        return "destroyed"

    def spent(self, m: Machine) -> float:
        inst = self.known.get(m.ident)
        return inst.cost_so_far() if inst is not None else 0.0

    def describe(self, m: Machine) -> str:
        inst = self.known.get(m.ident)
        if inst is None:
            try:
                inst = self.known[m.ident] = provider(self.name).get(m.ident)
            except Exception:  # describing must never hide the line it is part of
                return f"{self.name} {m.ident}"
        return f"{self.name} {m.ident} ({gpus(inst)}, {money(inst.price_per_hour)}/h)"


# ---- `vast:ID` hosts ----------------------------------------------------------------------------

def wait_ready(p, iid: str, timeout: float, poll: float = 10.0, say=None, login: bool = True):
    """Wait until the instance runs and (with `login`) an ssh login works; returns it. `say`
    gets each status change once. The login is the first one a job makes (FIRST_LOGIN), and
    its answer is kept in `_ready`. Raises TimeoutError with the last status."""
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


def open_shell(name: str, rest: str, reconnect: float):
    """`NAME:ID` -> an ssh shell on that instance: started first when it is stopped, waited for
    while it starts. The first connection creates ~/.no_auto_tmux (cloud images start tmux on
    every login otherwise). The shell carries `machine`, which the job calls to record it."""
    # (never retrying longer than a machine takes to count as lost: a job with recover= then
    # asks in time, runtime/recovery.py)
    reconnect = min(reconnect, config.duration("cloud.lost_after"))
    how = "found"
    when, inst, home = _ready.pop((name, rest), (0.0, None, ""))
    if inst is not None and time.monotonic() - when < 5:  # a wait saw it ready just now
        KINDS[name].known[inst.id] = inst
        shell = SshShell(inst.ssh_spec(_key()), reconnect=reconnect, lost=_lost(name, inst.id))
        shell._home = home
        shell.machine = lambda ctx, host: _reached(ctx, host, name, inst, how, shell)
        return shell
    try:
        p = provider(name)
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


def _lost(name: str, iid: str):
    """For the ssh layer: (why, state) when instance `iid` will not answer again (it was
    stopped or destroyed by someone else than this job), asked when its connection drops."""

    def why() -> tuple[str, str] | None:
        try:
            inst = provider(name).get(iid)
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
    tell(ctx, host, name, inst.id, "running", inst)
    if m and m.kind == name and m.ident == inst.id:
        machines.set_state(host, "running")
    else:
        m = Machine(host, name, inst.id, how, state="running")
        machines.add(m)
        if how == "started":
            ctx.console.info(f"{name} {inst.id} was stopped: started it")
    if m.ours:
        autostop(ctx, name, inst.id, shell)


# ---- autostop ----------------------------------------------------------------------------------

_beats: dict[tuple[str, str], threading.Event] = {}


def autostop_seconds(ctx) -> float:
    value = ctx.job.options.get("autostop")
    if value is None:
        value = config.off_or_duration("cloud.autostop")
    return float(value)


def autostop(ctx, name: str, iid: str, shell) -> None:
    """Leave the watcher (runtime/autostop.py) on the instance, once per instance and job, and
    keep its heartbeat fresh while this train runs."""
    idle = autostop_seconds(ctx)
    if idle <= 0:
        return
    why = watcher.leave(shell, provider(name), iid, ctx.job.id, idle)
    if why:
        ctx.events.warn(f"{name} {iid}: autostop {why}")
        return
    ctx.console.info(f"{name} {iid}: autostop after {format_seconds(idle)} idle with no train "
                     "connected (--autostop 0 turns it off)")
    _heartbeat(name, iid, shell, ctx.job.id, idle)


def _heartbeat(name: str, iid: str, shell, job: str, idle: float) -> None:
    old = _beats.pop((name, iid), None)
    if old:
        old.set()
    _beats[(name, iid)] = watcher.heartbeat(shell, job, idle, f"{name}-{iid}")


def stop_heartbeat(name: str, iid: str) -> None:
    ev = _beats.pop((name, iid), None)
    if ev:
        ev.set()


KINDS = {name: CloudKind(name) for name in CLOUDS}
