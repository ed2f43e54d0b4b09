"""A fake of RunPod's GraphQL API whose pods are real sshd servers on loopback.

It answers what the official SDK (runpod 1.12) and trainsh.cloud.runpod send, with RunPod's
field names: `gpuTypes` (with `lowestPrice(input: {gpuCount, secureCloud})`; no input or no
gpuCount is an error), `myself { pods }`,
`pod(input: {podId})`, and the mutations `podFindAndDeployOnDemand`, `podRentInterruptable`
(a spot pod: the same input plus `bidPerGpu`, runpod/docs graphql-api/create-pod.md; its
`podType` INTERRUPTABLE, its costPerHr the bid x GPUs), `podStop`, `podResume`,
`podTerminate`. Only the fields a query selects are answered; a field the fake does not know is
an error, as on a real GraphQL server. Errors come back as `{"errors": [{"message": ...}]}`;
a wrong key is HTTP 401.

A pod's logins have RUNPOD_POD_ID and RUNPOD_API_KEY, a key of the pod's own that may only read,
stop, resume or terminate that pod (SCOPED below).

A pod is an sshd (`sshd -D`, its own host key and port) that accepts the keys in the pod's
`PUBLIC_KEY` env, as RunPod's images do (a create with startSsh that sets none gets the
account's keys, `myself { pubKey }`, set by `updateUserSettings(input: {pubKey})`). Its `runtime` stays null until that sshd answers;
stop kills the sshd and every process of its logins; resume starts it again on a new port
(the pod's home folder stays, like a volume); terminate removes the pod. The sshd runs in a
mount namespace of its own with a folder of the pod at /workspace (the state's `workspace`),
so pods never share files. Every argument and input object field is checked against its input
type (INPUTS) before anything is done.

`GET /v2/billing/pods` (RunPod's REST API v2, on the same server) gives what each pod cost since
its rent: the GPU price while it runs, its disks as docs.runpod.io prices them (container and
volume $0.10/GB/month running, the volume $0.20/GB/month stopped).

Faults, by flag, by `POST /_fake/faults` with a JSON object (answers the faults) or by
`POST /_fake/control` with one (answers the state, as the Vast fake does); no key for either:
  no_capacity   true, or a list of GPU type ids: create (and resume) answer RunPod's capacity
                error, while the listings still show them (they lag, as RunPod's do)
  sold_out      true, or a list of GPU type ids: listed with no current price (lowestPrice null);
                "ID@SECURE" or "ID@COMMUNITY" sells out one cloud
  fail_create   N (alias fail_after_create): the next N creates make the pod, then answer 500
  start_delay   seconds before a pod's sshd starts (runtime null until then)
  ssh_delay     seconds between runtime (the ports) showing and logins that work, as a real
                container runs before its start script has started sshd and put the keys in
                place: the first half nothing listens, the second sshd refuses every key; 0
                (the default): runtime shows once sshd takes logins
  down          true: every API call answers 503
Rents in flight (the cloud has acted; its answer is late, damaged or lost; see inflight.py):
  slow_create   seconds: a create makes the pod at once, then holds its answer this long
  garble_create the next create(s) make the pod, then their answer is damaged: "truncate" (a
                Content-Length larger than the body sent, then the connection closes),
                "badjson" (200, a body that is not JSON), "500" (500 {"errors": [{"message"}]},
                as fail_create), "drop" (the connection closes with no answer); "" for none
  garble_count  how many creates garble_create damages (default 1; setting garble_create
                through /_fake/control or /_fake/faults alone sets it to 1; below 0: every
                create until garble_create is ""); once used up, garble_create is ""
  list_lag      seconds: a new pod shows in `myself { pods }` (so in lookups by name) only this
                long after it was made; `pod(input: {podId})` shows it at once
  down_after_create  seconds every other API call answers 503 after a create, once its answer
                went out (and while it is held)
Every answer (see replies.py, shared with the Vast fake):
  delay         seconds before each answer goes out
  trickle       seconds between the bytes of each answer (status line, headers, body)
  retry_after   seconds: every call answers 429 with that Retry-After and does nothing
  bad_status    true (or a status line): each answer has a broken status line
  garble_reply  "truncate", "badjson" or "drop": every answer is damaged so
  wrong_shape   {"path": FIELD, "reply": JSON}: an operation whose first field is FIELD
                ("myself", "gpuTypes", "pod", ...) is carried out, then answered 200 with that
                JSON as the whole body ("v2/billing/pods" for the billing path)

`POST /_fake/preempt {"id": POD_ID}`: RunPod reclaims a spot pod: its sshd and processes end,
`desiredStatus` EXITED ("can be stopped at any time to free up resources for another Pod", the
REST reference's `interruptible`), `lastStatusChange` "Reclaimed by RunPod: DATE" where a user's
podStop writes "Exited by User: DATE" (the docs show "Rented by User: DATE"; these two wordings
are the fake's own).

`GET /_fake/state` shows the live pods (`pods`), the terminated ones (`terminated`), counters,
`creating` (creates whose pod is made and whose answer has not gone out) and `machines`: every
pod ever made, id -> {"status": desiredStatus, "label": name, "destroyed": bool, "listed": bool
(shown by myself { pods } now)}. In tests, `serving()` gives the fake itself, with `control()`,
`state()`, `live()`, `wait_creating()` and `wait_listed()`.

Run on its own: `python tests/fakes/runpod.py --port PORT --api-key KEY`; it serves until
SIGTERM or Ctrl-C, then stops every sshd it started. Tests use `serving()`.
"""

from __future__ import annotations

import argparse
import contextlib
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for sshd.py

import sshd  # noqa: E402
from fakes import replies  # noqa: E402
from fakes.inflight import GARBLES, InFlight, garble_error  # noqa: E402

CAPACITY_ERROR = ("There are no longer any instances available with the requested specifications. "
                  "Please refresh and try again.")

# (id, displayName, memoryInGb, communityPrice, securePrice): RunPod's ids; prices per GPU-hour.
GPU_TYPES = [
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.34, 0.69),
    ("NVIDIA RTX A6000", "RTX A6000", 48, 0.33, 0.49),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, 0.74, 0.77),
    ("NVIDIA L4", "L4", 24, 0.0, 0.43),
    ("NVIDIA L40", "L40", 48, 0.0, 0.99),
    ("NVIDIA L40S", "L40S", 48, 0.79, 0.86),
    ("NVIDIA A30", "A30", 24, 0.0, 0.26),
    ("NVIDIA A40", "A40", 48, 0.0, 0.40),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.19, 1.64),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, 1.39, 1.74),
    ("NVIDIA H100 NVL", "H100 NVL", 94, 2.59, 2.79),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.69, 2.99),
    ("NVIDIA H200", "H200 SXM", 141, 3.59, 3.99),
    ("NVIDIA B200", "B200", 180, 0.0, 5.99),
]


