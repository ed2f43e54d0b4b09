"""The Python recipe API (`import trainsh as ts`): a job, its hosts, sessions, storages and
transfers, and what their calls return or raise.

Every call that does something builds the step a `.recipe` line would parse to
(recipe/model.py), placed at the program's file:line, and hands it to the job's engine
(engine.py), which runs it through the DSL's own handler with the job's Context: the journal,
logs, live view, masking, exit codes and host-side waits are the DSL's. This module only builds
steps and turns journal rows into results; it never runs anything itself.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from trainsh import masking
from trainsh.kinds import spec_problem
from trainsh.kinds.slurm import option_problem
from trainsh.recipe import model as m
from trainsh.recipe.parser import CLOUD_OPTIONS, PICK_OPTIONS, SLURM_WAIT_OPTIONS, parse as parse_recipe

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the trainsh package
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")  # a host, session or storage name (the DSL's)
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Secret names a program asked for: the engine keeps them out of the tmux servers it starts,
# as it keeps a recipe's ${secret:NAME} names (Context.hidden_env).
NAMED: set[str] = set()


# ---- errors --------------------------------------------------------------------------------

class StepFailed(Exception):
    """A step did not do what it should, in the DSL's words (`command exited with code 3`).
    Uncaught, it fails the job as the DSL's failed step does."""

    def __init__(self, message: str, exit_code: int | None = None, output: str = "",
                 step: str = "", at: str = ""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.output = masking.mask(output)
        self.step = step  # the step as the DSL would write it
        self.at = at  # file:line of the call
        self.duration = 0.0

    def tail(self, n: int = 15) -> str:
        return "\n".join(self.output.splitlines()[-n:])


class Timeout(StepFailed):
    """A command or wait ran out of time (`command timed out after 30s ...`)."""


class HostLost(StepFailed):
    """A machine a call worked on was lost (its cloud no longer runs it, or ssh has not reached
    it for cloud.lost_after; an allocation ended from outside). `host` is the host as it was,
    `why` the cloud's word for it. With recover=N left on its pick, the pick has run again
    (journaled, under its own label) and `replaced_by` is the host on the new machine: open
    its sessions again and go on. With none left, `replaced_by` is None; uncaught, it fails the
    job as the recipe language's recovery does."""

    def __init__(self, message: str, exit_code: int | None = None, output: str = "", step: str = "",
                 at: str = "", host: Host | None = None, why: str = "", replaced_by: Host | None = None):
        super().__init__(message, exit_code, output, step, at)
        self.host = host
        self.why = why
        self.replaced_by = replaced_by


class ChildFailed(StepFailed):
    """A child job of job.parallel that failed: `job` is its id (JOB/2), `kind` what ended it
    (StepFailed, Timeout, or the name of the exception fn raised), `exit_code` that of its
    failed command. A resume that replays the child gives the same exception."""

    def __init__(self, message: str, exit_code: int | None = None, job: str = "", kind: str = ""):
        super().__init__(message, exit_code)
        self.job = job
        self.kind = kind


# ---- values --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """A command that ended: exit code, its output (masked) and how long it ran."""

    exit_code: int
    output: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, n: int = 5) -> str:
        return "\n".join(self.output.splitlines()[-n:])


