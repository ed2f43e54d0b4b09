"""Vast.ai as a `Provider`: a thin client of its REST API (console.vast.ai/api/v0).

Paths, bodies and units follow Vast's API reference and the official `vastai` CLI: the key
goes as `Authorization: Bearer`, `VAST_URL` moves the server (paths get `/api/v0`), the market
is searched with `POST bundles/`, an offer is rented with `PUT asks/ID/`. Vast gives GPU RAM in
MB (the CLI divides by 1000); `Offer` and the filters speak GB.
"""

# Imports inside functions keep the secrets store and GPU tables out of start-up.

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing costs start-up time; the annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

from trainsh.numbers import digits
from trainsh.cloud import http
from trainsh.cloud.provider import (GONE, OUTBID, RUNNING, STARTING, STOPPED, STOPPING, UNKNOWN, AuthError,
                                    CreateRequest, Instance, LostAnswer, NoCapacity, NotFound, Offer,
                                    Provider, ProviderError, SshEndpoint, Unavailable, bid_with_margin)

DEFAULT_URL = "https://console.vast.ai"
MB_PER_GB = 1000  # as the official CLI converts gpu_ram and cpu_ram
# `storage_cost` is $/GB/month over 720 hours: Vast's reference examples give storage_cost x
# disk_space / 720 = storage_total_cost (0.149333 x 10 GB / 720 = 0.0020741, show_instance.yaml)
HOURS_PER_MONTH = 720
TOTALS_YEARS = 5  # how far back a machine's charges are summed
WHAT = "Vast.ai"
# `actual_status` values that "will never reach running" (vast-ai/docs api-reference/hello-world.mdx;
# their meanings from cli/reference/show-instance.mdx)
NEVER_RUNS = {"exited": "the container stopped", "unknown": "no heartbeat from the host",
              "offline": "the host is disconnected"}
# what in `status_msg` makes the official CLI's own wait give up at once (vast-cli
# vastai/cli/commands/machines.py wait_for_instance)
# instances this process asked to start and has not yet seen move: only for one of those may an
# `exited` instance asked to run be a start the host has not acted on (a stopped one says
# `exited` too); for any other it is a crash
_STARTS: set[str] = set()
ERROR_WORDS = ("error", "failed", "failure", "exception", "traceback", "oci runtime", "permission denied")
# A bid's range: create_instance.yaml `price` 0.001..128, change_bid.yaml 0.001..32 ($/h)
BID_RANGE = {"create": (0.001, 128.0), "change": (0.001, 32.0)}


def outbid(raw: dict[str, Any]) -> bool:
    """An interruptible instance (`is_bid`) that lost its bid: "when outbid, the instance moves
    to `stopped`" while the user's word stays running, and it resumes once its bid wins again
    (vast-cli vastai/SKILL.md; docs guides/instances/choosing/instance-types.mdx "paused ...
    resume automatically"). A user's stop says `intended_status` stopped; a start this process
    made and the host has not acted on yet is not an outbid."""
    return (raw.get("is_bid") is True and raw.get("intended_status") == "running"
            and raw.get("actual_status") == "stopped" and str(raw.get("id")) not in _STARTS)


def _reader(raw: dict[str, Any] | http.Reply, what: str) -> http.Reply:
    """`raw` as a Reply (a record read on its own, not from a call, is named by `what`)."""
    return raw if isinstance(raw, http.Reply) else http.Reply(raw, WHAT, what)


def state(raw: dict[str, Any]) -> str:
    """One provider state from Vast's three status fields: `actual_status` (the container),
    `intended_status` (what the user asked), `cur_state` (the contract)."""
    actual = raw.get("actual_status")
    intended = raw.get("intended_status")
    if raw.get("cur_state") in ("deleted", "destroyed"):
        return GONE
    if outbid(raw):
        return STOPPED
    if actual == "running":
        return STOPPING if intended == "stopped" else RUNNING
    if actual in ("unknown", "offline"):
        return UNKNOWN
    if intended == "stopped":
        return STOPPED
    if actual in (None, "", "created", "loading", "rebooting", "scheduling"):
        return STARTING
    if actual in ("exited", "stopped", "frozen"):
        # asked to run but not running yet (a start in progress, or a crash the host restarts)
        return STARTING if intended == "running" and raw.get("cur_state") == "running" else STOPPED
    return UNKNOWN