class GraphQLError(Exception):
    def __init__(self, message: str, status: int = 200):
        super().__init__(message)
        self.status = status


# ---- a small GraphQL reader ------------------------------------------------------------------

_TOKEN = re.compile(r'''
    (?P<skip>[\s,]+|\#[^\n]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[{}()\[\]:!$=@])
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
''', re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise GraphQLError(f"Syntax Error: Unexpected character {text[pos]!r}.", 400)
        pos = m.end()
        kind = m.lastgroup
        if kind != "skip":
            out.append((kind, m.group()))
    out.append(("eof", ""))
    return out


class Enum(str):
    """A bare name in a document: an enum value (`cloudType: SECURE`)."""


class Given(str):
    """A string that came in a variable: JSON has no enums, so it may fill a String or an enum."""


def _given(value: Any) -> Any:
    if isinstance(value, str):
        return Given(value)
    if isinstance(value, list):
        return [_given(v) for v in value]
    if isinstance(value, dict):
        return {k: _given(v) for k, v in value.items()}
    return value


class Field:
    def __init__(self, name: str, alias: str, args: dict, selections: list[Field] | None):
        self.name, self.alias, self.args, self.selections = name, alias, args, selections


class _Parser:
    def __init__(self, text: str, variables: dict):
        self.toks = _tokens(text)
        self.i = 0
        self.variables = variables

    def peek(self, value: str | None = None) -> bool:
        kind, text = self.toks[self.i]
        return kind != "eof" and (value is None or text == value)

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, text = self.toks[self.i]
        if (value is not None and text != value) or (kind is not None and k != kind) or k == "eof":
            want = value or kind
            raise GraphQLError(f"Syntax Error: Expected {want}, found {text or '<EOF>'!r}.", 400)
        self.i += 1
        return text

    def operation(self) -> tuple[str, list[Field]]:
        op = "query"
        if self.peek("query") or self.peek("mutation") or self.peek("subscription"):
            op = self.take()
            if self.toks[self.i][0] == "name":
                self.take()  # operation name
            if self.peek("("):
                self.variable_definitions()
        sel = self.selection_set()
        if self.peek():
            raise GraphQLError("This fake answers one operation per document.", 400)
        return op, sel

    def variable_definitions(self) -> None:
        self.take("(")
        while not self.peek(")"):
            self.take("$")
            name = self.take(kind="name")
            self.take(":")
            self.type_ref()
            if self.peek("="):
                self.take("=")
                default = self.value()
                self.variables.setdefault(name, default)
        self.take(")")

    def type_ref(self) -> None:
        if self.peek("["):
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.peek("!"):
            self.take("!")

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while not self.peek("}"):
            if self.peek("..."):
                raise GraphQLError("This fake does not answer fragments.", 400)
            name = self.take(kind="name")
            alias = name
            if self.peek(":"):
                self.take(":")
                name = self.take(kind="name")
            args = self.arguments() if self.peek("(") else {}
            sel = self.selection_set() if self.peek("{") else None
            fields.append(Field(name, alias, args, sel))
        self.take("}")
        if not fields:
            raise GraphQLError("Syntax Error: Expected Name, found '}'.", 400)
        return fields

    def arguments(self) -> dict:
        self.take("(")
        args = {}
        while not self.peek(")"):
            key = self.take(kind="name")
            self.take(":")
            args[key] = self.value()
        self.take(")")
        return args

    def value(self) -> Any:
        kind, text = self.toks[self.i]
        if text == "$":
            self.take("$")
            name = self.take(kind="name")
            if name not in self.variables:
                raise GraphQLError(f'Variable "${name}" was not provided.')
            return _given(self.variables[name])
        if text == "[":
            self.take("[")
            items = []
            while not self.peek("]"):
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            self.take("{")
            obj = {}
            while not self.peek("}"):
                key = self.take(kind="name")
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        self.i += 1
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return json.loads(text)  # GraphQL's string escapes are JSON's
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, Enum(text))  # else an enum value
        raise GraphQLError(f"Syntax Error: Unexpected {text or '<EOF>'!r}.", 400)


def parse(text: str, variables: dict | None = None) -> tuple[str, list[Field]]:
    return _Parser(text, dict(variables or {})).operation()


def _fields(names: str, **objects: dict) -> dict:
    return {**{n: None for n in names.split()}, **objects}


# What a query may select, type by type (None: a scalar), checked before anything is answered,
# as a GraphQL server validates a document against its schema.
POD = _fields(
    "id name imageName desiredStatus costPerHr adjustedCostPerHr gpuCount containerDiskInGb volumeInGb "
    "volumeMountPath dockerArgs dockerId env lastStatusChange machineId memoryInGb vcpuCount podType port "
    "ports uptimeSeconds",
    runtime=_fields("uptimeInSeconds",
                    ports=_fields("ip isIpPublic privatePort publicPort type"),
                    gpus=_fields("id gpuUtilPercent memoryUtilPercent"),
                    container=_fields("cpuPercent memoryPercent")),
    machine=_fields("gpuDisplayName podHostId gpuTypeId location secureCloud"))
GPU_TYPE = _fields(
    "id displayName memoryInGb manufacturer cudaCores maxGpuCount maxGpuCountSecureCloud "
    "maxGpuCountCommunityCloud minPodGpuCount secureCloud communityCloud securePrice communityPrice "
    "oneMonthPrice threeMonthPrice sixMonthPrice oneWeekPrice communitySpotPrice secureSpotPrice",
    lowestPrice=_fields("gpuName gpuTypeId minimumBidPrice uninterruptablePrice minMemory minVcpu "
                        "stockStatus compliance maxUnreservedGpuCount availableGpuCounts gpuCount"))
# GpuLowestPriceInput: the fields RunPod's GraphQL docs show (sdks/graphql/manage-pods.mdx) and
# runpodctl's totalDisk; another is an error, as GraphQL validates an input object.
LOWEST_PRICE_INPUT = {"compliance", "dataCenterId", "globalNetwork", "gpuCount", "minDisk", "minMemoryInGb",
                      "minVcpuCount", "secureCloud", "totalDisk", "supportPublicIp", "minDownload", "minUpload"}
