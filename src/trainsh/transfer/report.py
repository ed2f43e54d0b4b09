"""What a transfer tells the user: progress events while it runs, and what a dry run would do.

Every kind of transfer (rsync here or on a host, rclone, a tar stream relayed through this
machine) reports progress as the same `Progress` event, in bytes, so the console line and a
live view read one thing; `str(event)` is the line shown. Sizes are in binary units throughout.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    done: int  # bytes moved so far
    total: int | None  # bytes in all, when known
    rate: float  # bytes per second, recent
    eta: float | None  # seconds left, when known

    @property
    def percent(self) -> int | None:
        return min(100, int(self.done * 100 / self.total)) if self.total else None

    def __str__(self) -> str:
        parts = [human_bytes(self.done) + (f" / {human_bytes(self.total)}" if self.total else "")]
        if self.percent is not None:
            parts.append(f"{self.percent}%")
        parts.append(f"{human_bytes(self.rate)}/s")
        if self.eta is not None:
            parts.append(f"ETA {_clock(self.eta)}")
        return "  ".join(parts)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_bytes(text: str) -> int:
    """`2.930 KiB`, `2.930Ki`, `12` -> bytes (rclone's binary units)."""
    text = text.strip().rstrip("B").rstrip("i").strip()
    unit = text[-1:].lower() if text[-1:].isalpha() else ""
    number = text[:-1] if unit else text
    return int(float(number) * _UNITS.get(unit, 1))


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Meter:
    """Byte counts as a transfer reports them -> Progress events for `sink`, with a rate of
    our own (smoothed over the last seconds), so every kind shows the same figures."""

    def __init__(self, sink, total: int | None = None, every: float = 0.0):
        self.sink = sink
        self.total = total
        self.every = every  # at most one event per this many seconds (a relay counts often)
        self._t0 = self._t = time.monotonic()
        self._done = 0
        self._rate = 0.0
        self._sent = 0.0

    def update(self, done: int, total: int | None = None, final: bool = False) -> None:
        now = time.monotonic()
        if total:
            self.total = total
        dt = now - self._t
        if dt >= 0.2:  # shorter gaps say more about pipe buffers than about the link
            rate = max(0, done - self._done) / dt
            self._rate = rate if self._t == self._t0 else 0.5 * self._rate + 0.5 * rate
            self._t, self._done = now, done
        if now - self._sent < self.every and not final:
            return
        self._sent = now
        rate = self._rate or (done / (now - self._t0) if now > self._t0 else 0.0)
        eta = (self.total - done) / rate if self.total and rate > 0 else None
        self.sink(Progress(done, self.total, rate, eta))


def listing(verb: str, size: int, copies: list[str], deletes: list[str], where: str = "") -> str:
    """A dry run's summary: counts on the first line, then the names (a screenful at most)."""
    head = f"{verb} {len(copies)} file{'s' if len(copies) != 1 else ''} ({human_bytes(size)})"
    if deletes:
        head += f" and delete {len(deletes)}"
    head += where
    rows = [f"  copy   {n}" for n in copies] + [f"  delete {n}" for n in deletes]
    room = max(10, shutil.get_terminal_size((80, 24)).lines - 4)
    if len(rows) > room:
        rows = rows[: room - 1] + [f"  ... and {len(rows) - room + 1} more"]
    return "\n".join([head, *rows])
