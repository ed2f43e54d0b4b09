"""The one interface every GPU cloud implements, and the types they share.

The shape is Libcloud's compute drivers and rclone's backends: a few verbs (search offers,
create from an offer, list, get, start, stop, destroy, reboot) and two plain records
(`Offer`, `Instance`) that every provider fills the same way, so the CLI, the recipe steps,
`ow` and pricing never look at a provider's own field names. Adding a cloud means adding one
module that subclasses `Provider` and passes tests/cloud_suite.py against its fake.

Units are fixed here so providers convert once: prices in USD per hour, memory and disk in GB
(10^9 bytes as the clouds quote them), times as Unix seconds.
"""

# Imports inside functions load ssh, GPU names and the config only where used (start-up).

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


class ProviderError(Exception):
    """A cloud call failed; the message is one line a user can act on."""


class AuthError(ProviderError):
    """The API key is missing or refused."""


class NotFound(ProviderError):
    """No instance (or offer) with that id on this account."""


class NoCapacity(ProviderError):
    """The offer or GPU type cannot be had right now."""


class Unavailable(ProviderError):
    """The API cannot be reached or keeps failing (network, 5xx, 429 after retries)."""


class LostAnswer(Unavailable):
    """The server may have acted, but its answer was cut short or damaged (a truncated body,
    not JSON, a broken status line): a create may have made a machine."""


class NotReady(ProviderError):
    """`Provider.wait_ready` gave up: `why` is "gone", "stopped" (and nobody starts it),
    "preempted" (an interruptible machine the cloud stopped: outbid or reclaimed),
    "crashed" (it will never run: `last` says why) or "timeout". `inst` is the instance as
    last seen, `last` what kept it from being ready (its status, or how the ssh login failed),
    `status` the status as `say` was told it."""

    def __init__(self, message: str, why: str, inst: Instance, last: str, status: str):
        super().__init__(message)
        self.why, self.inst, self.last, self.status = why, inst, last, status


# ---- records -------------------------------------------------------------------------------

# Instance states, the same words for every provider.
STARTING = "starting"   # created or started, not yet running
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"     # not running; its disk (and its storage bill) remains
GONE = "gone"           # destroyed or expired
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SshEndpoint:
    user: str
    host: str
    port: int

    def spec(self, key: str | None = None) -> str:
        """As a host spec the ssh layer takes (`user@host -p PORT [-i KEY]`)."""
        import shlex

        parts = [f"{self.user}@{self.host}", "-p", str(self.port)]
        if key:
            parts += ["-i", key]
        return shlex.join(parts)


@dataclass
class Offer:
    provider: str
    id: str
    gpu_name: str
    num_gpus: int
    gpu_ram_gb: float          # per GPU
    price_per_hour: float      # USD, whole machine
    location: str = ""
    reliability: float | None = None
    disk_gb: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    min_bid: float | None = None  # USD/h, whole machine: the lowest interruptible bid it takes
    # USD a GB of the disk a rent asks for bills an hour, on top of price_per_hour (Vast's
    # storage_cost; what an instance's own price then includes, and bills while stopped)
    disk_per_gb_hour: float = 0.0

    def price_with_disk(self, disk_gb: float) -> float:
        """What the machine bills an hour once rented with a disk of `disk_gb`."""
        return self.price_per_hour + self.disk_per_gb_hour * disk_gb


# Why the cloud stopped an interruptible machine (Instance.preempted): the same words for every
# provider, so later work can tell a lost machine through Provider.get() alone.
OUTBID = "outbid"        # Vast: a higher bid took the GPUs; the machine is paused, its disk kept
RECLAIMED = "reclaimed"  # RunPod: the spot pod's GPUs were taken back; its volume kept