# The input objects the fake takes, field by field, as GraphQL checks an argument against its
# input type: a field the type lacks, a value of another type, an enum value the enum lacks, or
# a required (`!`) field missing or null is an error before anything is done. Field names and
# types from RunPod's official clients: runpod-python api/mutations/pods.py (create: name,
# imageName, cloudType as a bare enum ALL/COMMUNITY/SECURE, startSsh, gpuTypeId,
# supportPublicIp, gpuCount, volumeInGb, minVcpuCount, minMemoryInGb, allowedCudaVersions,
# dataCenterId, dockerArgs, countryCode, containerDiskInGb, ports, volumeMountPath,
# env: [{key, value}], templateId, networkVolumeId, minDownload, minUpload; podResume(input:
# {podId, gpuCount})), runpodctl api/pod.go (a `PodFindAndDeployOnDemandInput!` variable that
# adds deployCost; podResume with podId alone) and internal/api/graphql.go (minCudaVersion,
# containerRegistryAuthId, stopAfter, terminateAfter, compliance). The schema itself
# (graphql-spec.runpod.io) was not at hand: the enum's name and the errors' wording are the
# fake's own, in graphql-js's words.
CLOUD_TYPES = ("ALL", "COMMUNITY", "SECURE")
INPUTS = {
    "PodFindAndDeployOnDemandInput": {
        "name": "String", "imageName": "String!", "gpuTypeId": "String!", "gpuCount": "Int",
        "cloudType": "CloudTypeEnum", "startSsh": "Boolean", "supportPublicIp": "Boolean",
        "containerDiskInGb": "Int", "volumeInGb": "Int", "volumeMountPath": "String", "ports": "String",
        "env": "[EnvironmentVariableInput]", "dockerArgs": "String", "dataCenterId": "String",
        "countryCode": "String", "minVcpuCount": "Int", "minMemoryInGb": "Int",
        "allowedCudaVersions": "[String]", "minCudaVersion": "String", "templateId": "String",
        "networkVolumeId": "String", "minDownload": "Int", "minUpload": "Int", "deployCost": "Float",
        "containerRegistryAuthId": "String", "stopAfter": "String", "terminateAfter": "String",
        "compliance": "[String]"},
    "EnvironmentVariableInput": {"key": "String!", "value": "String"},
    "PodRentInterruptableInput": None,  # the deploy input plus bidPerGpu (filled below)
    "PodResumeInput": {"podId": "String!", "gpuCount": "Int"},
    "PodStopInput": {"podId": "String!"},
    "PodTerminateInput": {"podId": "String!"},
    "PodFilter": {"podId": "String!"},
    "GpuTypeFilter": {"id": "String"},
    "UpdateUserSettingsInput": {"pubKey": "String"},
}
INPUTS["PodRentInterruptableInput"] = {**INPUTS["PodFindAndDeployOnDemandInput"], "bidPerGpu": "Float!"}
# Each root field's arguments (name -> type); a field left out takes none.
ARGUMENTS = {
    "query": {"pod": {"input": "PodFilter!"}, "gpuTypes": {"input": "GpuTypeFilter"}},
    "mutation": {"podFindAndDeployOnDemand": {"input": "PodFindAndDeployOnDemandInput"},
                 "podRentInterruptable": {"input": "PodRentInterruptableInput!"},
                 "podResume": {"input": "PodResumeInput!"}, "podStop": {"input": "PodStopInput!"},
                 "podTerminate": {"input": "PodTerminateInput!"},
                 "updateUserSettings": {"input": "UpdateUserSettingsInput!"}},
}