class Secret:
    """`ts.secret("NAME")`: the program never holds the value. In a command, a notification or
    anywhere text goes it stands as `${secret:NAME}`, which the engine expands exactly as the
    DSL does (into the command's environment, masked in every output and record)."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            raise ValueError(f"bad secret name {name!r}: letters, digits and _ (like HF_TOKEN)")
        self.name = name
        NAMED.add(name)

    def __str__(self) -> str:
        return "${secret:" + self.name + "}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"ts.secret({self.name!r})"

    def __add__(self, other: str) -> str:
        return str(self) + other

    def __radd__(self, other: str) -> str:
        return other + str(self)


def secret(name: str) -> Secret:
    return Secret(name)


@dataclass(frozen=True)
class Where:
    """A path on a host or storage (`host.path("/x")`), for job.copy."""

    name: str
    path: str

    def __str__(self) -> str:
        return f"@{self.name}:{self.path}"


# ---- what the API needs of the engine ------------------------------------------------------

# The engine of the child job this thread runs (job.parallel), if any: a call made there goes to
# the child, even on an object the parent made (a host defined in main, the parent's job).
CURRENT = threading.local()


class Engine(Protocol):
    job_id: str

    def step(self, step: m.Step, at: str, extra: tuple = ()) -> dict: ...
    def value(self, kind: str, at: str, source: str, make) -> Any: ...
    def define(self, what: str, name: str, spec: str) -> str: ...
    def output(self, row: dict) -> str: ...
    def parallel(self, fn, items: list, max_workers: int, fail_fast: bool, at: str, source: str) -> list: ...
    def include(self, path: str, variables: dict[str, str], at: str) -> None: ...


def caller() -> tuple[str, int]:
    """file:line of the program's call: the first frame outside this package."""
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(HERE + os.sep):
        f = f.f_back
    if f is None:
        return "<program>", 1
    return os.path.basename(f.f_code.co_filename), f.f_lineno


def _at() -> tuple[str, m.Pos]:
    file, line = caller()
    return f"{file}:{line}", m.Pos(line, 1)


def _duration(value, what: str) -> m.Duration | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: give seconds or a duration like '5m', not {value!r}")
    try:
        d = m.Duration.parse(value) if isinstance(value, str) else m.Duration.of(value)
    except ValueError as e:
        raise ValueError(f"{what}={value!r}: {e}") from None
    if d.seconds <= 0:
        raise ValueError(f"{what}={value!r}: must be more than 0")
    return d


def _text(value, what: str) -> str:
    if isinstance(value, Secret):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, not {type(value).__name__}")
    return value


