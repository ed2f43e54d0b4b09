"""A local fake of Vast.ai's REST API, with real machines: every running instance is a real sshd
on loopback. For tests, benchmarks and trying trainsh without an account.

It follows the real API closely enough that a client written against Vast's documentation (the
official `vastai` CLI included, pointed here with VAST_URL) works: the same paths under
/api/v0 (and /api/v1/instances/), methods, `owner=me`, Bearer auth refused as each endpoint
documents it (401; search 404; charges 403 without a key, 404 with a wrong one),
field names and units (gpu_ram and cpu_ram in MB, disk in GB, dph_total in $/h, start_date in
Unix seconds, extra_env as [key, value] pairs, ports as docker's "22/tcp" map) and replies with
Content-Type exactly `application/json`.

Strings in a search match exactly (gpu_name "RTX 4090": not "rtx 4090", not "RTX_4090"); a
field, operator or `type` the docs and the CLI do not know is 400 (search_error);
GET gpu_names/unique/ (no key needed) lists the names, as the official CLI reads them.

Money as Vast's reference has it: an instance's disk bills storage_cost ($/GB/month) x disk /
720 an hour from the rent on, running or stopped (storage_total_cost; dph_total = the offer's
price + it); GET charges/ gives each contract's total since the rent (GPU time + disk).

An ask once rented leaves the market (search no longer shows it, a second rent of it is 404
no_such_ask) until its instance is destroyed.

Instances: renting (PUT asks/OFFER/) or starting one starts a real sshd (root login with the
account's ssh keys and the keys attached to the instance) listening on two ports: the direct
one (`ports["22/tcp"]` on `public_ipaddr`) and the "proxy" one (`ssh_host:ssh_port`). It says
`loading` for --start-delay seconds, then `running`. Stop and destroy end the sshd and every
process of that machine. The sshd runs in a mount namespace of its own with a folder of the
machine at /workspace (the state's `workspace`), so machines never share files. Each login has CONTAINER_ID and CONTAINER_API_KEY, a key that may only
read, start, stop or destroy its own instance (Vast's docs: the instance key "can only start,
stop, or destroy that specific instance", vast-ai/docs api-reference/hello-world.mdx).

Faults, by flag or at run time with POST /_fake/control (JSON, no auth):
  no_capacity: bool        every rent answers 404 (no_such_ask)
  fail_after_create: int   the next N rents make the machine, then answer 500
  start_delay: float       seconds of `loading` before `running`
  down: bool               every API call answers 503
  no_direct: bool          new instances have no direct port (proxy only)
  ssh_delay: float         seconds between `running` (with its ports) and logins that work, as
                           a real container reports running before its sshd and keys are
                           ready: the first half nothing listens, the second sshd refuses
                           every key (none installed yet); 0 (the default): none
  rate_limits: bool        each endpoint's documented rate limit per key (RATE_LIMITS: search 10
                           a minute, show 2/s, list 1/s, manage 1/s, destroy 3/s, create 4.5/s);
                           above it 429 as each page documents it, no Retry-After, nothing done
Rents in flight (the cloud has acted; its answer is late, damaged or lost; see inflight.py):
  slow_create: float       a rent makes the machine at once, then holds its answer this long
  garble_create: str       the next rent(s) make the machine, then their answer is damaged:
                           "truncate" (Content-Length larger than the body sent, then the
                           connection closes), "badjson" (200, a body that is not JSON), "500"
                           (500 {"success": false, "error": "server_error", "msg": ...}), "drop"
                           (the connection closes with no answer); "" for none
  garble_count: int        how many rents garble_create damages (default 1; setting
                           garble_create alone sets it to 1; below 0: every rent until
                           garble_create is set to ""); once used up, garble_create is ""
  list_lag: float          a new instance shows in GET instances/ (v0 and v1, so in lookups by
                           label) only this many seconds after it was made; GET instances/ID/
                           shows it at once
  down_after_create: float after a rent, every other API call answers 503 for this many seconds
                           once its answer went out (and while it is held)
  strings: dict            text fields (gpu_name, geolocation, label, ssh_host ...) that every
                           offer and instance answers with, as given: a cloud whose words are
                           hostile (escape sequences, a shell command in a host name)
Every answer (see replies.py, shared with the RunPod fake): `delay` (seconds before each
answer), `trickle` (each answer a byte at a time, this many seconds apart), `retry_after`
(every call answers 429 with that Retry-After and does nothing), `bad_status` (a broken status
line), `garble_reply` ("truncate", "badjson", "drop" for every answer) and `wrong_shape`
({"path": "instances/", "reply": JSON}: that path below /api/v0 answers 200 with that JSON).
Interruptible rents (create_instance.yaml): a rent whose body has `price` (0.001..128 $/h, else
400 invalid_price) is on a bid: `is_bid` true, `dph_base` the bid, dph_total = bid + storage.
PUT instances/bid_price/ID/ {"client_id": "me", "price": P} (change_bid.yaml: 0.001..32, else
400 invalid_args; null: the offer's min_bid, vast-cli's "a winning bid price"; an on-demand
instance: 400 invalid_args, the fake's own choice) sets it; a higher bid than the one outbid
resumes the instance.
POST /_fake/preempt {"id": ID, "linger": SECONDS}: an interruptible instance is outbid: its sshd and processes
end, `actual_status` says "stopped" while `intended_status` stays "running" (vast-cli
vastai/SKILL.md: "When outbid, the instance moves to `stopped` (not destroyed)"; docs: paused
until its bid wins again); its disk bills on. With `linger`, the API says so at once and the
container goes that many seconds later (a host's shutdown that lags its report).
POST /_fake/crash {"id": ID, "status": "exited"|"unknown"|"offline", "msg": TEXT}: the
machine stops as a crashed container (its sshd and processes end) while the user's word stays
"running": `actual_status` says `status` (default "exited"), `status_msg` says `msg`. Vast's
docs: these "will never reach running" while the disk bills (api-reference/hello-world.mdx).
GET /_fake/state shows the live instances (`instances`, with sshd pids), the ids destroyed,
the rent count, `creating` (rents whose machine is made and whose answer has not gone out)
and `machines`: every instance ever made, id -> {"status": actual_status, "label",
"destroyed": bool, "listed": bool (shown by GET instances/ now)}.

Run alone: python tests/fakes/vast.py --port 8123 --api-key KEY   (until SIGTERM or Ctrl-C;
--port 0 picks one; the first line printed is the URL). Needs root and openssh-server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fakes import replies  # noqa: E402
from fakes.inflight import GARBLES, InFlight, garble_error  # noqa: E402
from sshd import free_port, in_machine, with_own_workspace  # noqa: E402

SSHD = "/usr/sbin/sshd"

MARKET = [
    # id, gpu, n, gpu_ram MB, cpu_ram MB, disk GB, $/h, where, reliability
    (1001, "RTX 3090", 1, 24576, 32000, 100, 0.22, "Poland, PL", 0.991),
    (1002, "RTX 4090", 1, 24564, 64000, 200, 0.35, "Sweden, SE", 0.995),
    (1003, "RTX 4090", 2, 24564, 128000, 400, 0.68, "Texas, US", 0.989),
    (1004, "A100 SXM4", 1, 81920, 128000, 500, 1.10, "Quebec, CA", 0.998),
    (1005, "H100 SXM", 8, 81559, 1031000, 2000, 19.20, "Virginia, US", 0.999),
    (1006, "RTX 4090", 4, 24564, 256000, 800, 1.45, "Germany, DE", 0.97),
    (1007, "RTX A6000", 1, 49140, 64000, 300, 0.45, "Ontario, CA", 0.993),
]


def market() -> list[dict]:
    now = time.time()
    offers = []
    for i, (oid, gpu, n, vram, ram, disk, dph, geo, rel) in enumerate(MARKET):
        offers.append({
            "id": oid, "ask_contract_id": oid, "bundle_id": oid, "machine_id": 500 + i, "host_id": 90 + i,
            "gpu_name": gpu, "num_gpus": n, "gpu_ram": vram, "gpu_total_ram": vram * n,
            "gpu_frac": 1.0, "cpu_ram": ram, "cpu_cores": 16 * n, "cpu_cores_effective": 8.0 * n,
            "cpu_ghz": 3.5, "cpu_name": "AMD EPYC 7543", "disk_space": disk, "disk_bw": 2000.0,
            "dph_total": dph, "dph_base": round(dph * 0.95, 4), "storage_cost": 0.1,
            "reliability": rel, "reliability2": rel, "inet_up": 800.0, "inet_down": 900.0,
            "geolocation": geo, "cuda_max_good": 12.4, "driver_version": "550.54.14",
            "pcie_bw": 24.5, "dlperf": 30.0 * n, "dlperf_per_dphtotal": 30.0 * n / dph,
            "score": 100.0 * rel / dph, "verification": "verified", "verified": True,
            "external": False, "rentable": True, "rented": False, "static_ip": True,
            "direct_port_count": 20, "duration": 30 * 86400.0, "start_date": now - 86400,
            "end_date": now + 30 * 86400, "public_ipaddr": "127.0.0.1", "is_bid": False,
            "min_bid": round(dph * 0.5, 4), "compute_cap": 860, "total_flops": 80.0 * n,
        })
    return offers


def _matches(value, op: str, want) -> bool:
    if isinstance(value, bool) or isinstance(want, bool):
        return {"eq": value == want, "neq": value != want}.get(op, True)
    if isinstance(value, (int, float)):
        try:
            want = [float(w) for w in want] if isinstance(want, list) else float(want)
        except (TypeError, ValueError):
            return False
    if op == "eq":  # strings exactly: no case folding, "_" is not " " (see search())
        return value == want
    if op == "neq":
        return value != want
    if op in ("in", "notin"):
        found = value in (want if isinstance(want, list) else [want])
        return found if op == "in" else not found
    try:
        return {"gt": value > want, "gte": value >= want, "lt": value < want, "lte": value <= want}[op]
    except (KeyError, TypeError):
        return True


# The fields a search may filter on: search_offers.yaml's request properties (vast-ai/docs
# api-reference/openapi/yaml) and the official CLI's `offers_fields` (vast-cli vastai/api/query.py)
SEARCH_FIELDS = {
    "bw_nvlink", "cluster_id", "compute_cap", "cpu_arch", "cpu_cores", "cpu_cores_effective", "cpu_ghz",
    "cpu_ram", "cuda_max_good", "datacenter", "direct_port_count", "disk_bw", "disk_space", "dlperf",
    "dlperf_per_dphtotal", "dph_total", "driver_version", "duration", "external", "flops_per_dphtotal",
    "geolocation", "gpu_arch", "gpu_display_active", "gpu_frac", "gpu_max_power", "gpu_max_temp",
    "gpu_mem_bw", "gpu_name", "gpu_ram", "gpu_total_ram", "has_avx", "host_id", "id", "inet_down",
    "inet_down_cost", "inet_up", "inet_up_cost", "machine_id", "min_bid", "mobo_name", "num_gpus",
    "os_version", "pci_gen", "pcie_bw", "reliability", "rentable", "rented", "static_ip", "storage_cost",
    "total_flops", "ubuntu_version", "verification", "verified", "vms_enabled",
}
SEARCH_KEYS = {"order", "limit", "type", "allocated_storage", "disable_bundling"}  # not filters
SEARCH_OPS = {"eq", "neq", "gt", "lt", "gte", "lte", "in", "notin"}  # search_offers.yaml's table
# `type`: the docs' enum (ondemand, bid, reserved) and what the CLI sends ("on-demand" by default)
SEARCH_TYPES = {"ondemand", "on-demand", "bid", "reserved"}


def search_error(q) -> str:
    """Why Vast would answer this query 400 (search_offers.yaml: "Bad request - invalid query
    parameters"), or "": a field it does not know, an operator not in its table, a `type`
    not in its enum, a filter that is not an {operator: value} object."""
    if not isinstance(q, dict):
        return "Invalid json body"
    for field, cond in q.items():
        if field in SEARCH_KEYS:
            continue
        if field not in SEARCH_FIELDS:
            return f"unknown search field: {field}"
        if not isinstance(cond, dict) or not cond:
            return f"{field}: a filter is an object of operator: value"
        bad = sorted(set(cond) - SEARCH_OPS)
        if bad:
            return f"{field}: unknown operator {bad[0]}"
    if "type" in q and q["type"] not in SEARCH_TYPES:
        return f"type: must be one of ondemand, bid, reserved, not {q['type']!r}"
    return ""


def search(q: dict, taken=()) -> list[dict]:
    """Offers matching Vast's query form (checked first by `search_error`). A string matches
    only exactly, gpu_name included ("RTX 4090", not "rtx 4090" nor "RTX_4090"): the official
    CLI turns `_` into a space and the case is never documented as folded (its own `run
    benchmarks` fixes the case itself), so a client must send the canonical name, as
    `GET gpu_names/unique/` lists them. Asks in `taken` (rented) are off the market."""
    offers = [o for o in market() if o["id"] not in taken]
    for field, cond in q.items():
        if field in SEARCH_KEYS:
            continue
        offers = [o for o in offers if field not in o or all(_matches(o[field], op, w) for op, w in cond.items())]
    for field, direction in reversed(q.get("order") or [["score", "desc"]]):
        offers.sort(key=lambda o: (o.get(field) is None, o.get(field) or 0), reverse=direction == "desc")
    return offers[: int(q.get("limit") or 64)]


def refused_key(route: str, missing: bool) -> tuple[int, dict]:
    """A missing or wrong key as each endpoint's reference documents it (vast-ai/docs
    api-reference/openapi/yaml): search 404 "Unauthorized - invalid or missing API key"
    (search_offers.yaml); charges 403 "This action requires login." without an Authorization
    header and 404 "Invalid user key" for a key that matches no user (show_charges.yaml); the
    others 401 (show_instance, show_instances, manage_instance, create_instance, ssh keys ...)."""
    if route in ("/bundles/", "/search/asks/"):
        return 404, {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    if route == "/charges/":
        if missing:
            return 403, {"success": False, "error": "auth_error", "msg": "This action requires login."}
        return 404, {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    if missing:
        return 401, {"success": False, "error": "auth_error", "msg": "Authorization header missing"}
    return 401, {"success": False, "error": "auth_error", "msg": "Invalid user key"}


class Machine:
    def __init__(self, fake: Fake, iid: int, offer: dict, body: dict):
        self.fake, self.id, self.offer = fake, iid, offer
        self.label = body.get("label") or None
        self.image = body.get("image") or "vastai/base-image"
        self.disk = float(body.get("disk") or 10)
        self.env = create_env(body.get("env"))
        self.onstart = body.get("onstart")
        self.runtype = body.get("runtype") or "ssh"
        self.bid: float | None = body.get("price")  # a rent with a price is interruptible
        self.outbid_at: float | None = None  # the bid that lost, while outbid
        self.created = time.time()
        self.listed_at = time.monotonic() + fake.list_lag  # the provider's list lags behind
        self.destroyed = False
        self.intended, self.actual, self.cur = "running", None, "running"
        self.running_since: float | None = None
        self.status_msg: str | None = None  # a crash's ("" for null); else "fake: <actual_status>"
        self.gpu_seconds = 0.0  # time it ran before the current run, for its charges
        self.gen = 0
        self.keys: list[str] = []
        self.scoped_key = secrets.token_hex(32)
        self.dir = fake.base / f"i{iid}"
        self.home, self.tmux = self.dir / "root", self.dir / "tmux"
        self.workspace = self.dir / "workspace"  # the machine's /workspace (sshd.with_own_workspace)
        for d in (self.home, self.tmux, self.workspace):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tmux, 0o1777)
        # as Vast's images do: an interactive login lands in tmux unless ~/.no_auto_tmux exists
        (self.home / ".bashrc").write_text(
            '[ -n "$SSH_TTY" ] && [ -z "$TMUX" ] && [ ! -e ~/.no_auto_tmux ] && '
            'command -v tmux >/dev/null && exec tmux new-session -A -s ssh_tmux\n')
        (self.home / ".profile").write_text('[ -n "$BASH_VERSION" ] && [ -f ~/.bashrc ] && . ~/.bashrc\n')
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "host")], check=True)
        self.direct_port = None if fake.no_direct else free_port()
        self.proxy_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.keys_ready = True  # False in the second half of ssh_delay: sshd up, no keys yet
        self.marker = f"{fake.base}/{iid}"

    # -- the machine --------------------------------------------------------------------------

    def write_keys(self) -> None:
        keys = [k["key"] for k in self.fake.account_keys] + self.keys if self.keys_ready else []
        (self.dir / "authorized_keys").write_text("".join(k.strip() + "\n" for k in keys))

    def start_sshd(self) -> None:
        """Listen on both ports; a port another program took meanwhile means new ports (a real
        machine's ports may change on a restart too)."""
        for _ in range(3):
            if self._try_sshd():
                return
            self.halt()
            self.direct_port = None if self.direct_port is None else free_port()
            self.proxy_port = free_port()
        raise RuntimeError(f"fake machine {self.id}: sshd would not start (see {self.dir}/sshd.log)")

    def _try_sshd(self) -> bool:
        self.write_keys()
        env = {"HOME": str(self.home), "TMUX_TMPDIR": str(self.tmux), "CONTAINER_ID": str(self.id),
               "CONTAINER_API_KEY": self.scoped_key, "VAST_CONTAINERLABEL": f"C.{self.id}",
               "PUBLIC_IPADDR": "127.0.0.1", "VAST_FAKE_MACHINE": self.marker, **self.env}
        if self.direct_port:
            env["VAST_TCP_PORT_22"] = str(self.direct_port)
        self.machine_env = env
        ports = [p for p in (self.direct_port, self.proxy_port) if p]
        setenv = " ".join(f"{k}={v}" for k, v in env.items() if re.fullmatch(r'[^\s"]*', v))
        cfg = self.dir / "sshd_config"
        cfg.write_text("".join(f"Port {p}\n" for p in ports) + f"""ListenAddress 127.0.0.1
HostKey {self.dir}/host
PidFile none
AuthorizedKeysFile {self.dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv {setenv}
Subsystem sftp /usr/lib/openssh/sftp-server
""")
        argv = [SSHD, "-D", "-f", str(cfg), "-E", str(self.dir / "sshd.log")]
        self.proc = subprocess.Popen(with_own_workspace(argv, self.workspace),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        for port in ports:
            while True:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    return False
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.02)
        return True

    def halt(self) -> None:
        """Everything of this machine ends, as when a container stops: its sshd, the sessions it
        serves, and every process started in them (tmux servers included)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        children = [pid for pid in _pids() if _ppid(pid) == proc.pid]
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in children + _marked(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def boot(self, delay: float) -> None:
        """`loading` for `delay` seconds, then a working sshd and `running`."""
        self.gen += 1
        gen = self.gen
        self.actual, self.status_msg = "loading", None
        self.end_run()

        def later():
            time.sleep(delay)
            gap = self.fake.ssh_delay
            if gap > 0:  # `running` (ports shown) first; then sshd without keys; then the keys
                with self.fake.lock:
                    if gen != self.gen or self.intended != "running":
                        return
                    self.actual, self.running_since = "running", time.time()
                time.sleep(gap / 2)
            with self.fake.lock:
                if gen != self.gen or self.intended != "running":
                    return
                self.keys_ready = gap <= 0
                self.start_sshd()
                self.actual, self.running_since = "running", self.running_since or time.time()
            if gap > 0:
                time.sleep(gap / 2)
            with self.fake.lock:
                if gen != self.gen or self.intended != "running":
                    return
                if not self.keys_ready:
                    self.keys_ready = True
                    self.write_keys()
                if self.onstart:  # as a container runs it at every start, in the background
                    with open(self.dir / "onstart.log", "ab") as log:
                        subprocess.Popen(in_machine(self.proc.pid, ["bash", "-c", self.onstart]), cwd=self.home, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True,
                                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                              **self.machine_env})

        threading.Thread(target=later, daemon=True).start()

    def end_run(self) -> None:
        if self.running_since:
            self.gpu_seconds += time.time() - self.running_since
        self.running_since = None

    # -- as the API shows it ------------------------------------------------------------------

    def storage_per_hour(self) -> float:
        """The disk's $/h, running or stopped: storage_cost ($/GB/month) x disk / 720, as the
        examples of Vast's reference have it (show_instance.yaml: 0.149333 x 10 / 720 =
        storage_total_cost 0.0020741; dph_total = dph_base + storage_total_cost)."""
        return self.offer["storage_cost"] * self.disk / 720

    def charges(self, now: float) -> dict:
        """This contract's entry of GET charges/ (show_charges.yaml): GPU time at dph_base,
        the disk for every hour since the rent, amounts rounded to 3 decimals."""
        ran = self.gpu_seconds + (now - self.running_since if self.running_since else 0.0)
        gpu = ran / 3600 * self.gpu_price()
        disk = (now - self.created) / 3600 * self.storage_per_hour()
        items = [{"start": int(self.created), "end": int(now), "type": kind, "source": None,
                  "description": what, "amount": round(amount, 3), "metadata": {}, "items": []}
                 for kind, what, amount in (("gpu", f"{ran / 3600:.3f} hours at ${self.offer['dph_total']}/hour",
                                             gpu), ("disk", f"{self.disk:g} GB of disk", disk))]
        return {"start": int(self.created), "end": int(now), "type": "instance", "source": f"instance-{self.id}",
                "description": f"Instance {self.id} Charges", "amount": round(gpu + disk, 3),
                "metadata": {"label": self.label} if self.label else {}, "items": items}

    def gpu_price(self) -> float:
        return self.bid if self.bid is not None else self.offer["dph_total"]

    def row(self) -> dict:
        o = self.offer
        now = time.time()
        running = self.actual == "running"
        row = {k: o[k] for k in ("machine_id", "host_id", "bundle_id", "gpu_name", "num_gpus", "gpu_ram",
                                 "gpu_total_ram", "cpu_ram", "cpu_cores",
                                 "cpu_cores_effective", "cpu_name", "dph_base", "storage_cost",
                                 "reliability2", "inet_up", "inet_down", "geolocation", "cuda_max_good",
                                 "driver_version", "pcie_bw", "dlperf", "verification")}
        row.update({
            "id": self.id, "actual_status": self.actual, "intended_status": self.intended,
            "cur_state": self.cur, "next_state": self.cur, "label": self.label,
            "image_uuid": self.image, "image_args": [], "image_runtype": self.runtype,
            "extra_env": [[k, v] for k, v in self.env.items()], "onstart": self.onstart,
            "status_msg": (f"fake: {self.actual}" if self.status_msg is None
                           else self.status_msg or None), "template_id": None, "template_hash_id": None,
            "ssh_host": "127.0.0.1", "ssh_idx": str(self.id % 10), "ssh_port": self.proxy_port,
            "machine_dir_ssh_port": self.proxy_port, "start_date": self.created,
            "end_date": self.created + o["duration"], "duration": now - self.created,
            "uptime_mins": (now - self.running_since) / 60 if running and self.running_since else None,
            "gpu_totalram": o["gpu_ram"], "gpu_util": 0.0 if running else None, "gpu_temp": None,
            "gpu_frac": 1.0, "cpu_util": 0.0, "mem_usage": None, "mem_limit": None,
            "disk_space": self.disk, "disk_usage": 0.1, "disk_util": 0.0,
            "dph_total": self.gpu_price() + self.storage_per_hour(), "is_bid": self.bid is not None,
            "min_bid": o["min_bid"],
            "storage_total_cost": self.storage_per_hour(),
            "instance": {"gpuCostPerHour": self.gpu_price() if running else 0, "diskHour": self.storage_per_hour(),
                         "totalHour": (self.gpu_price() if running else 0) + self.storage_per_hour(),
                         "discountTotalHour": 0,
                         "discountedTotalPerHour": (self.gpu_price() if running else 0) + self.storage_per_hour()},
            "public_ipaddr": "127.0.0.1" if self.direct_port else None,
            "direct_port_count": 20 if self.direct_port else 0, "static_ip": bool(self.direct_port),
            "ports": ({"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(self.direct_port)}]}
                      if self.direct_port and running else {}),
            "local_ipaddrs": "127.0.0.1\n", "jupyter_token": "", "logo": "/static/logos/vastai_small2.png",
            "rentable": True, "compute_cap": o["compute_cap"], "client_run_time": 1.0, "host_run_time": 1.0,
        })
        if self.bid is not None:
            row["dph_base"] = self.bid
        return row


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _marked(marker: str) -> list[int]:
    """Processes of one fake machine (they carry VAST_FAKE_MACHINE=marker)."""
    needle = f"VAST_FAKE_MACHINE={marker}\0".encode()
    out = []
    for pid in _pids():
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


# What a create may carry (vast-ai/docs api-reference/openapi/yaml/create_instance.yaml,
# `x-input-validation`; `runtype` is its enum plus the spellings the official clients send:
# vast-cli sends "ssh_direc ssh_proxy" for --ssh --direct, "jupyter_direc ..." for --jupyter).
CREATE_LIMITS = {"image": 1024, "label": 256, "env_item": 256, "env_total": 32768, "args": 4096}
RUNTYPE_WORDS = {"ssh", "jupyter", "args", "ssh_proxy", "ssh_direct", "ssh_direc", "jupyter_proxy",
                 "jupyter_direct", "jupyter_direc"}


def create_env(env) -> dict[str, str]:
    """A create's `env`: the documented string of Docker flags (`-e K=V -p 8000:8000`), or the
    object the official CLI sends (its parse_env: {"K": "V", "-p 8000:8000": "1"}). Ports are
    not variables."""
    if isinstance(env, str):
        import shlex

        words, out = shlex.split(env), {}
        for flag, value in zip(words, words[1:]):
            if flag == "-e" and "=" in value:
                k, _, v = value.partition("=")
                out[k] = v
        return out
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items() if not str(k).startswith("-")}
    return {}


def create_problem(body: dict) -> str | None:
    """What makes a create's body invalid by the documented validation, or None."""
    price = body.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (int, float))
                              or not 0.001 <= price <= 128.0):
        return "invalid_price: 'price' (a bid, $/h) must be a number from 0.001 to 128"
    for field in ("image", "label"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            return f"'{field}' must be a string"
        if isinstance(value, str) and len(value) > CREATE_LIMITS[field]:
            return f"'{field}' is longer than {CREATE_LIMITS[field]} characters"
    env = body.get("env")
    if env is not None and not isinstance(env, (str, dict)):
        return "'env' must be a string of Docker flags (or an object)"
    items = ([f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else
             [w for w in (env or "").split()])
    if any(len(i) > CREATE_LIMITS["env_item"] for i in items):
        return f"an 'env' entry is longer than {CREATE_LIMITS['env_item']} characters"
    if sum(len(i) for i in items) > CREATE_LIMITS["env_total"]:
        return f"'env' is longer than {CREATE_LIMITS['env_total']} characters in all"
    args = body.get("args") or []
    size = sum(len(str(a)) for a in (args if isinstance(args, list) else [args]))
    size += len(str(body.get("args_str") or "")) + len(str(body.get("onstart") or ""))
    if size > CREATE_LIMITS["args"]:
        return f"args, args_str and onstart are longer than {CREATE_LIMITS['args']} characters together"
    runtype = body.get("runtype")
    if runtype is not None and (not isinstance(runtype, str) or not runtype.split()
                                or not set(runtype.split()) <= RUNTYPE_WORDS):
        return f"'runtype' {runtype!r} is not one of {', '.join(sorted(RUNTYPE_WORDS))}"
    disk = body.get("disk")
    if disk is not None and (not isinstance(disk, (int, float)) or disk < 8):
        return "'disk' must be at least 8 (GB)"
    return None


FAULTS = ("no_capacity", "fail_after_create", "start_delay", "down", "no_direct", "slow_create",
          "garble_create", "garble_count", "list_lag", "down_after_create", "strings", "rate_limits", "ssh_delay")

# Each endpoint's rate limit, from the `x-rate-limit` of its reference page (vast-ai/docs
# api-reference/openapi/yaml): (threshold, per). "Enforced as a minimum interval between requests
# for a given endpoint and identity" (api-reference/rate-limits-and-errors.mdx); a threshold
# "per: request" is read as that many requests a second (an interval of 1/threshold s), search's
# "10 per minute" as at most 10 calls in any 60 s.
RATE_LIMITS = {
    "search": (10, "minute"),             # search_offers.yaml
    "show_instance": (2.0, "request"),    # show_instance.yaml
    "show_instances": (1.0, "request"),   # show_instances.yaml
    "manage_instance": (1.0, "request"),  # manage_instance.yaml (start, stop, label)
    "destroy_instance": (3.0, "request"),  # destroy_instance.yaml
    "create_instance": (4.5, "request"),  # create_instance.yaml
    "reboot_instance": (1.0, "request"),  # reboot_instance.yaml
    "show_charges": (1.0, "request"),     # show_charges.yaml
}


def endpoint(method: str, version: str, route: str) -> str | None:
    """Which reference page (and so which rate limit) a call falls under."""
    if route in ("/bundles/", "/search/asks/"):
        return "search"
    if route == "/instances/" and method == "GET":
        return "show_instances"
    if route == "/charges/" and method == "GET":
        return "show_charges"
    if re.fullmatch(r"/asks/\d+/", route) and method == "PUT":
        return "create_instance"
    if re.fullmatch(r"/instances/reboot/\d+/", route) and method == "PUT":
        return "reboot_instance"
    if re.fullmatch(r"/instances/\d+/", route):
        return {"GET": "show_instance", "PUT": "manage_instance", "DELETE": "destroy_instance"}.get(method)
    return None


def too_frequent(name: str) -> tuple[int, object]:
    """The 429 each page documents: create `{"detail": ...}` (create_instance.yaml), destroy
    `{"success": false, "error": "rate_limit_exceeded", "msg": ...}` (destroy_instance.yaml),
    the others the plain text rate-limits-and-errors.mdx quotes. Never a Retry-After: "The API
    does not currently set standard rate-limit headers"."""
    threshold = RATE_LIMITS[name][0]
    if name == "create_instance":
        return 429, {"detail": f"API requests too frequent endpoint threshold={threshold}"}
    if name == "destroy_instance":
        return 429, {"success": False, "error": "rate_limit_exceeded",
                     "msg": f"API requests too frequent endpoint threshold={threshold}"}
    return 429, f"API requests too frequent: endpoint threshold={threshold}".encode()


class Fake:
    def __init__(self, api_key: str, base: Path, *, start_delay: float = 0.3, no_capacity: bool = False,
                 fail_after_create: int = 0, down: bool = False, no_direct: bool = False,
                 slow_create: float = 0.0, garble_create: str = "", garble_count: int = 1,
                 list_lag: float = 0.0, down_after_create: float = 0.0, rate_limits: bool = False,
                 reply_faults: dict | None = None, ssh_delay: float = 0.0):
        self.api_key, self.base = api_key, base
        self.replies = {**replies.OFF, **replies.checked(reply_faults or {})}  # every answer's faults
        self.start_delay, self.no_capacity, self.down = start_delay, no_capacity, down
        self.fail_after_create, self.no_direct = fail_after_create, no_direct
        self.slow_create, self.garble_create, self.garble_count = slow_create, garble_create or "", garble_count
        self.list_lag, self.down_after_create = list_lag, down_after_create
        self.rate_limits = rate_limits  # each endpoint's documented rate limit, enforced
        self.calls: dict[tuple[str, str], list[float]] = {}  # (key, endpoint) -> recent calls
        self.strings: dict = {}  # text fields every offer and instance answers with (see docstring)
        self.ssh_delay = float(ssh_delay)  # seconds from `running` to logins that work
        self.inflight = InFlight()
        self.lock = threading.RLock()
        self.instances: dict[int, Machine] = {}
        self.made: dict[int, Machine] = {}  # every instance ever made, destroyed ones too
        self.destroyed: list[int] = []
        self.ended: dict[int, dict] = {}  # destroyed instances' charges
        self.account_keys: list[dict] = []
        self.rents = 0
        self.taken: dict[int, int] = {}  # offer id -> the live instance that rented it
        self.next_id = 7000001
        self.next_key = 1

    # -- requests -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, auth: str, body) -> tuple[int, object]:
        if path.startswith("/_fake/"):
            return self.control(method, path, body)
        if self.down or self.inflight.down():
            return 503, {"success": False, "error": "service_unavailable", "msg": "fake: the API is down"}
        if method == "GET" and path.rstrip("/") == "/api/v0/gpu_names/unique":
            # the canonical GPU names; the official CLI reads them without a key
            return 200, {"gpu_names": sorted({o["gpu_name"] for o in market()})}
        token = auth[7:] if auth.startswith("Bearer ") else None
        m = re.fullmatch(r"/api/v(\d+)(/.*?)/?", path)
        route = m.group(2).rstrip("/") + "/" if m else ""
        if token is None or not token:
            return refused_key(route, missing=True)
        if not m:
            return 404, {"success": False, "error": "not_found", "msg": f"no such endpoint {path}"}
        version = m.group(1)
        with self.lock:
            if token != self.api_key:
                scoped = next((i for i in self.instances.values() if i.scoped_key == token), None)
                allowed = (scoped is not None and version == "0"
                           and route == f"/instances/{scoped.id}/" and method in ("GET", "PUT", "DELETE"))
                if not allowed:
                    return refused_key(route, missing=False)
                if method == "PUT" and set((body or {})) - {"state"}:
                    return 401, {"success": False, "error": "auth_error", "msg": "key not allowed"}
            name = endpoint(method, version, route) if self.rate_limits else None
            if name and self.limited(token, name):
                return too_frequent(name)
            return self.route(method, version, route, query, body or {})

    def limited(self, token: str, name: str) -> bool:
        """Whether this call breaks its endpoint's limit for this key (counted when it does not:
        a refused call is not a request served)."""
        threshold, per = RATE_LIMITS[name]
        now = time.monotonic()
        calls = self.calls.setdefault((token, name), [])
        if per == "minute":
            calls[:] = [t for t in calls if now - t < 60]
            if len(calls) >= threshold:
                return True
        elif calls and now - calls[-1] < 1 / threshold:
            return True
        calls.append(now)
        del calls[:-int(threshold) - 1]
        return False

    def route(self, method: str, version: str, route: str, query: dict, body: dict) -> tuple[int, object]:
        answer = self._route(method, version, route, query, body)  # (code, reply[, a rent's plan])
        reply = answer[1]
        if self.strings and isinstance(reply, dict):  # a cloud whose words are hostile
            for k in ("offers", "instances"):
                rows = reply.get(k)
                for row in (rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []):
                    row.update({f: v for f, v in self.strings.items() if f in row})
        return answer

    def _route(self, method: str, version: str, route: str, query: dict, body: dict) -> tuple[int, object]:
        if version == "1" and route == "/instances/" and method == "GET":
            rows = [i.row() for i in self.listed()]
            return 200, {"instances": rows, "next_token": None, "total_instances": len(rows)}
        if version != "0":
            return 404, {"success": False, "error": "not_found", "msg": "no such endpoint"}
        if route in ("/bundles/", "/search/asks/") and method in ("POST", "PUT", "GET"):
            q = body.get("q") if isinstance(body, dict) and isinstance(body.get("q"), dict) else body
            if method == "GET":
                try:
                    q = json.loads(query.get("q", ["{}"])[0])
                except ValueError:
                    q = None
            why = search_error(q)
            if why:  # the documented 400 of search_offers.yaml
                return 400, {"success": False, "error": "invalid_request", "msg": why}
            return 200, {"offers": search(q, self.taken)}
        if route == "/instances/" and method == "GET":
            return 200, {"instances": [i.row() for i in self.listed()]}
        if route == "/charges/" and method == "GET":
            return self.charges(query)
        if route == "/instances/filters/" and method == "GET":
            return 200, {"filters": []}
        if route == "/users/current/" and method == "GET":
            return 200, {"id": 1, "username": "fake", "email": "fake@example.invalid", "credit": 100.0,
                         "balance": 0.0, "can_pay": True, "ssh_key": ""}
        if route == "/ssh/":
            if method == "GET":  # documented: a bare list, and 404 when the account has no key
                if not self.account_keys:
                    return 404, {"success": False, "error": "not_found", "msg": "No SSH keys found for the user."}
                return 200, [dict(k) for k in self.account_keys]
            if method == "POST":
                return self.add_account_key(str(body.get("ssh_key") or ""))
        if (m := re.fullmatch(r"/ssh/(\d+)/", route)) and method == "DELETE":
            before = len(self.account_keys)
            self.account_keys = [k for k in self.account_keys if k["id"] != int(m.group(1))]
            return (200, {"success": True}) if len(self.account_keys) < before else \
                (404, {"success": False, "error": "not_found", "msg": "no such ssh key"})
        if (m := re.fullmatch(r"/instances/bid_price/(\d+)/", route)) and method == "PUT":
            return self.change_bid(int(m.group(1)), body)
        if (m := re.fullmatch(r"/asks/(\d+)/", route)) and method == "PUT":
            return self.rent(int(m.group(1)), body)
        if m := re.fullmatch(r"/instances/(?:reboot/)?(\d+)/(ssh/)?", route):
            inst = self.instances.get(int(m.group(1)))
            if inst is None:  # each as Vast's API reference documents it
                if method == "GET" and not m.group(2) and "reboot" not in route:
                    return 200, {"instances": None}
                if method == "DELETE" and not m.group(2):
                    return 404, {"success": False, "error": "not_found", "msg": "Instance not found"}
                if "reboot" in route:  # reboot_instance.yaml: 400 invalid_args
                    return 400, {"success": False, "error": "invalid_args",
                                 "msg": f"Instance {m.group(1)} not found."}
                return 404, {"success": False, "error": "no_such_instance",
                             "msg": f"Instance {m.group(1)} not found."}
            if "reboot" in route and method == "PUT":
                inst.halt()
                inst.actual = "rebooting"
                inst.boot(self.start_delay)
                return 200, {"success": True}
            if m.group(2):
                if method == "POST":
                    key = str(body.get("ssh_key") or "").strip()
                    if not _pubkey(key):
                        return 400, {"success": False, "error": "invalid_args", "msg": "not an ssh public key"}
                    if key not in inst.keys:
                        inst.keys.append(key)
                        inst.write_keys()
                    return 200, {"success": True, "msg": "ssh key attached"}
                if method == "GET":
                    keys = [{"id": n, "name": "", "public_key": k} for n, k in enumerate(inst.keys, 1)]
                    return 200, {"success": True, "ssh_keys": json.dumps(keys)}
            elif method == "GET":
                return 200, {"instances": inst.row()}
            elif method == "PUT":
                return self.change(inst, body)
            elif method == "DELETE":
                inst.intended = inst.cur = "stopped"
                inst.gen += 1
                inst.halt()
                del self.instances[inst.id]
                self.taken = {o: i for o, i in self.taken.items() if i != inst.id}  # back on the market
                inst.end_run()
                self.ended[inst.id] = inst.charges(time.time())
                inst.destroyed = True
                self.destroyed.append(inst.id)
                shutil.rmtree(inst.dir, ignore_errors=True)
                return 200, {"success": True}
        return 404, {"success": False, "error": "not_found", "msg": f"no such endpoint {method} {route}"}

    def charges(self, query: dict) -> tuple[int, object]:
        """GET charges/ as show_charges.yaml documents it: select_filters (JSON) must give
        `day` gte and lte (Unix seconds); `type` {"in": [...]} narrows; one page, newest first."""
        try:
            filters = json.loads((query.get("select_filters") or ["{}"])[0])
            day = filters.get("day") or {}
            low, high = float(day["gte"]), float(day["lte"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, {"success": False,
                         "msg": "Must provide both 'day' gte and lte filters for instance charges"}
        kinds = (filters.get("type") or {}).get("in") or ["instance", "volume", "serverless"]
        now = time.time()
        rows = [i.charges(now) for i in self.instances.values()] + list(self.ended.values())
        rows = [r for r in rows if "instance" in kinds and r["start"] <= high and r["end"] >= low]
        rows.sort(key=lambda r: r["start"], reverse=True)
        limit = int((query.get("limit") or ["100"])[0])
        return 200, {"success": True, "count": min(len(rows), limit), "total": len(rows),
                     "next_token": None, "results": rows[:limit]}

    def listed(self) -> list[Machine]:
        """The instances GET instances/ shows now: made at least list_lag seconds ago."""
        now = time.monotonic()
        return [i for i in self.instances.values() if i.listed_at <= now]

    def add_account_key(self, key: str) -> tuple[int, object]:
        key = key.strip()
        if not key:
            return 400, {"success": False, "error": "no_ssh_key", "msg": "No ssh key provided"}
        if not _pubkey(key):
            return 400, {"success": False, "error": "invalid_args", "msg": "not an ssh public key"}
        entry = {"id": self.next_key, "user_id": 1, "key": key,
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "deleted_at": None}
        self.next_key += 1
        self.account_keys.append(entry)
        for inst in self.instances.values():  # as the docs say: added to every current instance
            inst.write_keys()
        return 200, {"success": True, "key": {**{k: v for k, v in entry.items() if k != "key"},
                                              "public_key": key}}

    def rent(self, offer_id: int, body: dict) -> tuple:
        wrong = create_problem(body)
        if wrong:  # checked before the ask is looked at, as a validation error is
            return 400, {"success": False, "error": "invalid_price" if wrong.startswith("invalid_price")
                         else "invalid_args", "ask_id": offer_id, "msg": f"error 400: Invalid args: {wrong}"}
        offer = next((o for o in market() if o["id"] == offer_id), None)
        # the documented 404 of PUT asks/ID/ (a rented ask is gone too)
        if offer is None or self.no_capacity or offer_id in self.taken:
            return 404, {"success": False, "error": "invalid_args", "ask_id": offer_id,
                         "msg": f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available."}
        if not body.get("image"):
            return 400, {"success": False, "error": "invalid_args", "msg": "image is required"}
        iid = self.next_id
        self.next_id += 1
        inst = Machine(self, iid, offer, body)
        self.instances[iid] = self.made[iid] = inst
        self.taken[offer_id] = iid
        self.rents += 1
        inst.boot(self.start_delay)
        garble = ""
        if self.garble_create and self.garble_count != 0:
            garble = self.garble_create
            if self.garble_count > 0:
                self.garble_count -= 1
                if self.garble_count == 0:
                    self.garble_create, self.garble_count = "", 1
        # from here until the answer has gone out, the rent counts in `creating` (inflight.py)
        plan = self.inflight.made(self.slow_create, garble, self.down_after_create)
        if self.fail_after_create > 0 or garble == "500":
            if garble != "500":
                self.fail_after_create -= 1
            return 500, {"success": False, "error": "server_error", "msg": "fake: failed after creating"}, plan
        # hello-world.mdx: the reply carries the key the container gets as CONTAINER_API_KEY
        return 200, {"success": True, "new_contract": iid,
                     "instance_api_key": inst.scoped_key}, plan

    def change(self, inst: Machine, body: dict) -> tuple[int, object]:
        if "label" in body:
            inst.label = body["label"] or None
        state = body.get("state")
        if state == "running" and inst.actual != "running" and inst.intended != "running":
            inst.intended = inst.cur = "running"
            inst.boot(self.start_delay)
        elif state == "running" and inst.intended != "running":
            inst.intended = inst.cur = "running"
        elif state == "stopped":
            inst.intended = inst.cur = "stopped"
            inst.gen += 1
            inst.halt()
            inst.end_run()
            inst.actual = "exited"
        elif state not in (None, "running"):
            return 400, {"success": False, "error": "invalid_args", "msg": f"bad state {state!r}"}
        return 200, {"success": True}

    def change_bid(self, iid: int, body: dict) -> tuple[int, object]:
        inst = self.instances.get(iid)
        if inst is None:  # change_bid.yaml's 404
            return 404, {"success": False, "error": "no_such_instance", "msg": "Instance with that ID does not exist."}
        price = body.get("price", inst.offer["min_bid"]) if isinstance(body, dict) else None
        price = inst.offer["min_bid"] if price is None else price  # "a winning bid price" (vast-cli)
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0.001 <= price <= 32:
            return 400, {"success": False, "error": "invalid_args", "msg": "Please set a bid price >= 0.001."}
        if inst.bid is None:
            return 400, {"success": False, "error": "invalid_args", "msg": "Instance is not an interruptible instance."}
        inst.bid = float(price)
        if inst.outbid_at is not None and inst.bid > inst.outbid_at and inst.intended == "running":
            inst.outbid_at = None  # its bid wins again: it resumes
            inst.boot(self.start_delay)
        return 200, {"success": True}

    def preempt(self, body) -> tuple[int, object]:
        """A higher bid takes the machine: it pauses (`stopped`) while the user's word stays
        "running"; its disk bills on."""
        body = body if isinstance(body, dict) else {}
        inst = self.instances.get(body.get("id")) if isinstance(body.get("id"), int) else None
        if inst is None or inst.bid is None:
            return 400, {"error": "preempt takes a live interruptible instance's id"}
        linger = body.get("linger") or 0
        if not isinstance(linger, (int, float)) or not 0 <= linger <= 600:
            return 400, {"error": "linger takes seconds, 0-600"}
        inst.gen += 1
        gen = inst.gen
        inst.actual, inst.outbid_at = "stopped", inst.bid

        def halt() -> None:
            with self.lock:
                if inst.gen == gen:  # (not started again meanwhile)
                    inst.halt()
                    inst.end_run()
        if linger:
            threading.Timer(linger, halt).start()
        else:
            halt()
        return 200, {"success": True}

    def crash(self, body) -> tuple[int, object]:
        """The container dies (or its host goes quiet) while the user's word stays "running"."""
        body = body if isinstance(body, dict) else {}
        status = body.get("status") or "exited"
        inst = self.instances.get(body.get("id")) if isinstance(body.get("id"), int) else None
        if inst is None or status not in ("exited", "unknown", "offline"):
            return 400, {"error": "crash takes a live instance's id and a status: exited, unknown, offline"}
        inst.gen += 1
        inst.halt()
        inst.end_run()  # a crashed container bills its disk only (hello-world.mdx)
        inst.actual, inst.status_msg = status, str(body.get("msg") or "")  # "": none (null)
        return 200, {"success": True}

    def control(self, method: str, path: str, body) -> tuple[int, object]:
        with self.lock:
            if path == "/_fake/crash" and method == "POST":
                return self.crash(body)
            if path == "/_fake/preempt" and method == "POST":
                return self.preempt(body)
            if path == "/_fake/control" and method == "POST":
                body = body or {}
                why = garble_error(body.get("garble_create"))
                if why:
                    return 400, {"error": why}
                try:
                    self.replies.update(replies.checked(body))
                except ValueError as e:
                    return 400, {"error": str(e)}
                if "garble_create" in body:
                    body = {"garble_count": 1, **body, "garble_create": body["garble_create"] or ""}
                for k in FAULTS:
                    if k in body:
                        setattr(self, k, type(getattr(self, k))(body[k]))
            if path in ("/_fake/control", "/_fake/state"):
                now = time.monotonic()
                return 200, {
                    "rents": self.rents, "destroyed": self.destroyed,
                    "instances": {str(i.id): {"actual_status": i.actual, "intended_status": i.intended,
                                              "bid": i.bid,
                                              "label": i.label, "sshd_pid": i.proc.pid if i.proc else None,
                                              "direct_port": i.direct_port, "proxy_port": i.proxy_port,
                                              "container_api_key": i.scoped_key, "home": str(i.home),
                                              "workspace": str(i.workspace),
                                              "marker": i.marker}
                                  for i in self.instances.values()},
                    "creating": self.inflight.creating,
                    "machines": {str(i.id): {"status": i.actual, "label": i.label, "destroyed": i.destroyed,
                                             "listed": not i.destroyed and i.listed_at <= now}
                                 for i in self.made.values()},
                    "faults": {**{k: getattr(self, k) for k in FAULTS}, **self.replies}}
        return 404, {"error": "no such control"}

    def shutdown(self) -> None:
        self.inflight.stopping.set()  # held answers go out now
        with self.lock:
            for inst in self.instances.values():
                inst.gen += 1
                inst.halt()


def _pubkey(text: str) -> bool:
    return bool(re.fullmatch(r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+) [A-Za-z0-9+/=]+( .*)?", text))


class Handler(BaseHTTPRequestHandler):
    fake: Fake
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        api = not url.path.startswith("/_fake/")
        faults = dict(self.fake.replies) if api else dict(replies.OFF)
        stopping = self.fake.inflight.stopping
        wait = replies.rate_limited(faults)
        wrong, shape = replies.wrong_shape(faults, url.path.removeprefix("/api/v0/")) if api else (False, None)
        if api and wait:  # refused before anything is done, as a rate limit does
            return replies.send(self, 429, {"success": False, "error": "too_many_requests",
                                            "msg": "fake: slow down"}, faults, stopping, {"Retry-After": wait})
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            code, reply = 400, {"success": False, "error": "invalid_args", "msg": "body is not JSON"}
        else:
            try:
                code, reply, *plan = self.fake.handle(self.command, url.path, parse_qs(url.query),
                                                      self.headers.get("Authorization") or "", body)
            except Exception as e:  # a fake that crashes must still answer like a server
                code, reply = 500, {"success": False, "error": "server_error", "msg": f"fake: {e!r}"}
            else:
                if plan:  # a rent: its answer may be held, damaged or lost (inflight.py)
                    return self.fake.inflight.answer(
                        self, code, json.dumps(reply).encode(), plan[0],
                        send=lambda c, d: replies.send(self, *((200, shape) if wrong else (c, d)),
                                                       faults, stopping))
        if api:
            if wrong:
                code, reply = 200, shape
            return replies.send(self, code, reply, faults, stopping)
        data = json.dumps(reply).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


def serve(port: int, api_key: str, **faults) -> None:
    base = Path(tempfile.mkdtemp(prefix="tsv", dir="/tmp"))  # short: tmux socket paths
    os.chmod(base, 0o755)
    fake = Fake(api_key, base, **faults)
    handler = type("BoundHandler", (Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True

    def stop(*_):
        fake.inflight.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        fake.shutdown()
        server.server_close()
        shutil.rmtree(base, ignore_errors=True)


# ---- a handle for tests ---------------------------------------------------------------------

class FakeVast:
    """The fake running in a child process. `url` for VAST_URL, `key` for VAST_API_KEY."""

    def __init__(self, key: str | None = None, **faults):
        self.key = key or secrets.token_hex(16)
        argv = [sys.executable, __file__, "--port", "0", "--api-key", self.key]
        for k, v in faults.items():
            argv += [f"--{k.replace('_', '-')}", str(v)] if not isinstance(v, bool) else \
                ([f"--{k.replace('_', '-')}"] if v else [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.url = (self.proc.stdout.readline() or "").strip()
        if not self.url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError("the Vast fake did not start")

    def _post(self, path: str, body=None):
        import urllib.request

        req = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def control(self, **faults) -> dict:
        """Set faults now (see the module's docstring); the fake's state."""
        return self._post("/_fake/control", faults)

    def state(self) -> dict:
        return self._post("/_fake/state")

    def preempt(self, iid: str, linger: float = 0) -> dict:
        return self._post("/_fake/preempt", {"id": int(iid), **({"linger": linger} if linger else {})})

    def crash(self, iid: str, status: str = "exited", msg: str = "") -> dict:
        return self._post("/_fake/crash", {"id": int(iid), "status": status, "msg": msg})

    def live(self) -> dict[str, str]:
        """The machines the fake has left: id -> status of every instance not destroyed."""
        return {iid: m["status"] for iid, m in self.state()["machines"].items() if not m["destroyed"]}

    def wait_creating(self, count: int = 1, timeout: float = 10) -> dict:
        """Wait until `count` rents have made their machine and not yet answered (a held answer:
        slow_create); the fake's state then."""
        return _poll(self.state, lambda s: s["creating"] >= count, timeout,
                     f"{count} rent(s) in flight")

    def wait_listed(self, iid: str, timeout: float = 10) -> dict:
        """Wait until GET instances/ shows instance `iid` (list_lag passed); its machine entry."""
        return _poll(self.state, lambda s: s["machines"].get(str(iid), {}).get("listed"), timeout,
                     f"instance {iid} listed")["machines"][str(iid)]

    def api(self, method: str, path: str, body=None, key: str | None = None):
        """Call the fake's API as a client would (path below /api/v0)."""
        from trainsh.cloud import http

        return http.request(method, f"{self.url}/api/v0/{path.lstrip('/')}", what="fake", retries=0,
                            key=self.key if key is None else key, body=body)

    def rent(self, offer: str = "1001", label: str | None = None, running: bool = True,
             **body) -> str:
        """Rent a machine straight through the API (no trainsh code on the way); by default wait
        until it runs. Returns its id."""
        reply = self.api("PUT", f"asks/{offer}/", {"client_id": "me", "image": "fake/image", "disk": 10,
                                                   "label": label, **body})
        iid = str(reply["new_contract"])
        if running:
            self.wait(iid)
        return iid

    def wait(self, iid: str, actual_status: str = "running", timeout: float = 20) -> dict:
        """The fake's own view of an instance once it reaches `actual_status`."""
        deadline = time.monotonic() + timeout
        while True:
            inst = self.state()["instances"].get(str(iid))
            if inst and inst["actual_status"] == actual_status:
                return inst
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake instance {iid} is not {actual_status}: {inst}")
            time.sleep(0.05)

    def stop(self) -> list[int]:
        """End the fake; returns the pids of its sshds that survived (should be none)."""
        pids = [i["sshd_pid"] for i in self.state()["instances"].values() if i["sshd_pid"]] \
            if self.proc.poll() is None else []
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        return [p for p in pids if _alive(p)]


def _poll(state, done, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = state()
        if done(s):
            return s
        if time.monotonic() > deadline:
            raise TimeoutError(f"the fake: no {what} within {timeout} s: {s}")
        time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description="A local fake of Vast.ai's REST API with real sshd machines.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--start-delay", type=float, default=0.3, help="seconds of `loading` before `running`")
    ap.add_argument("--no-capacity", action="store_true", help="every rent fails: no_such_ask")
    ap.add_argument("--fail-after-create", type=int, default=0, help="the next N rents make a machine, then 500")
    ap.add_argument("--down", action="store_true", help="every API call answers 503")
    ap.add_argument("--no-direct", action="store_true", help="instances get no direct ssh port")
    ap.add_argument("--slow-create", type=float, default=0.0, help="seconds a rent holds its answer")
    ap.add_argument("--garble-create", default="", choices=("",) + GARBLES,
                    help="the next rent(s) make a machine, then damage the answer so")
    ap.add_argument("--garble-count", type=int, default=1, help="rents --garble-create damages (<0: all)")
    ap.add_argument("--list-lag", type=float, default=0.0, help="seconds before a new instance is listed")
    ap.add_argument("--down-after-create", type=float, default=0.0,
                    help="seconds every other call answers 503 after a rent")
    ap.add_argument("--ssh-delay", type=float, default=0.0,
                    help="seconds from `running` until logins work (nothing listens, then no keys)")
    ap.add_argument("--rate-limits", action="store_true",
                    help="each endpoint's documented rate limit, 429 above it")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--trickle", type=float, default=0.0, help="seconds between the bytes of each answer")
    ap.add_argument("--retry-after", type=float, default=0.0, help="every call answers 429 with this Retry-After")
    ap.add_argument("--bad-status", action="store_true", help="every answer has a broken status line")
    ap.add_argument("--garble-reply", default="", choices=("",) + replies.GARBLES, help="damage every answer so")
    a = ap.parse_args()
    if os.getuid() != 0 or not os.path.exists(SSHD):
        sys.exit("vast fake: needs root and openssh-server (the machines are real sshd servers)")
    serve(a.port, a.api_key, start_delay=a.start_delay, no_capacity=a.no_capacity,
          fail_after_create=a.fail_after_create, down=a.down, no_direct=a.no_direct,
          slow_create=a.slow_create, garble_create=a.garble_create, garble_count=a.garble_count,
          list_lag=a.list_lag, down_after_create=a.down_after_create, ssh_delay=a.ssh_delay,
          rate_limits=a.rate_limits,
          reply_faults={"delay": a.delay, "trickle": a.trickle, "retry_after": a.retry_after,
                        "bad_status": a.bad_status, "garble_reply": a.garble_reply})


if __name__ == "__main__":
    main()