def _show(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    return json.dumps(value)


def coerce(value: Any, type_name: str, where: str) -> None:
    """Check `value` against a GraphQL input type ("Int", "String!", "[EnvironmentVariableInput]",
    an input object, the cloud type enum); GraphQLError (400) when GraphQL would refuse it."""
    required = type_name.endswith("!")
    base = type_name.rstrip("!")
    if value is None:
        if required:
            raise GraphQLError(f'Expected value of type "{type_name}", found null ({where}).', 400)
        return
    if base.startswith("["):
        inner = base[1:-1]
        for item in value if isinstance(value, list) else [value]:  # a lone value is a list of one
            coerce(item, inner, where)
        return
    if base in INPUTS:
        if not isinstance(value, dict):
            raise GraphQLError(f'Expected value of type "{base}", found {_show(value)} ({where}).', 400)
        fields = INPUTS[base]
        for name in value:
            if name not in fields:
                raise GraphQLError(f'Field "{name}" is not defined by type "{base}".', 400)
        for name, ftype in fields.items():
            if ftype.endswith("!") and value.get(name) is None:
                raise GraphQLError(f'Field "{base}.{name}" of required type "{ftype}" was not provided.', 400)
            if name in value:
                coerce(value[name], ftype, f"{base}.{name}")
        return
    ok = {"Int": lambda v: type(v) is int and -2**31 <= v < 2**31,
          "Float": lambda v: type(v) in (int, float),
          "Boolean": lambda v: type(v) is bool,
          "String": lambda v: isinstance(v, str) and not isinstance(v, Enum),
          "CloudTypeEnum": lambda v: isinstance(v, (Enum, Given)) and v in CLOUD_TYPES}[base]
    if not ok(value):
        if base == "CloudTypeEnum" and isinstance(value, (Enum, Given)):
            raise GraphQLError(f'Value "{value}" does not exist in "{base}" enum ({where}).', 400)
        raise GraphQLError(f'{base} cannot represent {_show(value)} ({where}).', 400)


def check_arguments(op: str, fields: list[Field]) -> None:
    for f in fields:
        allowed = ARGUMENTS.get(op, {}).get(f.name, {})
        for name in f.args:
            if name not in allowed:
                raise GraphQLError(f'Unknown argument "{name}" on field "{f.name}".', 400)
        for name, type_name in allowed.items():
            if type_name.endswith("!") and name not in f.args:
                raise GraphQLError(f'Field "{f.name}" argument "{name}" of type "{type_name}" is required, '
                                   "but it was not provided.", 400)
            if name in f.args:
                coerce(f.args[name], type_name, f"{f.name}({name})")


SCHEMA = {
    "query": {"gpuTypes": GPU_TYPE, "pod": POD,
              "myself": _fields("id email pubKey clientBalance", pods=POD,
                                networkVolumes=_fields("id name size dataCenterId"))},
    "mutation": {"podFindAndDeployOnDemand": POD, "podRentInterruptable": POD, "podStop": POD, "podResume": POD, "podTerminate": None,
                 "updateUserSettings": _fields("id pubKey")},
}


def validate(fields: list[Field] | None, shape: dict | None, type_name: str) -> None:
    if shape is None:
        if fields:
            raise GraphQLError(f'Field "{type_name}" must not have a selection since it is a scalar.', 400)
        return
    if not fields:
        raise GraphQLError(f'Field "{type_name}" must have a selection of subfields.', 400)
    for f in fields:
        if f.name == "__typename":
            continue
        if f.name not in shape:
            raise GraphQLError(f'Cannot query field "{f.name}" on type "{type_name}".', 400)
        validate(f.selections, shape[f.name], f.name)


def project(value: Any, selections: list[Field] | None, type_name: str) -> Any:
    """Answer only the selected fields; a callable field gets the field's arguments."""
    if value is None:
        return None
    if isinstance(value, list):
        return [project(v, selections, type_name) for v in value]
    if not isinstance(value, dict):
        if selections:
            raise GraphQLError(f'Field of scalar type on "{type_name}" must not have a selection.')
        return value
    if not selections:
        raise GraphQLError(f'Field of type "{type_name}" must have a selection of subfields.')
    out = {}
    for f in selections:
        if f.name == "__typename":
            out[f.alias] = type_name
            continue
        if f.name not in value:
            raise GraphQLError(f'Cannot query field "{f.name}" on type "{type_name}".')
        v = value[f.name]
        if callable(v):
            v = v(**f.args)
        out[f.alias] = project(v, f.selections, f.name[:1].upper() + f.name[1:])
    return out


# ---- pods ------------------------------------------------------------------------------------

class Pod:
    def __init__(self, fake: FakeRunPod, pod_id: str, spec: dict, gpu: tuple):
        self.fake, self.id, self.spec, self.gpu = fake, pod_id, spec, gpu
        self.dir = fake.base / pod_id
        self.home = self.dir / "home"
        self.home.mkdir(parents=True)
        self.workspace = self.dir / "workspace"  # the pod's /workspace (sshd.with_own_workspace)
        self.workspace.mkdir()
        self.tmux_dir = self.dir / "tmux"
        self.tmux_dir.mkdir(mode=0o1777)
        os.chmod(self.tmux_dir, 0o1777)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "host")],
                       check=True)
        self.desired = "RUNNING"
        self.created = self.run_since = time.time()  # billed from the rent; the GPU while it runs
        self.run_seconds = 0.0
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.up_since: float | None = None
        self.last_change = f"Rented by User: {time.strftime('%a %b %d %Y %H:%M:%S GMT+0000', time.gmtime())}"
        self.lock = threading.Lock()
        self.generation = 0
        self.listed_at = time.monotonic() + float(fake.faults.get("list_lag") or 0)
        self.key = f"pod_{secrets.token_hex(16)}"  # the pod's own RUNPOD_API_KEY (see SCOPED)

    @property
    def env(self) -> dict[str, str]:
        return {e["key"]: str(e.get("value", "")) for e in self.spec.get("env") or []}

    @property
    def marker(self) -> str:
        return f"{self.fake.token}-{self.id}"

    def boot(self) -> None:
        """Start the sshd after the start delay, in the background; runtime appears when it answers."""
        with self.lock:
            self.generation += 1
            gen = self.generation
        threading.Thread(target=self._boot, args=(gen,), daemon=True).start()

    def _boot(self, gen: int) -> None:
        delay = float(self.fake.faults.get("start_delay") or 0)
        end = time.monotonic() + delay
        while time.monotonic() < end:
            if self.generation != gen:
                return
            time.sleep(0.05)
        keys = self.dir / "authorized_keys"
        port = sshd.free_port()
        cfg = self.dir / "sshd_config"
        gap = float(self.fake.faults.get("ssh_delay") or 0)
        wanted = self.env.get("PUBLIC_KEY", "").replace("\\n", "\n").strip() + "\n"
        try:
            keys.write_text("" if gap > 0 else wanted)
            os.chmod(keys, 0o600)
            cfg.write_text(sshd.config_text(port, self.dir / "host", str(keys), {
                "HOME": self.home, "TMUX_TMPDIR": self.tmux_dir, "RUNPOD_POD_ID": self.id,
                "RUNPOD_API_KEY": self.key, "FAKE_RUNPOD_POD": self.marker}))
        except OSError:
            if self.generation != gen:
                return  # terminated (its folder removed) while it was starting
            raise
        if gap > 0:
            # ssh_delay: the container runs (runtime and its ports shown) before its start script
            # has started sshd (nothing listens) and put the keys in place (sshd refuses them)
            with self.lock:
                if self.generation != gen or self.desired != "RUNNING":
                    return
                self.port, self.up_since = port, time.time()
            if not self._sleep(gap / 2, gen):
                return
        with self.lock:
            if self.generation != gen or self.desired != "RUNNING":
                return
            argv = ["/usr/sbin/sshd", "-D", "-f", str(cfg), "-E", str(self.dir / "sshd.log")]
            self.proc = subprocess.Popen(sshd.with_own_workspace(argv, self.workspace),
                                         start_new_session=True, stdin=subprocess.DEVNULL)
            proc = self.proc
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if s.recv(8).startswith(b"SSH-"):
                        break
            except OSError:
                time.sleep(0.02)
        with self.lock:
            if self.generation == gen and proc.poll() is None and gap <= 0:
                self.port, self.up_since = port, time.time()
        if gap > 0 and self._sleep(gap / 2, gen):
            with contextlib.suppress(OSError):  # (gone if the pod was terminated meanwhile)
                keys.write_text(wanted)

    def _sleep(self, seconds: float, gen: int) -> bool:
        """Wait `seconds`; False as soon as the pod stops or restarts meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.generation != gen:
                return False
            time.sleep(0.05)
        return self.generation == gen

    def halt(self) -> None:
        """The container stops: sshd and everything its logins started."""
        with self.lock:
            self.generation += 1
            proc, self.proc = self.proc, None
            self.port = self.up_since = None
        if proc:
            # Each connection's sshd is a session of its own: find them before their parent goes.
            doomed = _descendants(proc.pid)
            for pid in doomed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            _wait_dead(doomed)
        _kill_marked(self.marker)

    def set_desired(self, status: str) -> None:
        now = time.time()
        if self.run_since is not None:
            self.run_seconds += now - self.run_since
        self.run_since = now if status == "RUNNING" else None
        if status == "TERMINATED":
            self.ended = now
        self.desired = status

    def billing(self, now: float) -> dict:
        """What the pod cost since its rent, as RunPod bills it (docs.runpod.io pods/pricing):
        the GPU price while it runs; its container and volume disks at $0.10/GB/month while it
        runs, the volume at $0.20/GB/month while it is stopped (a month of 730 hours)."""
        end = getattr(self, "ended", None) or now
        ran = self.run_seconds + (end - self.run_since if self.run_since is not None else 0.0)
        idle = max(0.0, end - self.created - ran)
        pod = self.render()
        gpu = pod["costPerHr"] * ran / 3600
        disk = ((pod["containerDiskInGb"] + pod["volumeInGb"]) * 0.10 * ran
                + pod["volumeInGb"] * 0.20 * idle) / 730 / 3600
        return {"podId": self.id, "gpuAmount": gpu, "cpuAmount": 0.0, "diskAmount": disk,
                "totalAmount": gpu + disk}

    def render(self) -> dict:
        """The pod as RunPod's GraphQL type `Pod`, every field a query may select."""
        gpu_id, display, mem, community, secure = self.gpu
        count = int(self.spec.get("gpuCount") or 1)
        price = {"SECURE": secure, "COMMUNITY": community}.get(self.spec.get("cloudType"),
                                                               min(p for p in (community, secure) if p))
        if self.spec.get("bidPerGpu") is not None:  # a spot pod costs its bid
            price = float(self.spec["bidPerGpu"])
        runtime = None
        if self.port and self.desired == "RUNNING":
            uptime = int(time.time() - (self.up_since or time.time()))
            runtime = {
                "uptimeInSeconds": uptime,
                # The private address first: a client must pick the public port for 22.
                "ports": [
                    {"ip": "10.65.0.2", "isIpPublic": False, "privatePort": 22, "publicPort": 22, "type": "tcp"},
                    {"ip": "127.0.0.1", "isIpPublic": True, "privatePort": 22, "publicPort": self.port,
                     "type": "tcp"},
                ],
                "gpus": [{"id": f"GPU-{i}", "gpuUtilPercent": 0, "memoryUtilPercent": 0} for i in range(count)],
                "container": {"cpuPercent": 0, "memoryPercent": 1},
            }
        return {
            "id": self.id,
            "name": self.spec.get("name", ""),
            "imageName": self.spec.get("imageName", ""),
            "desiredStatus": self.desired,
            "costPerHr": round(price * count, 3),
            "adjustedCostPerHr": round(price * count, 3),
            "gpuCount": count,
            "containerDiskInGb": self.spec.get("containerDiskInGb") or 10,
            "volumeInGb": self.spec.get("volumeInGb") or 0,
            "volumeMountPath": self.spec.get("volumeMountPath") or "/workspace",
            "dockerArgs": self.spec.get("dockerArgs") or "",
            "dockerId": None,
            "env": [f"{k}={v}" for k, v in self.env.items()],
            "lastStatusChange": self.last_change,
            "machineId": f"m-{self.id}",
            "memoryInGb": 62,
            "vcpuCount": 8,
            "podType": "INTERRUPTABLE" if self.spec.get("bidPerGpu") is not None else "RESERVED",
            "port": None,
            "ports": self.spec.get("ports") or "",
            "uptimeSeconds": runtime["uptimeInSeconds"] if runtime else 0,
            "runtime": runtime,
            "machine": {"gpuDisplayName": display, "podHostId": f"{self.id}-64410a1b", "gpuTypeId": gpu_id,
                        "location": "loopback", "secureCloud": self.spec.get("cloudType") == "SECURE"},
        }


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _wait_dead(pids: list[int]) -> None:
    """A stopped container has no process left: wait (a little) until these are gone."""
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
                    break
            except OSError:
                break
            time.sleep(0.01)