def _name(value, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ValueError(f"bad {what} name {value!r}: a letter or _, then letters, digits, _ or -")
    return value


def _named_after(spec: str, what: str) -> str:
    """A name from a spec: the spec itself when it is one (`local`, a hosts.toml name)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", spec).strip("-") or what
    return name if NAME.match(name) else f"{what[0]}-{name}"


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""


# ---- the job -------------------------------------------------------------------------------

class Job:
    """What `main(job, ...)` gets: the running job."""

    def __init__(self, engine: Engine):
        self._own = engine

    @property
    def _engine(self) -> Engine:
        return getattr(CURRENT, "engine", None) or self._own

    @property
    def id(self) -> str:
        return self._engine.job_id

    def parallel(self, fn, items, *, max_workers: int = 4, fail_fast: bool = False) -> list:
        """Run `fn(child_job, item)` for each item, up to `max_workers` at a time, each in its
        own thread as a child job (JOB/1, JOB/2, ...) with its own steps, sessions and journal.
        Returns a list in item order: what each fn returned (as JSON keeps it), or the
        ts.ChildFailed of a child that failed; with fail_fast=True the first failure stops
        the others before their next call and is raised instead. A resume gives finished
        children their journaled results and resumes the others."""
        items = list(items)
        if not callable(fn):
            raise ValueError("job.parallel(fn, items): fn is the function each child runs")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers={max_workers!r}: a whole number, 1 or more")
        at, _ = _at()
        source = (f"parallel {getattr(fn, '__name__', 'fn')} over {len(items)} item"
                  f"{'s' if len(items) != 1 else ''}, {max_workers} at a time" + (" fail_fast" if fail_fast else ""))
        return self._engine.parallel(fn, items, max_workers, bool(fail_fast), at, source)

    def include(self, path, vars: dict | None = None) -> None:
        """Run a `.recipe` file's steps as part of this job (a path beside the program), each
        journaled and replayed as a call; `vars` give its variables (over its `var` lines)."""
        path = os.fspath(path) if isinstance(path, os.PathLike) else _text(path, "a recipe path")
        given = {}
        for k, v in (vars or {}).items():
            if not isinstance(k, str) or not SECRET_NAME.match(k):
                raise ValueError(f"bad variable name {k!r}: letters, digits and _")
            given[k] = str(v) if isinstance(v, (Secret, int, float)) and not isinstance(v, bool) \
                else _text(v, f"variable {k}")
        at, _ = _at()
        self._engine.include(path, given, at)

    def host(self, spec: str, name: str | None = None) -> Host:
        """A host by any spec a recipe's `host NAME = SPEC` takes: `local`, `user@box -p 2222`,
        a hosts.toml name, `vast:ID`, ... Named after its spec unless `name` is given;
        `--host NAME=SPEC` on the command line puts another machine in its place."""
        spec = _text(spec, "a host spec").strip()
        problem = spec_problem(spec) if spec != "local" else None
        if problem:
            raise ValueError(f"host spec {spec!r}: {problem[1]}")
        name = _name(name if name is not None else _named_after(spec, "host"), "host")
        return Host(self, name, self._engine.define("host", name, spec))

    def storage(self, spec: str, name: str | None = None) -> Storage:
        """A storage by any spec a recipe's `storage NAME = SPEC` takes (a storages.toml name,
        `s3:bucket/prefix`, ...)."""
        spec = _text(spec, "a storage spec").strip()
        if not spec:
            raise ValueError("a storage spec is empty")
        name = _name(name if name is not None else _named_after(spec, "storage"), "storage")
        self._engine.define("storage", name, spec)
        return Storage(name, spec)

    def copy(self, src, dst, *, delete: bool = False, exclude: tuple[str, ...] | list[str] = ()) -> str:
        """Copy files (the DSL's `SRC -> DST`): local paths as text, `host.path(...)`,
        `storage.path(...)`. Returns the transfer's summary."""
        at, pos = _at()
        a, b = _endpoint(src, pos), _endpoint(dst, pos)
        excludes = tuple(_text(x, "an exclude pattern") for x in exclude)
        source = f"{a} -> {b}" + (" delete" if delete else "") + "".join(f" exclude={x}" for x in excludes)
        row = self._engine.step(m.Transfer(pos, source, a, b, bool(delete), excludes), at)
        return str(row["detail"].get("summary", ""))

    def notify(self, text) -> None:
        text = _text(text, "a notification")
        at, pos = _at()
        self._engine.step(m.Notify(pos, f"notify {_quote(_first_line(text))}", text), at)

    def sleep(self, duration) -> None:
        d = _duration(duration, "sleep")
        if d is None:
            raise ValueError("sleep needs a duration")
        at, pos = _at()
        self._engine.step(m.Sleep(pos, f"sleep {d}", d), at)

    def pick(self, name: str = "gpu", *, clouds: list[str] | tuple[str, ...] | str | None = None,
             gpu: str | None = None, num_gpus: int | None = None, min_gpu_ram: float | None = None,
             max_dph: float | None = None, limit: int | None = None, recover: int | None = None) -> Host:
        """The cheapest matching machine per GPU hour over several clouds for host `name` (the
        language's `pick @name clouds=vast,runpod ...`); `clouds` defaults to every cloud set
        up. recover=N: the job survives losing its machine N times (ts.HostLost)."""
        _name(name, "host")
        if clouds is not None and not isinstance(clouds, str):
            clouds = ",".join(_text(c, "a cloud name") for c in clouds)
        opts = _options("pick", PICK_OPTIONS, clouds=clouds, gpu=gpu, num_gpus=num_gpus,
                        min_gpu_ram=min_gpu_ram, max_dph=max_dph, limit=limit, recover=recover)
        self._engine.define("host", name, "placeholder")
        at, pos = _at()
        source = " ".join([f"pick @{name}", *(f"{k}={v}" for k, v in opts)])
        row = self._engine.step(m.Pick(pos, source, name, opts), at)
        return Host(self, name, spec_of(row))

    @property
    def slurm(self) -> Slurm:
        return Slurm(self)

    @property
    def vast(self) -> Cloud:
        return Cloud(self, "vast")

    @property
    def runpod(self) -> Cloud:
        return Cloud(self, "runpod")

    def now(self) -> float:
        """The time, journaled: a resumed program gets the same value here as the first run."""
        at, _ = _at()
        import time

        return float(self._engine.value("now", at, "job.now()", time.time))


def _options(word: str, allowed: dict, **options) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE options of statement `word` as the language writes them, each checked by its
    table (the parser's); a None is left out."""
    opts = []
    for key, value in options.items():
        if value is None:
            continue
        if key not in allowed:
            known = ", ".join(f"{k}=" for k in allowed)
            raise ValueError(f"{word} takes no {key}= (known: {known})")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        problem = allowed[key](text)
        if problem:
            raise ValueError(f"{word} {key}={value!r}: takes {problem}")
        opts.append((key, text))
    return tuple(opts)


def spec_of(row: dict, cloud: str | None = None) -> str:
    """The spec of the machine a pick or slurm.alloc step gave its host, from its journal row."""
    d = row["detail"]
    if d.get("instance"):
        return f"{d.get('cloud') or cloud}:{d['instance']}"
    if d.get("job") and d.get("login"):
        return f"slurm:{d['login']}?job={d['job']}"
    return str(d.get("kept", ""))


def _endpoint(value, pos: m.Pos) -> m.Endpoint:
    if isinstance(value, Where):
        return m.Endpoint(value.path, value.name, pos)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    return m.Endpoint(_text(value, "a path"), None, pos)


class Cloud:
    """A cloud's steps (`job.vast`, `job.runpod`): the DSL's `vast.pick @gpu ...`, `.wait`,
    `.start`, `.stop`, `.cost`, with the machines a job holds looked after as a recipe's are."""

    def __init__(self, job: Job, name: str):
        self._job = job
        self.name = name

    def _step(self, action: str, host: str | None = None, instance: str | None = None, **options) -> dict:
        word = f"{self.name}.{action}"
        opts = _options(word, CLOUD_OPTIONS[word], **options)
        at, pos = _at()
        words = [word, *([f"@{host}"] if host else []), *([instance] if instance else []),
                 *(f"{k}={v}" for k, v in opts)]
        step = m.Cloud(pos, " ".join(words), self.name, action, host, instance, tuple(opts))
        return self._job._engine.step(step, at)

    def pick(self, name: str = "gpu", *, gpu: str | None = None, num_gpus: int | None = None,
             min_gpu_ram: float | None = None, max_dph: float | None = None,
             limit: int | None = None, recover: int | None = None, bid: float | None = None,
             interruptible: bool | None = None, spot: bool | None = None) -> Host:
        """A machine for host `name`: the user's matching instance, else the cheapest matching
        offer, rented as the job's (on a terminal, chosen from a list). --host NAME=SPEC gives
        it one instead, and nothing is picked. `interruptible=True` (Vast) or `spot=True`
        (RunPod) rents on a bid (`bid=` USD/h, else the cheapest bid and the margin);
        recover=N: the job survives losing its machine N times (ts.HostLost)."""
        _name(name, "host")
        if not interruptible:  # (False is no option: the language's default)
            interruptible = None
        if not spot:
            spot = None
        options = dict(gpu=gpu, num_gpus=num_gpus, min_gpu_ram=min_gpu_ram, max_dph=max_dph,
                       limit=limit, recover=recover, interruptible=interruptible, spot=spot, bid=bid)
        _options(f"{self.name}.pick", CLOUD_OPTIONS[f"{self.name}.pick"], **options)  # (before defining)
        self._job._engine.define("host", name, "placeholder")
        row = self._step("pick", name, **options)
        return Host(self._job, name, spec_of(row, self.name))

    def wait(self, *, timeout=None, poll=None, stop_on_fail: bool = False) -> None:
        """Until the job's last machine of this cloud runs and answers ssh."""
        self._step("wait", timeout=_duration(timeout, "timeout"), poll=_duration(poll, "poll"),
                   stop_on_fail=True if stop_on_fail else None)

    def start(self, instance: str | None = None) -> None:
        self._step("start", instance=instance)

    def stop(self, instance: str | None = None) -> None:
        self._step("stop", instance=instance)

    def cost(self, instance: str | None = None) -> None:
        self._step("cost", instance=instance)


class Host:
    def __init__(self, job: Job, name: str, spec: str):
        self._job = job
        self.name = name
        self.spec = spec

    def __repr__(self) -> str:
        return f"<host {self.name} = {self.spec}>"

    def open(self, name: str) -> Session:
        """A tmux session on this host (the DSL's `tmux.open @host as NAME`)."""
        _name(name, "session")
        at, pos = _at()
        engine = self._job._engine
        if engine is not self._job._own:  # a host of the parent's, in a child: the child's too
            engine.define("host", self.name, self.spec)
        engine.step(m.TmuxOpen(pos, f"tmux.open @{self.name} as {name}", self.name, name), at,
                    (self.spec,))
        return Session(self._job, name, self)

    def path(self, path: str) -> Where:
        return Where(self.name, _text(path, "a path"))

    def _kind(self) -> str:
        return self.spec.split(":", 1)[0] if ":" in self.spec else ""

    def _cloud(self, action: str) -> dict:
        if self._kind() not in m.CLOUDS:
            raise ValueError(f"host {self.name} ({self.spec}) is no cloud machine: {action} needs one")
        return Cloud(self._job, self._kind())._step(action, instance=self.spec.split(":", 1)[1])

    def wait(self, *, timeout=None, poll=None, keep: bool = False, stop_on_fail: bool = False) -> None:
        """Until the machine runs and answers: a cloud's `vast.wait` (the job's last machine of
        that cloud), or for an allocation `slurm.wait @NAME` (keep=True: a failed wait leaves
        the allocation queued)."""
        if self._kind() == "slurm":
            Slurm(self._job)._step("wait", self.name, timeout=_duration(timeout, "timeout"),
                                   poll=_duration(poll, "poll"), keep=True if keep else None)
            return
        if self._kind() not in m.CLOUDS:
            raise ValueError(f"host {self.name} ({self.spec}) is no cloud machine or allocation to wait for")
        Cloud(self._job, self._kind())._step("wait", timeout=_duration(timeout, "timeout"),
                                             poll=_duration(poll, "poll"),
                                             stop_on_fail=True if stop_on_fail else None)

    def start(self) -> None:
        """Start the cloud machine (`vast.start ID`)."""
        self._cloud("start")

    def stop(self) -> None:
        """Stop the cloud machine (`vast.stop ID`); its disk stays."""
        self._cloud("stop")

    def cost(self) -> None:
        """Say what the cloud machine cost so far (`vast.cost ID`)."""
        self._cloud("cost")

    def release(self) -> None:
        """Give the allocation back (`slurm.release @NAME`); its sessions end with it."""
        if self._kind() != "slurm":
            raise ValueError(f"host {self.name} ({self.spec}) is no Slurm allocation to release")
        Slurm(self._job)._step("release", self.name)


class Slurm:
    """`job.slurm`: an allocation on a Slurm cluster as a host (the language's `slurm.alloc`)."""

    def __init__(self, job: Job):
        self._job = job

    def _step(self, action: str, host: str, name: str | None = None, **options) -> dict:
        allowed = SLURM_WAIT_OPTIONS if action == "wait" else {}
        opts = _options(f"slurm.{action}", allowed, **options)
        at, pos = _at()
        words = [f"slurm.{action}", f"@{host}", *([f"as {name}"] if name else []),
                 *(f"{k}={v}" for k, v in opts)]
        return self._job._engine.step(m.Slurm(pos, " ".join(words), action, host, name, opts), at)

    def alloc(self, login, name: str = "alloc", *, recover: int | None = None, **options) -> Host:
        """An allocation asked of the cluster whose login host is `login` (a host, or any host
        spec), as host `name`: options are Slurm's (`nodes=2`, `time="4h"`, `partition=`,
        `gpus=`, ...); recover=N: the job survives losing it N times (ts.HostLost). The host
        runs what is opened on it once the allocation is granted (`host.wait()` waits for
        that); `host.release()` gives it back, the job's end does otherwise."""
        _name(name, "host")
        if name == "local":
            raise ValueError("an allocation cannot be named local")
        login = login if isinstance(login, Host) else self._job.host(_text(login, "a login host spec"))
        opts = []
        for key, value in options.items():
            if value is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            problem = option_problem(key, text)
            if problem:
                raise ValueError(f"slurm.alloc {key}={value!r}: {problem}")
            opts.append((key, text))
        if recover is not None:
            problem = CLOUD_OPTIONS["vast.pick"]["recover"](str(recover))
            if problem:
                raise ValueError(f"slurm.alloc recover={recover!r}: takes {problem}")
            opts.append(("recover", str(recover)))
        engine = self._job._engine
        if engine is not self._job._own:
            engine.define("host", login.name, login.spec)
        engine.define("host", name, "placeholder")
        at, pos = _at()
        source = " ".join([f"slurm.alloc @{login.name} as {name}", *(f"{k}={v}" for k, v in opts)])
        row = engine.step(m.Slurm(pos, source, "alloc", login.name, name, tuple(opts)), at)
        return Host(self._job, name, spec_of(row))


class Storage:
    def __init__(self, name: str, spec: str):
        self.name = name
        self.spec = spec

    def __repr__(self) -> str:
        return f"<storage {self.name} = {self.spec}>"

    def path(self, path: str) -> Where:
        return Where(self.name, _text(path, "a path"))


class Session:
    def __init__(self, job: Job, name: str, host: Host):
        self._job = job
        self.name = name
        self.host = host

    def __repr__(self) -> str:
        return f"<session {self.name} on {self.host.name}>"

    def run(self, cmd, *, timeout=None, check: bool = True, background: bool = False) -> Result | None:
        """Run a command in the session and wait for it (the DSL's `@session > cmd`). Its
        exit code, output and duration come back as a Result; a non-zero exit raises
        StepFailed unless check=False. background=True is the DSL's `cmd &`: it returns None
        at once, and `wait(idle=True)` waits for it."""
        text = _text(cmd, "a command")
        if not text.strip():
            raise ValueError("a command is empty")
        t = _duration(timeout, "timeout")
        at, pos = _at()
        source = f"@{self.name} > {_first_line(text)}" + (" &" if background else "")
        step = m.Command(pos, source, self.name, text, bool(background), t)
        engine = self._job._engine
        try:
            row = engine.step(step, at)
        except StepFailed as e:
            if check or e.exit_code is None or isinstance(e, Timeout):
                raise
            return Result(e.exit_code, e.output, e.duration)
        if background:
            return None
        return Result(row["exit_code"] or 0, engine.output(row), took(row))

    def wait(self, pattern: str | None = None, *, file: str | None = None, port: int | str | None = None,
             idle: bool = False, timeout=None) -> str:
        """Wait for a pattern in the output of the session's command, a file, an open port, or
        (idle=True) its command's end, each on the host (the DSL's `wait @session ...`).
        Returns what matched: the line, the file, the port ("idle" for idle)."""
        given = [x for x in (pattern, file, port) if x is not None] + (["idle"] if idle else [])
        if len(given) != 1:
            raise ValueError("wait for one thing: a pattern, file=, port= or idle=True")
        t = _duration(timeout, "timeout")
        at, pos = _at()
        if pattern is not None:
            pattern = _text(pattern, "a pattern")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"bad pattern {pattern!r}: {e}") from None
            cond = _quote(pattern)
        elif file is not None:
            file = _text(file, "a file")
            cond = f"file={file}"
        elif port is not None:
            port = str(port)
            cond = f"port={port}"
        else:
            cond = "idle"
        source = f"wait @{self.name} {cond}" + (f" timeout={t}" if t else "")
        step = m.Wait(pos, source, self.name, pattern, file, port, bool(idle), t)
        row = self._job._engine.step(step, at)
        return str(row["detail"].get("found", ""))

    def close(self) -> None:
        """Close the session (the DSL's `tmux.close @session`)."""
        at, pos = _at()
        self._job._engine.step(m.TmuxClose(pos, f"tmux.close @{self.name}", self.name), at)


def parse(path) -> m.Recipe:
    """A `.recipe` file as the typed model the engine runs (recipe/model.py's Recipe: its
    definitions and steps), for tools; ValueError in one line when it does not parse."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.path.basename(path)}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return parse_recipe(text, path)
    except m.RecipeErrors as e:
        first = e.errors[0]
        more = f" (and {len(e.errors) - 1} more)" if len(e.errors) > 1 else ""
        raise ValueError(f"{first}{more}") from None


def took(row: dict) -> float:
    if row.get("ended") and row.get("started"):
        return round(row["ended"] - row["started"], 3)
    return 0.0