def ssh_endpoint(raw: dict[str, Any] | http.Reply) -> SshEndpoint | None:
    """The direct port when the machine has one (`22/tcp` on its public address), else the
    proxy (`ssh_host:ssh_port`), as `vastai ssh-url` chooses."""
    r = _reader(raw, "an instance")
    ports = r.child("ports")
    ip = r.text("public_ipaddr", "").strip()
    if ports is not None and ip:
        mapped = ports.children("22/tcp")
        port = mapped[0].field("HostPort", (str, int), "a port number", "") if mapped else ""
        if digits(str(port)):
            return SshEndpoint("root", ip, int(port))
    host = r.text("ssh_host", "")
    port = r.field("ssh_port", (str, int), "a port number", "")
    if host and digits(str(port)):
        return SshEndpoint("root", host, int(port))
    return None


def instance(raw: dict[str, Any] | http.Reply) -> Instance:
    r = _reader(raw, "an instance")
    for k in ("actual_status", "intended_status", "cur_state"):
        r.text(k, None)
    status = state(r.obj())
    uptime = r.number("uptime_mins", None)
    if uptime is not None and status == RUNNING:
        started = time.time() - uptime * 60
    else:
        started = r.number("start_date", 0.0) or None
    return Instance(
        provider="vast", id=r.ident("id"), status=status,
        provider_status=r.text("actual_status", "") or "provisioning",
        gpu_name=r.text("gpu_name", ""), num_gpus=int(r.number("num_gpus")),
        price_per_hour=r.number("dph_total"), gpu_ram_gb=r.number("gpu_ram") / MB_PER_GB,
        label=r.text("label", ""), image=r.text("image_uuid", ""), started_at=started,
        ssh=ssh_endpoint(r), raw=r.obj(), storage_per_hour=storage_per_hour(r),
        interruptible=bool(r.obj().get("is_bid")), bid=bid(r),
        preempted=OUTBID if outbid(r.obj()) else "")


def bid(raw: dict[str, Any] | http.Reply) -> float | None:
    """An interruptible instance's bid ($/h): its GPU price, `dph_base` (dph_total less its
    storage, show_instance.yaml); instances carry no bid field of their own."""
    r = _reader(raw, "an instance")
    if r.obj().get("is_bid") is not True:
        return None
    base = r.number("dph_base", None)
    return base if base is not None else r.number("dph_total") - storage_per_hour(r)



def storage_per_hour(raw: dict[str, Any] | http.Reply) -> float:
    """What the instance's disk bills an hour, running or stopped: `storage_total_cost` (the
    whole disk, $/h; dph_total = dph_base + it), else `storage_cost` ($/GB/month) x disk_space."""
    r = _reader(raw, "an instance")
    total = r.number("storage_total_cost", None)
    if total is not None:
        return total
    return r.number("storage_cost") * r.number("disk_space") / HOURS_PER_MONTH


def offer(raw: dict[str, Any] | http.Reply) -> Offer:
    r = _reader(raw, "an offer")
    reliability = r.number("reliability2", None)
    return Offer(
        provider="vast", id=r.ident("id"), gpu_name=r.text("gpu_name", ""),
        num_gpus=int(r.number("num_gpus")), gpu_ram_gb=r.number("gpu_ram") / MB_PER_GB,
        price_per_hour=r.number("dph_total"), location=r.text("geolocation", ""),
        reliability=reliability if reliability is not None else r.number("reliability", None),
        disk_gb=r.number("disk_space", None), raw=r.obj(), min_bid=r.number("min_bid", None),
        disk_per_gb_hour=r.number("storage_cost", 0.0) / HOURS_PER_MONTH)