@dataclass
class Instance:
    provider: str
    id: str
    status: str                # one of the states above
    provider_status: str       # the provider's own word, for display
    gpu_name: str = ""
    num_gpus: int = 0
    price_per_hour: float = 0.0  # USD while running
    gpu_ram_gb: float = 0.0      # per GPU; 0 when the provider does not say
    label: str = ""
    image: str = ""
    started_at: float | None = None  # Unix seconds when the current run began
    ssh: SshEndpoint | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    storage_per_hour: float = 0.0    # USD an hour its disk bills while it is stopped
    total_cost: float | None = None  # USD billed since it was rented (Provider.totals), if known
    interruptible: bool = False      # rented on a bid (Vast) or as a spot pod (RunPod)
    bid: float | None = None         # USD/h, whole machine, when interruptible and the cloud says
    preempted: str = ""              # OUTBID or RECLAIMED: the cloud stopped it, not the user

    @property
    def status_words(self) -> str:
        """Its state in plain words: "paused: outbid" (Vast pauses a machine that lost its bid
        until the bid wins again), "stopped: reclaimed", else the state."""
        if self.preempted == OUTBID:
            return "paused: outbid"
        if self.preempted:
            return f"stopped: {self.preempted}"
        return self.status

    @property
    def host_spec(self) -> str:
        """How recipes and the CLI name this machine: `vast:123`, `runpod:abc`."""
        return f"{self.provider}:{self.id}"

    def ssh_spec(self, key: str | None = None):
        """The ssh layer's spec for this machine (None until it has an endpoint): host keys go
        to trainsh's own known_hosts under the instance's name, accepted on first use."""
        if self.ssh is None:
            return None
        from trainsh.remote.sshspec import cloud_spec

        return cloud_spec(self.ssh.user, self.ssh.host, self.ssh.port,
                          f"{self.provider}-{self.id}", key)

    def uptime(self, now: float | None = None) -> float:
        if self.status != RUNNING or not self.started_at:
            return 0.0
        return max(0.0, (now or time.time()) - self.started_at)

    def cost_so_far(self, now: float | None = None) -> float:
        """USD spent in the current run (price x uptime); storage while stopped is not in it."""
        return self.price_per_hour * self.uptime(now) / 3600.0

    def billing_per_hour(self) -> float:
        """What it bills an hour as it is now: its price while it runs or starts, its disk's
        storage while it is stopped, nothing once it is gone."""
        if self.status == GONE:
            return 0.0
        return self.storage_per_hour if self.status == STOPPED else self.price_per_hour


@dataclass
class CreateRequest:
    image: str
    disk_gb: float = 50.0
    label: str = ""                 # used to find a machine again after a failed create
    env: dict[str, str] = field(default_factory=dict)
    onstart: str | None = None      # a shell script run when the machine starts
    public_key: str | None = None   # the ssh key the machine must accept
    gpu_count: int = 1
    existing: tuple = ()            # ids that had the label before: never this rent's machine
    interruptible: bool = False     # rent on a bid (Vast) / as a spot pod (RunPod)
    bid: float | None = None        # USD/h, whole machine; None: the offer's minimum + margin


def bid_with_margin(min_bid: float, cloud: str) -> float:
    """The bid a rent with no price of its own makes: the offer's minimum bid plus config
    `CLOUD.bid_margin` (a fraction, default 0.10), so a small rise of the minimum does not
    outbid it at once."""
    from trainsh.settings import config

    try:
        margin = float(config.get(f"{cloud}.bid_margin"))
    except config.ConfigError:
        margin = 0.10
    return round(min_bid * (1 + margin), 4)


def machine_bid(cloud: str, price: float | None, gpus: int) -> float | None:
    """The bid a rent sends (`CreateRequest.bid`, USD/h for the whole machine) for a `--bid
    PRICE` as the user gave it: for the machine on Vast (its offers are machines), per GPU on
    RunPod (as its spot price is quoted). None or 0 (no price): the provider's own rule,
    `bid_with_margin`."""
    if not price:
        return None
    return price * (gpus if cloud == "runpod" else 1)