def _kill_marked(marker: str) -> None:
    """Kill the processes whose environment carries `marker` (a pod's logins, its tmux servers)."""
    needle = f"FAKE_RUNPOD_POD={marker}".encode()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
                    killed.append(int(entry))
        except OSError:
            pass
    _wait_dead(killed)


# ---- the API ---------------------------------------------------------------------------------

class FakeRunPod:
    def __init__(self, api_key: str, port: int = 0, faults: dict | None = None):
        self.api_key = api_key
        self.token = secrets.token_hex(4)
        self.base = Path(tempfile.mkdtemp(prefix="trp", dir="/tmp"))
        os.chmod(self.base, 0o755)
        self.pods: dict[str, Pod] = {}
        self.terminated: dict[str, dict] = {}
        self.billed: dict[str, dict] = {}  # terminated pods' billing
        self.faults: dict[str, Any] = dict(faults or {})
        self.counts = {"creates": 0, "requests": 0}
        self.pub_key = ""  # the account's ssh keys, one a line (RunPod's user settings)
        self.lock = threading.Lock()
        self.made: dict[str, Pod] = {}  # every pod ever made, terminated ones too
        self.inflight = InFlight()
        self.request = threading.local()  # .plan: how this thread's create answer goes out
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                if self.path.startswith("/_fake/state"):
                    return self.reply(200, fake.state())
                if self.path.split("?")[0] == "/v2/billing/pods":
                    faults, stopping = dict(fake.faults), fake.inflight.stopping
                    wait = replies.rate_limited(faults)
                    if wait:
                        return replies.send(self, 429, {"error": "Too Many Requests"}, faults, stopping,
                                            {"Retry-After": wait})
                    wrong, shape = replies.wrong_shape(faults, "v2/billing/pods")
                    status, body = fake.pod_billing(self.headers.get("Authorization", ""), self.path)
                    return replies.send(self, *((200, shape) if wrong else (status, body)), faults, stopping)
                self.reply(404, {"errors": [{"message": "not found"}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.path.startswith(("/_fake/faults", "/_fake/control")):
                    try:
                        fake.set_faults(**json.loads(raw or b"{}"))
                    except (ValueError, TypeError) as e:
                        return self.reply(400, {"errors": [{"message": str(e)}]})
                    return self.reply(200, fake.faults if self.path.startswith("/_fake/faults") else fake.state())
                if self.path.startswith("/_fake/preempt"):
                    try:
                        return self.reply(*fake.preempt(json.loads(raw or b"{}").get("id")))
                    except (ValueError, AttributeError) as e:
                        return self.reply(400, {"errors": [{"message": str(e)}]})
                if self.path.startswith("/_fake/reset"):
                    fake.faults.clear()
                    return self.reply(200, {})
                if self.path.split("?")[0] != "/graphql":
                    return self.reply(404, {"errors": [{"message": f"no route {self.path}"}]})
                faults, stopping = dict(fake.faults), fake.inflight.stopping
                wait = replies.rate_limited(faults)
                if wait:  # refused before anything is done, as a rate limit does
                    return replies.send(self, 429, {"errors": [{"message": "Too Many Requests"}]}, faults,
                                        stopping, {"Retry-After": wait})
                fake.request.plan = None
                status, body = fake.graphql(self.headers.get("Authorization", ""), self.path, raw)
                if fake.request.plan:  # a create: its answer may be held, damaged or lost
                    return fake.inflight.answer(self, status, json.dumps(body).encode(), fake.request.plan,
                                                send=lambda c, d: replies.send(self, c, d, faults, stopping))
                replies.send(self, status, body, faults, stopping)

            def reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeRunPod:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.inflight.stopping.set()  # held answers go out now
        self.server.shutdown()
        self.server.server_close()
        for pod in list(self.pods.values()):
            pod.halt()
        shutil.rmtree(self.base, ignore_errors=True)

    def state(self) -> dict:
        with self.lock:
            pods = {pid: {"desiredStatus": p.desired, "name": p.spec.get("name"), "port": p.port,
                          "pod_key": p.key, "home": str(p.home),
                          "workspace": str(p.workspace),
                          "env": p.env, "gpuTypeId": p.gpu[0], "gpuCount": p.spec.get("gpuCount"),
                          "spec": p.spec} for pid, p in self.pods.items()}
            now = time.monotonic()
            machines = {pid: {"status": p.desired, "label": p.spec.get("name"),
                              "destroyed": p.desired == "TERMINATED",
                              "listed": p.desired != "TERMINATED" and p.listed_at <= now}
                        for pid, p in self.made.items()}
            return {"pods": pods, "terminated": dict(self.terminated), "faults": dict(self.faults),
                    "creating": self.inflight.creating, "machines": machines, **self.counts}

    # -- for tests --

    def set_faults(self, **faults) -> None:
        """Set faults now (see the module's docstring); ValueError for a garble_create no fake knows."""
        why = garble_error(faults.get("garble_create"))
        if why:
            raise ValueError(why)
        faults = {**faults, **replies.checked(faults)}
        if "garble_create" in faults:
            faults = {"garble_count": 1, **faults, "garble_create": str(faults["garble_create"] or "")}
        with self.lock:
            self.faults.update(faults)

    def control(self, **faults) -> dict:
        """Set faults now, as POST /_fake/control does; the state then."""
        self.set_faults(**faults)
        return self.state()

    def live(self) -> dict[str, str]:
        """The machines the fake has left: pod id -> desiredStatus of every pod not terminated."""
        return {pid: m["status"] for pid, m in self.state()["machines"].items() if not m["destroyed"]}

    def wait_creating(self, count: int = 1, timeout: float = 10) -> dict:
        """Wait until `count` creates have made their pod and not yet answered (a held answer:
        slow_create); the state then."""
        return _poll(self.state, lambda s: s["creating"] >= count, timeout, f"{count} create(s) in flight")

    def wait_listed(self, pod_id: str, timeout: float = 10) -> dict:
        """Wait until `myself { pods }` shows pod `pod_id` (list_lag passed); its machine entry."""
        return _poll(self.state, lambda s: s["machines"].get(pod_id, {}).get("listed"), timeout,
                     f"pod {pod_id} listed")["machines"][pod_id]

    def pod_billing(self, auth: str, path: str) -> tuple[int, dict]:
        """GET /v2/billing/pods (RunPod's REST API v2, api-reference-v2/openapi.json): records
        per pod per bucket with totalAmount, gpuAmount, cpuAmount, diskAmount; `podId` narrows
        to one pod; lastN with bucketSize, or startTime/endTime (not both). This fake answers
        one bucket (the year) holding each pod's whole history."""
        from urllib.parse import parse_qs, urlparse

        if self.faults.get("down"):
            return 503, {"error": "Service Unavailable"}
        if auth != f"Bearer {self.api_key}":
            return 401, {"error": "Unauthorized"}
        q = {k: v[0] for k, v in parse_qs(urlparse(path).query).items()}
        if "lastN" in q and ("startTime" in q or "endTime" in q):
            return 400, {"error": "lastN and startTime/endTime are mutually exclusive"}
        if q.get("bucketSize", "day") not in ("hour", "day", "week", "month", "year"):
            return 400, {"error": f"bad bucketSize {q['bucketSize']!r}"}
        now = time.time()
        with self.lock:
            rows = [p.billing(now) for p in self.pods.values()] + list(self.billed.values())
        if q.get("podId"):
            rows = [r for r in rows if r["podId"] == q["podId"]]
        year = time.strftime("%Y", time.gmtime(now))
        span = {"startTime": f"{year}-01-01T00:00:00Z", "endTime": f"{int(year) + 1}-01-01T00:00:00Z"}
        records = [{**span, **r} for r in rows]
        totals = {k: sum(r[k] for r in rows) for k in ("totalAmount", "gpuAmount", "cpuAmount", "diskAmount")}
        return 200, {"records": records, "metadata": {"query": {**span, "bucketSize": q.get("bucketSize", "day"),
                                                                 "podId": q.get("podId")},
                                                       "recordCount": len(records),
                                                       "uniquePodCount": len({r["podId"] for r in rows}),
                                                       "totals": totals}}

    def pod_state(self, pod_id: str) -> str:
        """RUNNING, EXITED, TERMINATED, or '' for a pod never made."""
        with self.lock:
            if pod_id in self.pods:
                return self.pods[pod_id].desired
            return "TERMINATED" if pod_id in self.terminated else ""

    # -- GraphQL --

    def graphql(self, auth: str, path: str, raw: bytes) -> tuple[int, dict]:
        with self.lock:
            self.counts["requests"] += 1
        if self.faults.get("down") or self.inflight.down():
            return 503, {"errors": [{"message": "Service Unavailable"}]}
        key = auth[7:] if auth.startswith("Bearer ") else ""
        if not key and "api_key=" in path:
            key = path.split("api_key=", 1)[1].split("&")[0]
        pod = None
        if key != self.api_key:
            with self.lock:
                pod = next((p for p in self.pods.values() if p.key == key), None)
            if pod is None:
                return 401, {"errors": [{"message": "Unauthorized"}]}
        try:
            body = json.loads(raw or b"{}")
            op, fields = parse(body.get("query") or "", body.get("variables"))
            validate(fields, SCHEMA.get(op, {}), "Mutation" if op == "mutation" else "Query")
            check_arguments(op, fields)
            if pod is not None and not all(f.name in SCOPED.get(op, ()) and isinstance(f.args.get("input"), dict)
                                           and f.args["input"].get("podId") == pod.id for f in fields):
                return 403, {"errors": [{"message": f"this key may act only on pod {pod.id}"}]}
            data = {}
            for f in fields:
                resolver = (MUTATIONS if op == "mutation" else QUERIES).get(f.name)
                if resolver is None:
                    kind = "Mutation" if op == "mutation" else "Query"
                    raise GraphQLError(f'Cannot query field "{f.name}" on type "{kind}".', 400)
                value, type_name = resolver(self, f.args)
                data[f.alias] = project(value, f.selections, type_name)
            wrong, shape = replies.wrong_shape(self.faults, fields[0].name if fields else "")
            if wrong:  # carried out, then answered in the wrong shape
                return 200, shape
            return 200, {"data": data}
        except GraphQLError as e:
            return e.status, {"errors": [{"message": str(e), "path": []}], "data": None}
        except ValueError as e:
            return 400, {"errors": [{"message": f"bad request: {e}"}]}

    def _gpu(self, gpu_id: str) -> tuple | None:
        return next((g for g in GPU_TYPES if g[0] == gpu_id), None)

    def _no_capacity(self, gpu_id: str, fault: str = "no_capacity") -> bool:
        nc = self.faults.get(fault)
        return nc is True or (isinstance(nc, list) and gpu_id in nc)

    def _gpu_type(self, g: tuple) -> dict:
        gpu_id, display, mem, community, secure = g

        def lowest(input: dict | None = None) -> dict:
            # GpuLowestPriceInput with gpuCount: the official clients always send it (the SDK
            # `lowestPrice(input: {gpuCount: N})`, runpodctl a `GpuLowestPriceInput!` variable
            # whose gpuCount is never left out); without it RunPod answers an error, not prices.
            if not isinstance(input, dict) or not isinstance(input.get("gpuCount"), int):
                raise GraphQLError('lowestPrice needs input: {gpuCount: Int} (GpuLowestPriceInput)')
            for name in set(input) - LOWEST_PRICE_INPUT:
                raise GraphQLError(f'Field "{name}" is not defined by type "GpuLowestPriceInput".', 400)
            count = input["gpuCount"]
            cloud = input.get("secureCloud")  # true: the secure cloud, false: community, null: both
            clouds = [("SECURE", secure), ("COMMUNITY", community)]
            prices = [p for name, p in clouds if p and cloud in (None, name == "SECURE")
                      and not self._no_capacity(f"{gpu_id}@{name}", "sold_out")]
            # a machine holds at most 8 GPUs: more of them at once is never to be had
            avail = bool(prices) and count <= 8 and not self._no_capacity(gpu_id, "sold_out")
            return {"minimumBidPrice": round(min(prices) * 0.6, 3) if avail and community else None,
                    "uninterruptablePrice": min(prices) if avail else None,
                    "stockStatus": "High" if avail else None, "gpuCount": count,
                    # no machine to be had: no sizes either (runpodctl skips such a type)
                    "gpuName": display, "gpuTypeId": gpu_id, "minMemory": 62 if avail else None,
                    "minVcpu": 8 if avail else None, "compliance": None,
                    "maxUnreservedGpuCount": 8 if avail else 0,
                    "availableGpuCounts": [1, 2, 4, 8] if avail else []}

        return {"id": gpu_id, "displayName": display, "memoryInGb": mem, "manufacturer": "Nvidia",
                "cudaCores": 0, "maxGpuCount": 8, "secureCloud": bool(secure), "communityCloud": bool(community),
                "securePrice": secure, "communityPrice": community, "oneMonthPrice": None,
                "threeMonthPrice": None, "sixMonthPrice": None, "oneWeekPrice": None, "communitySpotPrice": None,
                "maxGpuCountSecureCloud": 8 if secure else 0, "maxGpuCountCommunityCloud": 8 if community else 0,
                "minPodGpuCount": 1,
                "secureSpotPrice": None, "lowestPrice": lowest}

    def q_gpu_types(self, args: dict):
        want = (args.get("input") or {}).get("id")
        return [self._gpu_type(g) for g in GPU_TYPES if want is None or g[0] == want], "GpuType"

    def q_myself(self, args: dict):
        with self.lock:
            now = time.monotonic()  # list_lag: a new pod is listed only so long after
            pods = [p.render() for p in self.pods.values() if p.listed_at <= now]
        return {"id": "user-fake", "email": "fake@example.com", "pods": pods, "pubKey": self.pub_key,
                "networkVolumes": [], "clientBalance": 100.0}, "User"

    def q_pod(self, args: dict):
        pod_id = (args.get("input") or {}).get("podId")
        with self.lock:
            pod = self.pods.get(pod_id)
            return (pod.render() if pod else None), "Pod"

    def m_deploy(self, args: dict):
        spec = args.get("input") or {}
        for k in ("imageName", "gpuTypeId"):
            if not spec.get(k):
                raise GraphQLError(f'Field "PodFindAndDeployOnDemandInput.{k}" of required type was not provided.', 400)
        gpu = self._gpu(spec["gpuTypeId"])
        cloud = spec.get("cloudType") or "ALL"
        clouds = [c for c, price in (("SECURE", gpu[4]), ("COMMUNITY", gpu[3])) if price and cloud in ("ALL", c)
                  and not self._no_capacity(f"{gpu[0]}@{c}", "sold_out")] if gpu else []
        if not clouds or self._no_capacity(spec["gpuTypeId"]) or int(spec.get("gpuCount") or 1) > 8:
            raise GraphQLError(CAPACITY_ERROR)  # (none in the cloud asked for either)
        if not spec.get("name"):
            spec["name"] = spec["imageName"]
        env = spec["env"] = list(spec.get("env") or [])  # runpodctl sends env: null for none
        spec["sentEnv"] = [e.get("key") for e in env]  # for tests: what the client itself sent
        if self.pub_key and spec.get("startSsh") and not any(e.get("key") == "PUBLIC_KEY" for e in env):
            # RunPod puts the account's keys in PUBLIC_KEY of a pod made with startSsh (its docs:
            # "keys take effect for pods created afterwards with startSsh"); a PUBLIC_KEY the
            # create sets overrides them; the image's start script appends it to authorized_keys
            env.append({"key": "PUBLIC_KEY", "value": self.pub_key})
        pod_id = secrets.token_hex(7)[:14]
        pod = Pod(self, pod_id, spec, gpu)
        with self.lock:
            self.pods[pod_id] = self.made[pod_id] = pod
            self.counts["creates"] += 1
            garble, count = str(self.faults.get("garble_create") or ""), int(self.faults.get("garble_count", 1))
            if garble and count != 0:
                if count > 0:
                    count -= 1
                    self.faults.update(garble_count=count or 1, garble_create=garble if count else "")
            else:
                garble = ""
            name = "fail_after_create" if self.faults.get("fail_after_create") else "fail_create"
            failing = int(self.faults.get(name) or 0)
            if failing and garble != "500":
                self.faults[name] = failing - 1
            # from here until the answer has gone out, the create counts in `creating`
            self.request.plan = self.inflight.made(float(self.faults.get("slow_create") or 0), garble,
                                                   float(self.faults.get("down_after_create") or 0))
        pod.boot()
        if failing or garble == "500":
            raise GraphQLError("Something went wrong. Please try again later or contact support.", 500)
        return pod.render(), "Pod"

    def _find(self, args: dict) -> Pod:
        pod_id = (args.get("input") or {}).get("podId")
        with self.lock:
            pod = self.pods.get(pod_id)
        if pod is None:
            raise GraphQLError("Pod not found")  # the wording is the fake's own
        return pod

    def m_rent_spot(self, args: dict):
        spec = args.get("input") or {}
        bid = spec.get("bidPerGpu")
        if not isinstance(bid, (int, float)) or bid <= 0:
            raise GraphQLError("bidPerGpu must be more than 0")  # the fake's own wording
        gpu = self._gpu(spec.get("gpuTypeId") or "")
        lowest = self._gpu_type(gpu)["lowestPrice"]({"gpuCount": int(spec.get("gpuCount") or 1)}) if gpu else {}
        if not lowest.get("minimumBidPrice"):
            raise GraphQLError(CAPACITY_ERROR)
        if bid < lowest["minimumBidPrice"]:
            raise GraphQLError(f"Your bid is below the minimum bid of {lowest['minimumBidPrice']}")
        return self.m_deploy(args)

    def m_stop(self, args: dict):
        pod = self._find(args)
        if pod.desired == "RUNNING":
            pod.set_desired("EXITED")
            pod.last_change = f"Exited by User: {time.strftime('%a %b %d %Y %H:%M:%S GMT+0000', time.gmtime())}"
            pod.halt()
        return pod.render(), "Pod"

    def preempt(self, pod_id) -> tuple[int, dict]:
        with self.lock:
            pod = self.pods.get(pod_id) if isinstance(pod_id, str) else None
        if pod is None or pod.spec.get("bidPerGpu") is None or pod.desired != "RUNNING":
            return 400, {"errors": [{"message": "preempt takes a running spot pod's id"}]}
        pod.set_desired("EXITED")
        pod.last_change = f"Reclaimed by RunPod: {time.strftime('%a %b %d %Y %H:%M:%S GMT+0000', time.gmtime())}"
        pod.halt()
        return 200, {"success": True}

    def m_resume(self, args: dict):
        pod = self._find(args)
        count = args["input"].get("gpuCount")  # runpodctl leaves it out: the pod's own count
        if self._no_capacity(pod.gpu[0]) or (count or 0) > 8:
            raise GraphQLError("There are not enough free GPUs on the host machine to start this pod.")
        if count is not None and pod.desired != "RUNNING":
            pod.spec["gpuCount"] = count  # resumed with that many GPUs (the SDK sends its count)
        if pod.desired != "RUNNING":
            pod.set_desired("RUNNING")
            pod.boot()
        return pod.render(), "Pod"

    def m_user_settings(self, args: dict):
        settings = args.get("input") or {}
        if "pubKey" in settings:
            self.pub_key = str(settings["pubKey"] or "")
        return {"id": "user-fake", "pubKey": self.pub_key}, "UserSettings"

    def m_terminate(self, args: dict):
        pod = self._find(args)
        pod.set_desired("TERMINATED")
        pod.halt()
        with self.lock:
            self.pods.pop(pod.id, None)
            self.terminated[pod.id] = {"name": pod.spec.get("name"), "env": pod.env}
            self.billed[pod.id] = pod.billing(time.time())
        shutil.rmtree(pod.dir, ignore_errors=True)
        return None, "Void"


# What a pod's own RUNPOD_API_KEY may do: act on that pod alone ("Used to make RunPod API calls to
# the specific pod. It's limited in scope to only the pod": runpod/docs
# pods/references/environment-variables.mdx), as `runpodctl stop pod $RUNPOD_POD_ID` and
# `runpodctl remove pod $RUNPOD_POD_ID` do from inside it (pods/manage-pods.mdx). The wording
# of the refusal is the fake's own.
SCOPED = {"query": ("pod",), "mutation": ("podStop", "podResume", "podTerminate")}

QUERIES = {"gpuTypes": FakeRunPod.q_gpu_types, "myself": FakeRunPod.q_myself, "pod": FakeRunPod.q_pod}
MUTATIONS = {"podFindAndDeployOnDemand": FakeRunPod.m_deploy, "podRentInterruptable": FakeRunPod.m_rent_spot,
             "podStop": FakeRunPod.m_stop,
             "podResume": FakeRunPod.m_resume, "podTerminate": FakeRunPod.m_terminate,
             "updateUserSettings": FakeRunPod.m_user_settings}


@contextlib.contextmanager
def serving(api_key: str | None = None, **faults):
    """A fake on a free loopback port; every pod's sshd is stopped on the way out."""
    fake = FakeRunPod(api_key or f"rpa_{secrets.token_hex(16)}", faults=faults).start()
    try:
        yield fake
    finally:
        fake.stop()


def _poll(state, done, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = state()
        if done(s):
            return s
        if time.monotonic() > deadline:
            raise TimeoutError(f"the fake: no {what} within {timeout} s: {s}")
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A fake RunPod GraphQL API whose pods are real sshd on loopback.")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", required=True)
    p.add_argument("--no-capacity", action="store_true", help="every create answers the capacity error")
    p.add_argument("--fail-create", type=int, default=0, metavar="N",
                   help="the next N creates make the pod, then answer 500")
    p.add_argument("--start-delay", type=float, default=0.0, metavar="S", help="seconds before a pod's sshd starts")
    p.add_argument("--ssh-delay", type=float, default=0.0, metavar="S",
                   help="seconds from runtime showing until logins work")
    p.add_argument("--down", action="store_true", help="every API call answers 503")
    p.add_argument("--slow-create", type=float, default=0.0, metavar="S", help="seconds a create holds its answer")
    p.add_argument("--garble-create", default="", choices=("",) + GARBLES,
                   help="the next create(s) make the pod, then damage the answer so")
    p.add_argument("--garble-count", type=int, default=1, metavar="N", help="creates --garble-create damages (<0: all)")
    p.add_argument("--list-lag", type=float, default=0.0, metavar="S", help="seconds before a new pod is listed")
    p.add_argument("--down-after-create", type=float, default=0.0, metavar="S",
                   help="seconds every other call answers 503 after a create")
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help="seconds before each answer")
    p.add_argument("--trickle", type=float, default=0.0, metavar="S", help="seconds between the bytes of each answer")
    p.add_argument("--retry-after", type=float, default=0.0, metavar="S",
                   help="every call answers 429 with this Retry-After")
    p.add_argument("--bad-status", action="store_true", help="every answer has a broken status line")
    p.add_argument("--garble-reply", default="", choices=("",) + replies.GARBLES, help="damage every answer so")
    a = p.parse_args(argv)
    faults = {"no_capacity": a.no_capacity, "fail_create": a.fail_create, "start_delay": a.start_delay,
              "ssh_delay": a.ssh_delay,
              "down": a.down, "slow_create": a.slow_create, "garble_create": a.garble_create,
              "garble_count": a.garble_count, "list_lag": a.list_lag, "down_after_create": a.down_after_create,
              "delay": a.delay, "trickle": a.trickle, "retry_after": a.retry_after, "bad_status": a.bad_status,
              "garble_reply": a.garble_reply}
    fake = FakeRunPod(a.api_key, a.port, faults).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"fake RunPod API on {fake.url} (RUNPOD_API_BASE_URL={fake.url})", flush=True)
    while not done.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
