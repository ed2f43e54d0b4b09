"""What happens in a running job, as small events for whoever watches it.

The runtime emits; the console's plain lines, the live view, notifications and the attach
view each subscribe to one `Feed`. The runner never learns who is watching: it talks to the
console, the journal tells of steps and sessions, and every event ends up here. Cloud code
reports machines as `MachineState`; transfers report `report.Progress`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class JobStarted:
    job_id: str
    recipe: str
    steps: tuple[str, ...]  # each step's source line, in order
    statuses: dict = field(default_factory=dict)  # idx -> status of steps a resumed job has run
    resumed: bool = False
    earlier: dict = field(default_factory=dict)  # idx -> (seconds, exit code) of those that ended
    said: dict = field(default_factory=dict)  # idx -> the result lines of those steps
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class JobEnded:
    job_id: str
    recipe: str
    status: str  # done | failed | interrupted
    exit_code: int
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class StepStarted:
    idx: int
    total: int
    text: str
    child: str = ""  # the child job (job.parallel) whose step it is; "" for the job's own


@dataclass(frozen=True)
class StepEnded:
    idx: int
    status: str  # done | failed | background | interrupted
    exit_code: int | None = None
    child: str = ""


@dataclass(frozen=True)
class Activity:
    """The long thing now under way (a command, a wait, a copy, a sleep), until ActivityEnded."""

    text: str
    session: str | None = None
    deadline: float | None = None  # wall-clock time it gives up, when it has a timeout
    peek: Callable[[], Any] | None = field(default=None, compare=False)  # -> recent output lines


@dataclass(frozen=True)
class ActivityText:
    text: str


@dataclass(frozen=True)
class ActivityEnded:
    pass


@dataclass(frozen=True)
class StepSaid:
    """A line a step said as its result (the machine a pick took, a cost, a notify's text),
    once the journal holds it with the step."""

    idx: int
    level: str  # ok | info | warn | plain
    text: str
    child: str = ""


@dataclass(frozen=True)
class Message:
    level: str  # step | ok | info | warn | fail | plain | output
    text: str
    label: str = ""  # a fail's own word ("failed:", "interrupted"); an output's indent


@dataclass(frozen=True)
class SessionOpened:
    name: str
    host: str
    real: str


@dataclass(frozen=True)
class SessionClosed:
    name: str


@dataclass(frozen=True)
class MachineState:
    """A machine of the job as it is now: `name` is the recipe's host it backs."""

    name: str
    provider: str
    id: str
    state: str  # starting | running | stopped | gone ...
    price_per_hour: float | None = None  # USD
    started_at: float | None = None  # wall clock, when it started running this time
    cost: float | None = None  # USD spent so far, when the cloud said so (at `at`)
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Prompting:
    """A step asks the user something on the terminal (True) or is done asking (False): a
    view that owns the screen steps aside meanwhile."""
    active: bool


class Feed:
    """Fan-out to subscribers. A subscriber that raises is dropped, never the run."""

    def __init__(self):
        self._subscribers: list[Callable[[Any], None]] = []

    def subscribe(self, fn: Callable[[Any], None]) -> None:
        self._subscribers.append(fn)

    def unsubscribe(self, fn: Callable[[Any], None]) -> None:
        if fn in self._subscribers:
            self._subscribers.remove(fn)

    def emit(self, event: Any) -> None:
        for fn in list(self._subscribers):
            try:
                fn(event)
            except Exception:
                import os

                if os.environ.get("TRAINSH_DEBUG"):
                    raise
                self.unsubscribe(fn)


class Console(Protocol):
    """What the runtime talks to while a job runs: ui/console.py's Console (plain lines, the
    live view) is the one the CLI gives. The runtime only emits; it never imports the ui."""

    feed: Feed
    visual: bool

    def emit(self, event: Any) -> None: ...
    def step(self, idx: int, total: int, text: str) -> None: ...
    def ok(self, text: str) -> None: ...
    def info(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...
    def fail(self, text: str, label: str = "failed:") -> None: ...
    def output(self, text: str, indent: str = "  | ") -> None: ...
    def plain(self, text: str) -> None: ...
    def progress(self, p, label: str = "") -> None: ...
    def live(self, text: str, peek=None, session: str | None = None, **kw: Any) -> None: ...
    def live_update(self, text: str) -> None: ...
    def live_done(self) -> None: ...
    def prompting(self) -> Any: ...
