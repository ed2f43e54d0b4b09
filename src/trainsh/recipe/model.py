"""The recipe language's typed model: positions, durations, definitions and steps.

Everything here is plain data. The parser builds it; the runtime reads it. Text that may hold
`$VARS` or `${secret:NAME}` is kept as written and expanded only when a step runs, so `--var`
overrides reach every step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trainsh.numbers import format_seconds, seconds


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based


# Control characters and line breaks other than `\n`: a recipe may not hold them (tab may),
# and a caret line shows each as U+FFFD.
CONTROL_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class RecipeError(Exception):
    """One mistake in a recipe, located at file:line:col."""

    def __init__(self, file: str, pos: Pos, message: str, source_line: str = ""):
        super().__init__(message)
        self.file = file
        self.pos = pos
        self.message = message
        self.source_line = source_line

    def location(self) -> str:
        return f"{self.file}:{self.pos.line}:{self.pos.col}"

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"

    def render(self) -> str:
        """The one-line error, then the source line with a caret under the spot."""
        out = str(self)
        if self.source_line:
            line = CONTROL_CHARS.sub("\ufffd", self.source_line.expandtabs(1))
            out += f"\n    {line}\n    {' ' * (self.pos.col - 1)}^"
        return out


class RecipeErrors(Exception):
    """Every mistake found in one file (the parser reports them all, not just the first)."""

    def __init__(self, errors: list[RecipeError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Duration:
    """A span of time as written (`30s`, `5m`, `1h30m`, `1.5h`, `300`)."""

    seconds: float
    text: str

    @classmethod
    def parse(cls, text: str) -> Duration:
        return cls(seconds(text), text.strip())

    @classmethod
    def of(cls, seconds: float) -> Duration:
        return cls(float(seconds), format_seconds(seconds))

    def __str__(self) -> str:
        return self.text


# ---- definitions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Definition:
    kind: str  # "var" | "host" | "storage"
    name: str
    value: str  # as written; may hold $VARS
    pos: Pos


# ---- endpoints of transfers --------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """One side of a transfer: a local path, or `@name:path` on a host or storage."""

    path: str
    name: str | None = None  # host or storage name; None for a local path
    pos: Pos = Pos(1, 1)

    def __str__(self) -> str:
        return f"@{self.name}:{self.path}" if self.name else self.path


# ---- steps -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    pos: Pos
    source: str  # the statement as written (first line), for logs and errors

    kind = "step"

    @property
    def handler_key(self) -> str:
        """The name its handler is registered under (runtime/steps.py HANDLERS)."""
        return self.kind

    @property
    def fills(self) -> tuple[str, ...]:
        """The placeholder hosts this step gives a machine to (e.g. `vast.pick @gpu`); such a
        placeholder needs no --host."""
        return ()


@dataclass(frozen=True)
class Command(Step):
    session: str
    text: str
    background: bool = False
    timeout: Duration | None = None  # None = the configured default

    kind = "command"


@dataclass(frozen=True)
class HostCommand(Step):
    """`@host > cmd` in `train exec`: runs on the host directly, without a tmux session."""

    host: str
    text: str
    timeout: Duration | None = None

    kind = "host_command"


@dataclass(frozen=True)
class Wait(Step):
    session: str
    pattern: str | None = None
    file: str | None = None
    port: str | None = None  # text, so `$PORT` can be expanded at run time
    idle: bool = False
    timeout: Duration | None = None

    kind = "wait"

    @property
    def condition(self) -> str:
        if self.pattern is not None:
            return f"pattern '{self.pattern}'"
        if self.file is not None:
            return f"file {self.file}"
        if self.port is not None:
            return f"port {self.port}"
        return "idle"


@dataclass(frozen=True)
class Transfer(Step):
    src: Endpoint
    dst: Endpoint
    delete: bool = False
    excludes: tuple[str, ...] = ()

    kind = "transfer"


@dataclass(frozen=True)
class TmuxOpen(Step):
    host: str
    name: str

    kind = "tmux.open"


@dataclass(frozen=True)
class TmuxClose(Step):
    session: str

    kind = "tmux.close"


@dataclass(frozen=True)
class TmuxConfig(Step):
    host: str

    kind = "tmux.config"


# The clouds whose machines recipes control: each has NAME.pick, .start, .stop, .wait and .cost
# steps and NAME:ID hosts (runtime/clouds.py runs them all through the Provider interface).
CLOUDS = ("vast", "runpod")


def cloud_names(text: str) -> tuple[str, ...]:
    """`vast,runpod` as the clouds it names, for the `pick` statement's `clouds=` and `train
    pick --clouds` alike; ValueError naming what is wrong (an unknown or repeated name)."""
    names = tuple(n.strip() for n in text.split(","))
    for n in names:
        if n not in CLOUDS:
            raise ValueError(f"unknown cloud '{n}' (known: {', '.join(CLOUDS)})" if n
                             else f"a comma-separated list of clouds ({', '.join(CLOUDS)})")
    if len(set(names)) != len(names):
        raise ValueError(f"a cloud named twice in '{text}'")
    return names


@dataclass(frozen=True)
class Cloud(Step):
    """A cloud control step: `vast.pick @host ...`, `vast.start [id]`, `vast.wait ...` and so on."""

    provider: str  # "vast"
    action: str  # pick | start | stop | wait | cost
    host: str | None = None
    instance: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    kind = "cloud"

    @property
    def handler_key(self) -> str:
        return f"{self.provider}.{self.action}"  # each cloud action gains support on its own

    @property
    def fills(self) -> tuple[str, ...]:
        return (self.host,) if self.action == "pick" and self.host else ()

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Pick(Step):
    """`pick @host [clouds=vast,runpod] [gpu=... num_gpus=N ...]`: the cheapest matching machine
    per GPU hour over several clouds (runtime/pick.py)."""

    host: str
    options: tuple[tuple[str, str], ...] = ()

    kind = "pick"

    @property
    def fills(self) -> tuple[str, ...]:
        return (self.host,)

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Slurm(Step):
    """`slurm.alloc @login as NAME [options]`, `slurm.wait @NAME [...]`, `slurm.release @NAME`."""

    action: str  # alloc | wait | release
    host: str  # the login host (alloc) or the allocation's host
    name: str | None = None  # the host an alloc defines
    options: tuple[tuple[str, str], ...] = ()

    kind = "slurm"

    @property
    def handler_key(self) -> str:
        return f"slurm.{self.action}"

    @property
    def fills(self) -> tuple[str, ...]:
        return (self.name,) if self.action == "alloc" and self.name else ()

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Notify(Step):
    message: str

    kind = "notify"


@dataclass(frozen=True)
class Sleep(Step):
    duration: Duration

    kind = "sleep"


@dataclass
class Recipe:
    path: str
    text: str
    definitions: dict[str, Definition] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    def of_kind(self, kind: str) -> dict[str, Definition]:
        return {n: d for n, d in self.definitions.items() if d.kind == kind}

    @property
    def variables(self) -> dict[str, str]:
        return {n: d.value for n, d in self.of_kind("var").items()}

    @property
    def hosts(self) -> dict[str, str]:
        return {n: d.value for n, d in self.of_kind("host").items()}

    @property
    def storages(self) -> dict[str, str]:
        return {n: d.value for n, d in self.of_kind("storage").items()}
