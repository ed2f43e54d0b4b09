"""RunPod: a thin client of its GraphQL API (`POST {base}/graphql`, Bearer key).

The key is the `RUNPOD_API_KEY` secret; the server is `RUNPOD_API_BASE_URL` when set (the
variable RunPod's own SDK reads), else https://api.runpod.io. Queries and field names follow
RunPod's GraphQL schema as the official SDK uses it. A pod is made with ssh on, port 22/tcp
public, and the user's public key in its `PUBLIC_KEY` env (RunPod's images put it in
authorized_keys). Its ssh endpoint is the runtime port with privatePort 22 on a public IP;
`runtime` is null until the container is up.

"search" offers GPU types that can be had now, one offer per cloud (secure, community) that
has them: the offer id is RunPod's gpuTypeId with the cloud ("NVIDIA L40@SECURE"), and the GPU
count when it is more than one ("2x NVIDIA L40@SECURE"); its price that cloud's per-GPU price
times the GPU count. `create` also takes a bare gpuTypeId or a short name
(cloud ALL: RunPod picks the cheapest that is free). `GPU_SHORT_NAMES` maps the short names `ow`
takes (L40, H100S, ...) to those ids.
"""

# Imports inside functions keep the secrets store, ssh and GPU tables out of start-up.

from __future__ import annotations

import json
import math
import os
import re
import secrets as _random
import time

from trainsh.cloud.gpus import GPUS
from trainsh.cloud.http import REQUIRED, HttpError, Reply, one_line, request
from trainsh.cloud.provider import (GONE, RECLAIMED, RUNNING, STARTING, STOPPED, UNKNOWN, AuthError,
                                    CreateRequest, Instance, LostAnswer, NoCapacity, NotFound, Offer,
                                    Provider, ProviderError, SshEndpoint, Unavailable, bid_with_margin,
                                    local_public_key)

DEFAULT_BASE = "https://api.runpod.io"
WHAT = "RunPod"

# Short names (as the OpenWeights CLI takes them) -> RunPod gpuTypeId: one table for every
# cloud, in gpus.py.
GPU_SHORT_NAMES = {short: names["runpod"] for short, names in GPUS.items()}


class UnknownGpu(ProviderError):
    """A GPU name that is neither a short name nor a RunPod GPU type id."""