class Provider(ABC):
    """A GPU cloud. Each method is one API round trip or a few, raises ProviderError (or a
    subclass) with a one-line message, and never prints."""

    name: str = ""
    title: str = ""           # the cloud in messages: "Vast.ai", "RunPod"
    noun: str = "instance"    # what the cloud calls a machine ("pod" on RunPod)

    @abstractmethod
    def search(self, *, gpu: str | None = None, num_gpus: int = 1, min_gpu_ram_gb: float | None = None,
               max_price: float | None = None, limit: int = 20, interruptible: bool = False) -> list[Offer]:
        """Offers that match, cheapest first (`interruptible`: by minimum bid, each offer's
        `min_bid` filled)."""

    @abstractmethod
    def create(self, offer_id: str, request: CreateRequest) -> Instance:
        """Rent a machine from an offer, sent once. When the answer is lost or a server error
        after which the machine may exist, it is looked up by label (not `request.existing`);
        when none shows, LostAnswer: never sent again, as the cloud's list may lag its creates
        (runtime/holds.py `rent` settles it). Callers rent through `holds.rent`."""

    @abstractmethod
    def list(self) -> list[Instance]:
        """This account's instances."""

    @abstractmethod
    def get(self, instance_id: str) -> Instance:
        """One instance; NotFound if the account has none with that id."""

    @abstractmethod
    def start(self, instance_id: str) -> None: ...

    @abstractmethod
    def stop(self, instance_id: str) -> None: ...

    @abstractmethod
    def destroy(self, instance_id: str) -> None: ...

    def reboot(self, instance_id: str) -> None:
        raise ProviderError(f"{self.name} cannot reboot an instance")

    def change_bid(self, instance_id: str, bid: float) -> None:
        """Set an interruptible machine's bid (USD/h, whole machine)."""
        raise ProviderError(f"{self.title or self.name} cannot change the bid of a running {self.noun}")

    def keys(self) -> list[dict[str, Any]]:
        """The account's ssh public keys: [{"id": ..., "key": "ssh-ed25519 ..."}]."""
        raise ProviderError(f"{self.name} keeps no ssh keys on the account")

    def add_key(self, public_key: str) -> None:
        """Register a public key on the account (nothing if it is there already)."""
        raise ProviderError(f"{self.name} keeps no ssh keys on the account")

    def gpu_matches(self, gpu_name: str, wanted: str) -> bool:
        """Whether an instance's `gpu_name` is the GPU `wanted` names: the cloud's own name in
        any case (`_` for a space) or a short name (gpus.py)."""
        from trainsh.cloud.gpus import key, lookup

        theirs = lookup(wanted, self.name) or wanted
        return key(gpu_name) in (key(wanted), key(theirs))

    def key_problem(self) -> str | None:
        """Why this cloud has no API key to call with (none configured, a store that cannot be
        read), as the one line its calls would fail with; None when it has one. Nothing is sent:
        a `pick` over every cloud leaves out those without a key."""
        try:
            key = self.key  # (each provider's: a property on some, a method on others)
            if callable(key):
                key()
        except AuthError as e:
            return str(e)
        return None

    def totals(self) -> dict[str, float]:
        """USD each of the account's instances has been billed since it was rented, by id, as
        the cloud's billing has it (one round trip); {} where the cloud keeps no such record."""
        return {}

    def offer_gpus(self, offer_id: str) -> int | None:
        """The GPU count an offer id itself names, when the cloud's ids name one."""
        return None

    def find_by_label(self, label: str) -> list[Instance]:
        return [i for i in self.list() if i.label == label and i.status != GONE]

    def starting_again(self, inst: Instance) -> bool:
        """Whether a STOPPED instance is on its way up all the same (a start the cloud has not
        acted on yet). A wait for one that is not gives up at once: nobody starts it."""
        return False

    def crashed(self, inst: Instance, moved: bool) -> str:
        """Why the instance will never run though it is asked to (a crashed container, a host
        gone quiet), or "". `moved`: this wait has seen it in another status before, so a
        state that could be a start not acted on yet is not that."""
        return ""

    def wait_ready(self, instance_id: str, timeout: float = 600.0, *, login: bool | list[str] = True,
                   login_timeout: float = 20.0, key: str | None = None, say=None,
                   poll: tuple[float, float, float] = (0.2, 1.5, 5.0), seen: Instance | None = None,
                   logged_in=None) -> Instance:
        """Poll until the instance runs with an ssh endpoint and (with `login`) an ssh login
        works; the ready Instance. `login` is True (`true` over ssh), False (no login: the
        caller's first ssh command is the probe, one round trip less) or the command to log in
        with; `logged_in(inst, stdout)` gets what it printed. `say(status)` hears each change
        of status. `poll` is (first delay, factor, longest delay) between looks; `seen` is the
        instance fresh from a `get`, so the first look costs no call.

        NotReady at once when the instance is gone, crashed (`crashed`) or stopped with nobody
        starting it (`starting_again`), and at the timeout naming what it last saw."""
        from trainsh.remote.shell import ShellError, SshShell

        deadline = time.monotonic() + timeout
        delay, factor, most = poll
        what = f"{self.title or self.name}: {self.noun} {instance_id}"
        said = None
        looks: set[str] = set()  # the provider statuses this wait has seen
        while True:
            inst = seen or self.get(instance_id)
            seen = None
            looks.add(inst.provider_status)
            status = inst.status if inst.status == inst.provider_status else \
                f"{inst.status} ({inst.provider_status})"
            last = f"status {inst.status}"
            if inst.status == RUNNING and inst.ssh is not None:
                if not login:
                    return inst
                try:
                    argv = ["true"] if login is True else login
                    r = SshShell(inst.ssh_spec(key), reconnect=0).run(argv, timeout=login_timeout)
                    if r.ok:
                        if logged_in:
                            logged_in(inst, r.stdout)
                        return inst
                    last = f"ssh login: exit {r.returncode}"
                except ShellError as e:
                    last = str(e)
                status = "running, ssh not answering yet"
            if say and status != said:
                say(status)
            said = status
            if inst.preempted:  # the cloud took it back: nobody here can start it now
                raise NotReady(f"{what} is {inst.status_words} while waiting for it to start",
                               "preempted", inst, last, status)
            crash = self.crashed(inst, len(looks) > 1)
            if crash:
                raise NotReady(f"{what} crashed ({crash})", "crashed", inst, crash, status)
            if inst.status == GONE or (inst.status == STOPPED and not self.starting_again(inst)):
                raise NotReady(f"{what} is {inst.provider_status.lower()} while waiting for it to start",
                               "gone" if inst.status == GONE else "stopped", inst, last, status)
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotReady(f"{what} not ready after {timeout:.0f}s ({last})", "timeout", inst, last, status)
            time.sleep(min(delay, left))  # the last look is at the deadline, not a poll before it
            delay = min(delay * factor, most)


# Each provider module is imported only when used: `train --help` must stay fast.
PROVIDERS = {
    "vast": ("trainsh.cloud.vast", "VastProvider"),
    "runpod": ("trainsh.cloud.runpod", "RunPodProvider"),
}


def provider(name: str) -> Provider:
    """The provider called `name` (`vast`, `runpod`), with its key and server from the
    secrets and environment as that module defines."""
    import importlib

    try:
        module, cls = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"unknown cloud '{name}' (known: {', '.join(PROVIDERS)})") from None
    return getattr(importlib.import_module(module), cls)()


def local_public_key() -> str | None:
    """The public half of the identity trainsh's ssh uses: config `ssh.key` + `.pub`, else the
    first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub; None when there is none."""
    from trainsh.settings import config

    try:
        key = config.get("ssh.key")
    except config.ConfigError:
        key = ""
    names = [os.path.expanduser(key) + ".pub"] if key else [
        os.path.expanduser(f"~/.ssh/id_{kind}.pub") for kind in ("ed25519", "ecdsa", "rsa")]
    for name in names:
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text:
            return text
    return None