class VastProvider(Provider):
    name = "vast"
    title = WHAT

    def __init__(self, key: str | None = None, url: str | None = None, timeout: float | None = None):
        self._key = key
        self.url = (url or os.environ.get("VAST_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout  # seconds each API call may take in all (None: cloud.api_timeout)
        self._gpu_names: list[str] | None = None  # the API's GPU names, once asked

    # ---- plumbing ---------------------------------------------------------------------------

    @property
    def key(self) -> str:
        if self._key is None:
            from trainsh.settings import secrets

            try:
                self._key = secrets.lookup("VAST_API_KEY") or ""
            except secrets.SecretError as e:
                raise AuthError(f"{WHAT}: cannot read VAST_API_KEY: {e}") from None
        if not self._key:
            raise AuthError(f"{WHAT}: no API key: run `train secrets set VAST_API_KEY` "
                            "(or export VAST_API_KEY); keys are at cloud.vast.ai/manage-keys")
        return self._key

    def _call(self, method: str, path: str, body: Any = None, *, retries: int = 3,
              query: str = "") -> http.Reply:
        """The answer to one API call, to be read with its expected shape. A call sent once
        (`retries=0`: it acts) reads as a lost answer when its shape is wrong."""
        url = f"{self.url}/api/v0/{path}{'?' + query if query else ''}"
        call = f"{method} {path}"
        return http.Reply(http.request(method, url, what=WHAT, key=self.key, body=body, call=call,
                                       timeout=self.timeout, retries=retries),
                          WHAT, call, lost=retries == 0)

    @staticmethod
    def _refused_key(e: NotFound) -> AuthError:
        """The AuthError of an endpoint that refuses a key with 404 (search, charges)."""
        said = str(e).partition(": not found")[2].lstrip(": ")
        return AuthError(f"{WHAT}: the API key was refused (404{': ' + said if said else ''})")

    @staticmethod
    def _refused(reply: http.Reply) -> str | None:
        """Vast answers some refusals with 200 and `success: false`."""
        v = reply.value
        if isinstance(v, dict) and v.get("success") is False:
            return http.one_line(str(v.get("msg") or v.get("error") or "refused"))
        return None

    # ---- the market -------------------------------------------------------------------------

    def search(self, *, gpu: str | None = None, num_gpus: int = 1, min_gpu_ram_gb: float | None = None,
               max_price: float | None = None, limit: int = 20, interruptible: bool = False) -> list[Offer]:
        # Interruptible: the same on-demand query (dph_total stays the on-demand price, and
        # every offer carries `min_bid`: search_offers.yaml's example), ordered and capped by
        # `min_bid`, a documented search field
        price = "min_bid" if interruptible else "dph_total"
        q: dict[str, Any] = {"verified": {"eq": True}, "external": {"eq": False},
                             "rentable": {"eq": True}, "rented": {"eq": False},
                             "num_gpus": {"gte": int(num_gpus)},
                             "order": [[price, "asc"]], "type": "on-demand",
                             "limit": int(limit)}
        if gpu:
            q["gpu_name"] = {"eq": self.gpu_name(gpu)}
        if min_gpu_ram_gb is not None:
            q["gpu_ram"] = {"gte": float(min_gpu_ram_gb) * MB_PER_GB}
        if max_price is not None:
            q[price] = {"lte": float(max_price)}
        try:
            reply = self._call("POST", "bundles/", q)
        except NotFound as e:  # how search refuses a key (search_offers.yaml: 404 "Unauthorized")
            raise self._refused_key(e) from None
        # the server filters, orders and limits (its search answers 400 to a field, operator or
        # `type` it does not know: search_offers.yaml), so its answer is taken as it comes
        return [offer(o) for o in reply.children("offers")]

    def gpu_name(self, gpu: str) -> str:
        """Vast's own spelling of a GPU name ("rtx_4090" -> "RTX 4090"). Its search compares
        names exactly and the official CLI only turns `_` into a space, so the case comes from
        the names we know (gpus.py) or else from the API's list (`GET gpu_names/unique/`, read
        once, only for a name we do not know); a name found in neither goes as given."""
        from trainsh.cloud.gpus import key, lookup

        name = gpu.replace("_", " ").strip()
        found = lookup(name, "vast")  # any spelling of a card the table knows (RTX4090 too)
        if found:
            return found
        if self._gpu_names is None:
            try:
                reply = self._call("GET", "gpu_names/unique/", retries=1)
            except Unavailable:
                raise  # (the search would wait as long again, to fail alike)
            except ProviderError:
                reply = None  # the search itself will say what is wrong
            v = reply.value if reply is not None else None
            listed = v.get("gpu_names") if isinstance(v, dict) else None
            self._gpu_names = [str(n) for n in listed] if isinstance(listed, list) else []
        return {key(n): n for n in self._gpu_names}.get(key(name), name)

    def create(self, offer_id: str, request: CreateRequest) -> Instance:
        offer_id = self._id(offer_id, "offer")
        label = request.label or f"trainsh-{os.urandom(6).hex()}"
        body = {"client_id": "me", "image": request.image, "disk": float(request.disk_gb),
                "runtype": "ssh_direc ssh_proxy", "env": dict(request.env),
                "onstart": request.onstart, "label": label}
        if request.interruptible:  # a `price` makes the rent interruptible (create_instance.yaml)
            body["price"] = self._bid(request.bid if request.bid is not None else
                                      bid_with_margin(self._min_bid(offer_id), self.name), "create")
        try:
            reply = self._call("PUT", f"asks/{offer_id}/", body, retries=0)
        except NotFound:
            raise NoCapacity(f"{WHAT}: offer {offer_id} is no longer available") from None
        except Unavailable as e:
            # The machine may have been rented before the error (or be on its way): look twice,
            # a moment apart. It is never rented again here: a machine the list does not show
            # yet would be paid twice (runtime/holds.py settles a LostAnswer).
            try:
                found = self._rented(label, request.existing)
            except Unavailable:
                found = None
            if found:
                return self._keyed(found, request)
            raise LostAnswer(f"{e} (an instance labelled '{label}' may have been made: "
                             "see train vast list)") from None
        except http.HttpError as e:
            if e.status == 410 or "no_such_ask" in str(e.body) or "not available" in str(e).lower():
                raise NoCapacity(f"{WHAT}: offer {offer_id} is no longer available") from None
            raise
        refused = self._refused(reply)
        if refused:
            if "no_such_ask" in refused or "available" in refused.lower():
                raise NoCapacity(f"{WHAT}: offer {offer_id} is no longer available") from None
            raise ProviderError(f"{WHAT}: renting offer {offer_id} was refused: {refused}")
        # (the reply reads as a lost answer when its shape is wrong: the rent may have happened)
        new_id = reply.field("new_contract", (int, str), "an instance id", None) \
            if reply.value is not None else None
        if new_id is None:
            raise LostAnswer(f"{WHAT}: renting offer {offer_id} gave no instance id")
        return self._keyed(self.get(str(new_id)), request)

    def _min_bid(self, offer_id: str) -> float:
        try:
            reply = self._call("POST", "bundles/", {"id": {"eq": int(offer_id)}, "type": "on-demand"})
        except NotFound as e:
            raise self._refused_key(e) from None
        found = [offer(o) for o in reply.children("offers")]
        if not found:
            raise NoCapacity(f"{WHAT}: offer {offer_id} is no longer available")
        if not found[0].min_bid:
            raise ProviderError(f"{WHAT}: offer {offer_id} names no minimum bid: give --bid PRICE")
        return found[0].min_bid

    @staticmethod
    def _bid(price: float, kind: str) -> float:
        low, high = BID_RANGE[kind]
        if not low <= price <= high:
            raise ProviderError(f"{WHAT}: a bid is ${low:g} to ${high:g} an hour, not {price:g}")
        return round(float(price), 4)

    def change_bid(self, instance_id: str, bid: float) -> None:
        """`PUT instances/bid_price/ID/` {"client_id": "me", "price": P} (change_bid.yaml;
        vast-cli `change bid`); an on-demand instance is refused here, before the call."""
        inst = self.get(instance_id)
        if not inst.interruptible:
            raise ProviderError(f"{WHAT}: instance {inst.id} is on-demand, not interruptible: it has no bid")
        self._put_state(inst.id, {"client_id": "me", "price": self._bid(bid, "change")}, "change the bid of",
                        f"instances/bid_price/{inst.id}/")

    def _rented(self, label: str, existing=(), pause: float = 2.0) -> Instance | None:
        """The instance a create under `label` made (not one that had the label before)."""
        for look in range(2):
            found = [i for i in self.find_by_label(label) if i.id not in existing]
            if found:
                return found[0]
            if look == 0:
                time.sleep(pause)
        return None

    def _keyed(self, inst: Instance, request: CreateRequest) -> Instance:
        if request.public_key:
            self.attach_key(inst.id, request.public_key)
        return inst

    # ---- instances --------------------------------------------------------------------------

    def list(self) -> list[Instance]:
        reply = self._call("GET", "instances/", query="owner=me")
        return [instance(r) for r in reply.children("instances")]

    def totals(self) -> dict[str, float]:
        """Each instance's charges since it was rented: `GET charges/` (Vast's per-contract
        GPU, disk and bandwidth charges, `amount` the contract's total, over the `day` range
        it requires: the last TOTALS_YEARS years), summed by `source` "instance-ID"."""
        import json
        from urllib.parse import quote

        now = int(time.time())
        filters = {"day": {"gte": now - TOTALS_YEARS * 366 * 86400, "lte": now + 86400},
                   "type": {"in": ["instance"]}}
        query = f"select_filters={quote(json.dumps(filters))}&format=table&limit=500"
        out: dict[str, float] = {}
        token = None
        for _ in range(20):  # pages of 500 contracts
            page = query + (f"&after_token={quote(token)}" if token else "")
            try:
                reply = self._call("GET", "charges/", query=page, retries=1)
            except NotFound as e:  # a key that matches no user (show_charges.yaml: 404)
                raise self._refused_key(e) from None
            for r in reply.children("results"):
                source = r.text("source", "")
                if source.startswith("instance-"):
                    out[source[9:]] = out.get(source[9:], 0.0) + r.number("amount")
            token = reply.text("next_token", None)
            if not token:
                break
        return out

    def get(self, instance_id: str) -> Instance:
        iid = self._id(instance_id)
        try:
            reply = self._call("GET", f"instances/{iid}/", query="owner=me")
        except NotFound:
            reply = None
        # Vast's reference: an id not on the account is 200 {"instances": null}
        raw = reply.child("instances") if reply is not None and reply.value is not None else None
        if raw is None or not raw.obj():
            raise NotFound(f"{WHAT}: no instance {iid} on this account")
        return instance(raw)

    def _put_state(self, instance_id: str, body: dict[str, Any], verb: str, path: str | None = None) -> None:
        iid = self._id(instance_id)
        try:
            reply = self._call("PUT", path or f"instances/{iid}/", body)
        except NotFound:
            raise NotFound(f"{WHAT}: no instance {iid} on this account") from None
        refused = self._refused(reply)
        if refused:
            raise ProviderError(f"{WHAT}: cannot {verb} instance {iid}: {refused}")

    def start(self, instance_id: str) -> None:
        self._put_state(instance_id, {"state": "running"}, "start")
        _STARTS.add(str(instance_id).strip())

    def stop(self, instance_id: str) -> None:
        self._put_state(instance_id, {"state": "stopped"}, "stop")

    def starting_again(self, inst: Instance) -> bool:
        # stopped while the user's word is still "running": a start the host has not acted on
        return inst.raw.get("intended_status") != "stopped"

    def crashed(self, inst: Instance, moved: bool) -> str:
        """`unknown` and `offline` with the user's word "running" never run; `exited` is a
        crash too unless it may be a start the host has not acted on yet (this process started
        it and no wait has seen it move since) and `status_msg` names no error."""
        raw = inst.raw
        actual, msg = raw.get("actual_status"), raw.get("status_msg")
        if actual != "exited":
            _STARTS.discard(inst.id)  # the host acted on the start
        if raw.get("intended_status") == "stopped" or actual not in NEVER_RUNS:
            return ""
        msg = " ".join("".join(c if c.isprintable() else " " for c in msg).split())[:200] \
            if isinstance(msg, str) else ""
        if actual == "exited" and not any(w in msg.lower() for w in ERROR_WORDS):
            if moved:
                _STARTS.discard(inst.id)
            elif inst.id in _STARTS:
                return ""
        return f"{actual}: {NEVER_RUNS[actual]}" + (f": {msg}" if msg and actual == "exited" else "")

    def reboot(self, instance_id: str) -> None:
        iid = self._id(instance_id)
        self._put_state(iid, {}, "reboot", f"instances/reboot/{iid}/")

    def destroy(self, instance_id: str) -> None:
        iid = self._id(instance_id)
        try:
            reply = self._call("DELETE", f"instances/{iid}/", {})
        except NotFound:
            raise NotFound(f"{WHAT}: no instance {iid} on this account") from None
        refused = self._refused(reply)
        if refused:
            raise ProviderError(f"{WHAT}: cannot destroy instance {iid}: {refused}")

    def self_stop(self, instance_id: str) -> tuple[str, str, dict[str, Any], list[str]]:
        """How a machine stops itself (the autostop watcher): the request, and where the
        instance finds its own key, which may only control that instance."""
        iid = self._id(instance_id)
        return "PUT", f"{self.url}/api/v0/instances/{iid}/", {"state": "stopped"}, ["CONTAINER_API_KEY"]

    def self_destroy(self, instance_id: str) -> tuple[str, str, dict[str, Any], list[str]]:
        """As `self_stop`, destroying it (Vast's instance key "can only start, stop, or destroy
        that specific instance": vast-ai/docs api-reference/hello-world.mdx)."""
        iid = self._id(instance_id)
        return "DELETE", f"{self.url}/api/v0/instances/{iid}/", {}, ["CONTAINER_API_KEY"]

    def set_label(self, instance_id: str, label: str) -> None:
        self._put_state(instance_id, {"label": label}, "label")

    @staticmethod
    def _id(instance_id: str, what: str = "instance") -> str:
        """The last check of an id before it goes into a URL (the CLI's arguments were checked
        the same way, trainsh/numbers.py; recipes and ow come here)."""
        from trainsh.numbers import vast_id

        try:
            return vast_id(str(instance_id), what)
        except ValueError as e:
            raise NotFound(f"{WHAT}: {e}") from None

    # ---- ssh keys ---------------------------------------------------------------------------

    def keys(self) -> list[dict[str, Any]]:
        try:
            reply = self._call("GET", "ssh/")
        except NotFound:  # Vast's reference: 404 when the account has no key
            return []
        if reply.value is None:
            return []
        if isinstance(reply.value, dict):  # documented as a bare list; tolerate a wrapped one
            rows = reply.children("keys" if reply.has("keys") else "ssh_keys")
        else:
            rows = reply.each()
        out = []
        for k in rows:
            if not k.obj().get("deleted_at"):
                text = k.text("key") if isinstance(k.obj().get("key"), str) else k.text("public_key", "")
                out.append({"id": k.ident("id"), "key": text.strip()})
        return out

    def add_key(self, public_key: str) -> None:
        public_key = public_key.strip()
        if any(k["key"].split()[:2] == public_key.split()[:2] for k in self.keys()):
            return
        refused = self._refused(self._call("POST", "ssh/", {"ssh_key": public_key}, retries=0))
        if refused:
            raise ProviderError(f"{WHAT}: the ssh key was refused: {refused}")

    def attach_key(self, instance_id: str, public_key: str) -> None:
        iid = self._id(instance_id)
        try:
            reply = self._call("POST", f"instances/{iid}/ssh/", {"ssh_key": public_key.strip()})
        except NotFound:
            raise NotFound(f"{WHAT}: no instance {iid} on this account") from None
        refused = self._refused(reply)
        if refused and "already" not in refused.lower():
            raise ProviderError(f"{WHAT}: cannot attach the ssh key to instance {iid}: {refused}")