def gpu_type_id(name: str) -> str:
    """RunPod's gpuTypeId for a short name (`L40`, `RTX4090`, any common spelling, gpus.py) or
    a full id (`NVIDIA L40`)."""
    from trainsh.cloud.gpus import lookup

    found = lookup(name, "runpod")
    if found:
        return found
    by_lower = {k.lower(): v for k, v in GPU_SHORT_NAMES.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    ids = {v.lower(): v for v in GPU_SHORT_NAMES.values()}
    if name.lower() in ids:
        return ids[name.lower()]
    if name.upper().startswith(("NVIDIA ", "AMD ")):
        return name  # a RunPod id outside the short list: the API judges it
    raise UnknownGpu(f"unknown GPU '{name}' (known: {', '.join(GPU_SHORT_NAMES)})")


# The pod fields every read selects (all in the official SDK's own pod query).
POD_FIELDS = """id name imageName desiredStatus costPerHr gpuCount containerDiskInGb volumeInGb
  uptimeSeconds lastStatusChange machineId podType
  runtime { ports { ip isIpPublic privatePort publicPort type } }
  machine { gpuDisplayName }"""

CAPACITY_WORDS = ("no longer any instances available", "not enough free gpus", "no available",
                  "no instances available")

# What a stopped pod's disk bills (docs.runpod.io pods/pricing, accounts-billing/billing): the
# volume disk $0.20/GB/month (0.10 while it runs), the container disk nothing (it is erased at
# the stop). RunPod gives no hours to its month: 730 (a year's hours / 12).
STOPPED_VOLUME_USD_PER_GB_MONTH = 0.20
HOURS_PER_MONTH = 730

# A spot pod says `podType` INTERRUPTABLE (RunPod spells its on-demand price
# `uninterruptablePrice`; the REST Pod's `interruptible` flag); a reserved one RESERVED.
SPOT = "INTERRUPTABLE"

STATES = {"RUNNING": RUNNING, "EXITED": STOPPED, "TERMINATED": GONE, "CREATED": STARTING,
          "RESTARTING": STARTING}


def _gql(value) -> str:
    """A GraphQL literal: strings quoted with JSON's escapes (GraphQL shares them), enums bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_gql(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_gql(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no GraphQL literal for {type(value).__name__}")


class _Enum(str):
    """A GraphQL enum value (written bare)."""


def _input(fields: dict) -> str:
    return "{" + ", ".join(f"{k}: {v if isinstance(v, _Enum) else _gql(v)}" for k, v in fields.items()) + "}"


class RunPodProvider(Provider):
    name = "runpod"
    title = WHAT
    noun = "pod"
    ssh_user = "root"

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout: float | None = None):
        self._key = api_key
        self.base_url = (base_url or os.environ.get("RUNPOD_API_BASE_URL") or DEFAULT_BASE).rstrip("/")
        self.timeout = timeout  # seconds each API call may take in all (None: cloud.api_timeout)
        self._types: list[dict] | None = None  # the GPU types, as last read

    # ---- plumbing -------------------------------------------------------------------------

    def key(self) -> str:
        if self._key:
            return self._key
        key = os.environ.get("RUNPOD_API_KEY")
        if key:  # what secrets.lookup would answer first, without loading the store (~45 ms)
            from trainsh import masking

            masking.register(key)
            self._key = key
            return key
        from trainsh.settings import secrets

        try:
            key = secrets.lookup("RUNPOD_API_KEY")
        except secrets.SecretError as e:
            raise AuthError(f"RunPod: cannot read the RUNPOD_API_KEY secret: {e}") from None
        if not key:
            raise AuthError("RunPod: no API key: set the RUNPOD_API_KEY secret "
                            "(train secrets set RUNPOD_API_KEY, or export RUNPOD_API_KEY=...)")
        self._key = key
        return key

    def graphql(self, document: str, *, retries: int = 3) -> Reply:
        """Send one query or mutation; its `data`, to be read with its expected shape, or the
        first error as ProviderError. Errors name the call by its operation and first field
        ("query myself"). A call sent once (`retries=0`: it acts) reads as a lost answer when
        its shape is wrong."""
        call = _operation(document)
        try:
            raw = request("POST", f"{self.base_url}/graphql", what=WHAT, key=self.key(), call=call,
                          body={"query": document}, timeout=self.timeout, retries=retries)
        except HttpError as e:
            raise self._classify(str(e)) from None
        except NotFound:
            raise Unavailable(f"RunPod: no GraphQL API at {self.base_url} (404)") from None
        body = Reply(raw, WHAT, call, lost=retries == 0)
        errors = body.field("errors", list, "a list", None)
        if errors:
            first = errors[0]
            said = first.get("message") if isinstance(first, dict) else first
            raise self._classify(f"RunPod: {one_line(str(said or '')) or 'request refused'}")
        return body.child("data", REQUIRED)

    @staticmethod
    def _classify(message: str) -> ProviderError:
        low = message.lower()
        if any(w in low for w in CAPACITY_WORDS):
            return NoCapacity(message)
        if "unauthorized" in low or "api key" in low:
            return AuthError(message)
        return ProviderError(message)

    # ---- reading --------------------------------------------------------------------------

    def gpu_types(self, gpu_count: int = 1) -> list[dict]:
        """Every GPU type with its memory and prices: `id`, `displayName`, `memoryInGb`,
        `securePrice`, `communityPrice` (per GPU-hour; 0 or null where not offered), `price`
        (the lowest current per-GPU price, None when none can be had now) and `clouds` (those
        of SECURE and COMMUNITY that have `gpu_count` of it now: `lowestPrice` asked with
        `secureCloud` true and false, as runpodctl's `get cloud --secure/--community` asks)."""
        n = int(gpu_count)
        data = self.graphql(f"""query GpuTypes {{ gpuTypes {{ id displayName memoryInGb secureCloud
  communityCloud securePrice communityPrice
  lowestPrice(input: {{gpuCount: {n}}}) {{ minimumBidPrice uninterruptablePrice }}
  secureNow: lowestPrice(input: {{gpuCount: {n}, secureCloud: true}}) {{ uninterruptablePrice }}
  communityNow: lowestPrice(input: {{gpuCount: {n}, secureCloud: false}}) {{ uninterruptablePrice }} }} }}""")
        out = []
        for g in data.children("gpuTypes"):
            def now(field: str) -> float | None:
                lowest = g.child(field)
                return lowest.number("uninterruptablePrice", None) if lowest is not None else None

            clouds = [c for c in ("SECURE", "COMMUNITY") if now(f"{c.lower()}Now")]
            row = {k: v for k, v in g.obj().items() if k not in ("secureNow", "communityNow")}
            row.update(id=g.text("id"), displayName=g.text("displayName", None),
                       memoryInGb=g.number("memoryInGb", None), securePrice=g.number("securePrice", None),
                       communityPrice=g.number("communityPrice", None))
            lowest = g.child("lowestPrice")
            out.append({**row, "price": now("lowestPrice") or None, "clouds": clouds,
                        "minBid": lowest.number("minimumBidPrice", None) if lowest is not None else None})
        self._types = out
        return out

    def gpu_matches(self, gpu_name: str, wanted: str) -> bool:
        """A pod names its GPU by display name ("RTX 4090"); `wanted` may be a short name or
        a gpuTypeId too: matched through the GPU types (read once, if no search read them)."""
        if super().gpu_matches(gpu_name, wanted):
            return True
        if self._types is None:
            self.gpu_types()
        return any(_names_gpu(wanted, g) and gpu_name in (g.get("displayName"), g.get("id"))
                   for g in self._types or [])

    def search(self, *, gpu: str | None = None, num_gpus: int = 1, min_gpu_ram_gb: float | None = None,
               max_price: float | None = None, limit: int = 20, interruptible: bool = False) -> list[Offer]:
        """One offer per GPU type and cloud (secure, community) that can be had now; `gpu` is a
        short name, a gpuTypeId or a display name (any case, `_` for a space). `min_bid` is
        `lowestPrice.minimumBidPrice` (per GPU) times the count; `interruptible` keeps the
        offers that take a bid, cheapest bid first."""
        offers = []
        for g in self.gpu_types(num_gpus):
            if gpu and not _names_gpu(gpu, g):
                continue
            if g["price"] is None:
                continue  # none to be had right now
            if min_gpu_ram_gb is not None and (g.get("memoryInGb") or 0) < min_gpu_ram_gb:
                continue
            for cloud, field in (("SECURE", "securePrice"), ("COMMUNITY", "communityPrice")):
                per_gpu = g.get(field)
                if not per_gpu or cloud not in g["clouds"]:
                    continue  # not offered in that cloud, or none to be had there now
                price = float(per_gpu) * num_gpus
                min_bid = round(float(g["minBid"]) * num_gpus, 4) if g.get("minBid") else None
                if interruptible and min_bid is None:
                    continue
                if max_price is not None and (min_bid if interruptible else price) > max_price:
                    continue
                offers.append(Offer(provider=self.name, id=offer_id(g["id"], cloud, num_gpus),
                                    gpu_name=g.get("displayName") or g["id"], num_gpus=num_gpus,
                                    gpu_ram_gb=float(g.get("memoryInGb") or 0), price_per_hour=round(price, 4),
                                    location=cloud.lower(), raw=g, min_bid=min_bid))
        offers.sort(key=lambda o: (o.min_bid or 0.0) if interruptible else o.price_per_hour)
        return offers[:limit]

    def list(self) -> list[Instance]:
        data = self.graphql(f"query Pods {{ myself {{ pods {{ {POD_FIELDS} }} }} }}")
        myself = data.child("myself")
        return [self._instance(p) for p in (myself.children("pods") if myself is not None else [])]

    def get(self, instance_id: str) -> Instance:
        _check_id(instance_id)
        try:
            data = self.graphql(f"query Pod {{ pod(input: {_input({'podId': instance_id})}) {{ {POD_FIELDS} }} }}")
        except ProviderError as e:
            if type(e) is ProviderError and "not found" in str(e).lower():
                raise NotFound(f"RunPod: no pod '{instance_id}' on this account") from None
            raise
        pod = data.child("pod")
        if pod is None or not pod.obj():
            raise NotFound(f"RunPod: no pod '{instance_id}' on this account")
        return self._instance(pod)

    def totals(self) -> dict[str, float]:
        """Each pod's cost since it was rented: RunPod's pod billing history (`GET
        /v2/billing/pods`, on the GraphQL API's server: records per pod per bucket, each with
        `totalAmount` in USD), the last years in year buckets, summed by `podId`."""
        call = "GET v2/billing/pods"
        body = Reply(request("GET", f"{self.base_url}/v2/billing/pods?bucketSize=year&lastN=5", what=WHAT,
                             key=self.key(), timeout=self.timeout, retries=1, call=call), WHAT, call)
        out: dict[str, float] = {}
        for r in body.children("records"):
            if r.has("podId"):
                pod = r.ident("podId")
                out[pod] = out.get(pod, 0.0) + r.number("totalAmount")
        return out

    def _instance(self, pod: Reply) -> Instance:
        desired = pod.text("desiredStatus", "")
        runtime = pod.child("runtime")
        status = STATES.get(desired, UNKNOWN)
        if status == RUNNING and not (runtime is not None and runtime.obj()):
            status = STARTING
        ssh = None
        for port in runtime.children("ports") if runtime is not None else []:
            ip, public = port.text("ip", ""), port.number("publicPort", None)
            if port.number("privatePort", None) == 22 and port.flag("isIpPublic") and ip and public:
                ssh = SshEndpoint(self.ssh_user, ip, int(public))
                break
        uptime = pod.number("uptimeSeconds", None)
        started = time.time() - uptime if status == RUNNING and uptime is not None else None
        machine = pod.child("machine")
        spot = pod.text("podType", "") == SPOT
        return Instance(provider=self.name, id=pod.ident("id"), status=status, provider_status=desired or "?",
                        gpu_name=machine.text("gpuDisplayName", "") if machine is not None else "",
                        num_gpus=int(pod.number("gpuCount")), price_per_hour=pod.number("costPerHr"),
                        label=pod.text("name", ""), image=pod.text("imageName", ""), started_at=started,
                        ssh=ssh if status == RUNNING else None, raw=pod.obj(),
                        storage_per_hour=pod.number("volumeInGb")
                        * STOPPED_VOLUME_USD_PER_GB_MONTH / HOURS_PER_MONTH,
                        interruptible=spot, bid=pod.number("costPerHr") if spot else None,
                        preempted=RECLAIMED if spot and reclaimed(desired, pod.text("lastStatusChange", "")) else "")

    # ---- changing -------------------------------------------------------------------------

    def create(self, offer_id: str, request: CreateRequest) -> Instance:
        """Deploy a pod of GPU type `offer_id`. The create is sent once; when its answer is
        lost or a server error (RunPod can answer 500 after making the pod), the pod is looked
        up by name (pods that had the name before do not count), and when none shows yet, the
        error is LostAnswer: it is never sent again (runtime/holds.py settles it)."""
        if request.onstart:
            raise ProviderError("RunPod: an onstart script is not supported (it would replace the "
                                "image's start script, which starts sshd)")
        listed = offer_gpus(offer_id)
        count = int(request.gpu_count)
        if listed and count not in (1, listed):
            raise NotFound(f"RunPod: offer '{offer_id}' is {listed} GPUs, not {count}")
        count = listed or count
        gpu, _, cloud = _OFFER_COUNT.sub("", offer_id).partition("@")
        if not gpu.strip() or cloud.upper() not in ("", "SECURE", "COMMUNITY", "ALL"):
            raise NotFound(f"RunPod: bad offer '{offer_id}' (a GPU type, optionally @SECURE or @COMMUNITY)")
        try:
            gpu = gpu_type_id(gpu)
        except UnknownGpu:
            pass  # an id outside the short list: the API judges it
        label = request.label or f"trainsh-{_random.token_hex(4)}"
        env = dict(request.env)
        public_key = request.public_key or local_public_key()
        if public_key:
            env["PUBLIC_KEY"] = public_key.strip()
        fields = {
            "name": label, "imageName": request.image, "gpuTypeId": gpu, "gpuCount": count,
            "cloudType": _Enum(cloud.upper() or "ALL"), "startSsh": True, "supportPublicIp": True,
            # (whole GBs, never fewer than asked)
            "containerDiskInGb": math.ceil(request.disk_gb), "volumeInGb": 0, "ports": "22/tcp",
            "env": [{"key": k, "value": str(v)} for k, v in env.items()],
        }
        mutation = "podFindAndDeployOnDemand"
        if request.interruptible:  # a spot pod (podRentInterruptable, with bidPerGpu)
            mutation = "podRentInterruptable"
            per_gpu = request.bid / count if request.bid is not None else \
                bid_with_margin(self._min_bid(gpu, count), self.name)
            if not 0 < per_gpu <= 1000:
                raise ProviderError(f"RunPod: a bid per GPU is more than $0 and at most $1000 an hour, not {per_gpu:g}")
            fields["bidPerGpu"] = round(per_gpu, 4)
        doc = f"mutation Deploy {{ {mutation}(input: {_input(fields)}) {{ {POD_FIELDS} }} }}"
        # Pods already named so are not ours: only a new one answers a failed create.
        before = set(request.existing) if request.existing or not request.label else \
            {i.id for i in self.find_by_label(label)}
        try:
            data = self.graphql(doc, retries=0)
        except ProviderError as e:
            if isinstance(e, NoCapacity):
                raise NoCapacity(f"RunPod: {offer_id}: {str(e).removeprefix('RunPod: ')}") from None
            # Unavailable (5xx, lost answer) or a server-side failure: the pod may exist.
            if isinstance(e, AuthError) or type(e) is ProviderError and not _maybe_made(e):
                raise
            try:
                made = [i for i in self._by_label(label) if i.id not in before]
            except Unavailable:
                made = []
            if made:
                return made[0]
            # Never sent again: a pod the list does not show yet would be paid twice.
            raise LostAnswer(f"{e} (a pod named '{label}' may have been made: see train runpod list)") from None
        # (read as a lost answer when its shape is wrong: the pod may have been made)
        pod = data.child(mutation)
        if pod is None or not pod.obj():
            raise NoCapacity(f"RunPod: no pod was made for {offer_id}")
        return self._instance(pod)

    def offer_gpus(self, offer_id: str) -> int | None:
        return offer_gpus(offer_id)

    def _min_bid(self, gpu: str, count: int) -> float:
        """The lowest bid per GPU a spot pod of this type takes now (`minimumBidPrice`)."""
        data = self.graphql(f"query GpuTypes {{ gpuTypes(input: {_input({'id': gpu})}) {{ id "
                            f"lowestPrice(input: {{gpuCount: {int(count)}}}) {{ minimumBidPrice }} }} }}")
        types = data.children("gpuTypes")
        lowest = types[0].child("lowestPrice") if types else None
        price = lowest.number("minimumBidPrice", None) if lowest is not None else None
        if not price:
            raise NoCapacity(f"RunPod: no spot {gpu} to be had now")
        return price

    def _by_label(self, label: str) -> list[Instance]:
        """Pods with this name, asked again for a few seconds while the API does not answer."""
        deadline = time.monotonic() + 5
        while True:
            try:
                return self.find_by_label(label)
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def start(self, instance_id: str) -> None:
        inst = self.get(instance_id)
        if inst.status in (RUNNING, STARTING):
            return
        count = inst.num_gpus or 1
        self._mutate(instance_id, f"podResume(input: {_input({'podId': instance_id, 'gpuCount': count})}) "
                                  "{ id desiredStatus }")

    def stop(self, instance_id: str) -> None:
        self._mutate(instance_id, f"podStop(input: {_input({'podId': instance_id})}) {{ id desiredStatus }}")

    def reboot(self, instance_id: str) -> None:
        """Stop, then resume (RunPod's GraphQL API has no restart); the disk stays."""
        self.stop(instance_id)
        self.start(instance_id)

    def destroy(self, instance_id: str) -> None:
        self.get(instance_id)  # NotFound for a pod that is not there before we ask
        try:
            self._mutate(instance_id, f"podTerminate(input: {_input({'podId': instance_id})})")
        except NotFound:
            return  # gone: a retried terminate whose first try had worked

    def self_stop(self, instance_id: str) -> tuple[str, str, dict, list[str]]:
        """How a pod stops itself (the autostop watcher): the request, and where the pod finds
        its own key. RunPod gives every pod `RUNPOD_POD_ID` and `RUNPOD_API_KEY`, a key "limited
        in scope to only the pod" (runpod/docs pods/references/environment-variables.mdx); the
        docs stop a pod from inside with `runpodctl stop pod $RUNPOD_POD_ID`, which sends
        `podStop(input: {podId})` (runpodctl api/pod.go)."""
        return self._self_request(instance_id, f"podStop(input: {_input({'podId': instance_id})}) "
                                               "{ id desiredStatus }")

    def self_destroy(self, instance_id: str) -> tuple[str, str, dict, list[str]]:
        """As `self_stop`, terminating it (`runpodctl remove pod $RUNPOD_POD_ID`: podTerminate)."""
        return self._self_request(instance_id, f"podTerminate(input: {_input({'podId': instance_id})})")

    def _self_request(self, instance_id: str, field: str) -> tuple[str, str, dict, list[str]]:
        _check_id(instance_id)
        return "POST", f"{self.base_url}/graphql", {"query": f"mutation {{ {field} }}"}, ["RUNPOD_API_KEY"]

    def _mutate(self, instance_id: str, field: str) -> Reply:
        _check_id(instance_id)
        try:
            return self.graphql(f"mutation {{ {field} }}")
        except (AuthError, NoCapacity, Unavailable):
            raise
        except ProviderError:
            self.get(instance_id)  # NotFound when that is why it failed
            raise

    # ---- account ssh keys (RunPod puts them in every pod that names none) ------------------

    def keys(self) -> list[dict]:
        """The account's ssh public keys: [{"id": "1", "key": "ssh-ed25519 ..."}] (RunPod keeps
        them as one text, a key a line; the id is the line number)."""
        myself = self.graphql("query User { myself { id pubKey } }").child("myself")
        text = myself.text("pubKey", "") if myself is not None else ""
        lines = [ln.strip() for ln in text.replace("\\n", "\n").splitlines() if ln.strip()]
        return [{"id": str(n), "key": ln} for n, ln in enumerate(lines, 1)]

    def add_key(self, public_key: str) -> None:
        """Add a public key to the account's (nothing if it is there already)."""
        public_key = public_key.strip()
        if len(public_key.split()) < 2 or "\n" in public_key:
            raise ProviderError("RunPod: not a public key (one line: TYPE KEY [COMMENT])")
        have = [k["key"] for k in self.keys()]
        if any(k.split()[:2] == public_key.split()[:2] for k in have):
            return
        text = "\n".join([*have, public_key])
        self.graphql(f"mutation {{ updateUserSettings(input: {_input({'pubKey': text})}) {{ id pubKey }} }}",
                     retries=1)

    # ---- ssh ------------------------------------------------------------------------------

    def ssh_spec(self, inst: Instance, key: str | None = None):
        """The ssh layer's spec (an SshSpec) for the pod. Pods come and go behind reused
        addresses and ports, so their host keys stay out of ~/.ssh/known_hosts: they go to
        trainsh's own known_hosts under the pod's name (HostKeyAlias runpod-ID), accepted on
        first use."""
        from trainsh.remote.sshspec import SshSpec
        from trainsh.settings import paths

        if inst.ssh is None:
            raise ProviderError(f"RunPod: pod {inst.id} has no public ssh port (status {inst.status})")
        known = str(paths.ensure(paths.home()) / "known_hosts")
        if " " in known:
            known = f'"{known}"'
        return SshSpec(inst.ssh.host, inst.ssh.user, inst.ssh.port, key, None,
                       (f"UserKnownHostsFile={known}", "StrictHostKeyChecking=accept-new",
                        f"HostKeyAlias={self.name}-{inst.id}"))

    def shell(self, instance_id: str, key: str | None = None):
        """An SshShell on a running pod (what a `runpod:ID` host resolves to); ProviderError
        naming its state when it is not running."""
        from trainsh.remote.shell import SshShell

        inst = self.get(instance_id)
        if inst.status != RUNNING or inst.ssh is None:
            hint = f" (train runpod start {inst.id})" if inst.status == STOPPED else ""
            raise ProviderError(f"RunPod: pod {inst.id} is {inst.status}, not running{hint}")
        return SshShell(self.ssh_spec(inst, key))


# An offer of more than one GPU names its count: "2x NVIDIA L40@SECURE", so that creating the
# offer a search listed rents what it listed, at its price.
_OFFER_COUNT = re.compile(r"^\s*([1-9][0-9]*)x\s+")


def offer_id(gpu_type_id: str, cloud: str, count: int = 1) -> str:
    return f"{count}x {gpu_type_id}@{cloud}" if count > 1 else f"{gpu_type_id}@{cloud}"


def offer_gpus(offer: str) -> int | None:
    """The GPU count an offer id names ("2x ..."), None when it names none."""
    m = _OFFER_COUNT.match(offer or "")
    return int(m.group(1)) if m else None


def _names_gpu(name: str, gpu_type: dict) -> bool:
    """Whether `name` (short name, id or display name, any case, `_` for a space) is this type."""
    want = name.replace("_", " ").strip().lower()
    short = {k.lower(): v.lower() for k, v in GPU_SHORT_NAMES.items()}
    ids = {str(gpu_type.get("id") or "").lower(), str(gpu_type.get("displayName") or "").lower()}
    return want in ids or short.get(name.lower()) in ids


def _operation(document: str) -> str:
    """A GraphQL document named for errors: its operation and first field ("query myself")."""
    op = "mutation" if document.lstrip().startswith("mutation") else "query"
    m = re.search(r"\{\s*(\w+)\s*(:\s*(\w+))?", document)
    return f"{op} {(m.group(3) or m.group(1)) if m else '?'}"


def _maybe_made(e: ProviderError) -> bool:
    """A create error after which the pod may exist all the same (a server-side failure)."""
    low = str(e).lower()
    return any(w in low for w in ("something went wrong", "internal", "timeout", "timed out", "try again later"))


def reclaimed(desired: str, last_change: str) -> bool:
    """A spot pod RunPod stopped: EXITED ("can be stopped at any time to free up resources",
    the REST Pod's `interruptible`) without a user's stop, whose `lastStatusChange` reads
    "... by User: DATE" as the docs' "Rented by User: ..." does."""
    return desired == "EXITED" and "by user" not in last_change.lower()


def _check_id(instance_id: str) -> None:
    """The last check of a pod id before it goes into a query (the CLI's arguments were checked
    the same way, trainsh/numbers.py; recipes and ow come here)."""
    from trainsh.numbers import pod_id

    try:
        pod_id(str(instance_id or ""))
    except ValueError as e:
        raise NotFound(f"RunPod: {e}") from None
