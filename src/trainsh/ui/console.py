"""What the user sees while a job runs: one line per step, warnings, errors, a live status line.

Every call becomes an event on the console's `feed` (runtime/feed.py); the plain printer here
is one subscriber, the live view (ui/live.py) another. Plain ANSI, no dependency: `train --help`
and short runs stay fast. Colour and the live line appear only on a terminal (and never with
NO_COLOR or --no-visual). While a live view holds the screen, the plain printer is quiet.
"""

from __future__ import annotations

import contextlib

import os
import shutil
import sys
import threading
import time

from trainsh import masking
from trainsh.recipe.model import format_seconds
from trainsh.runtime import feed as ev
from trainsh.visible import visible


def live_view_wanted(no_visual: bool, stream=None) -> bool:
    """The full-screen live view: only on a real terminal, never under CI or TERM=dumb."""
    stream = stream or sys.stderr
    return (not no_visual and hasattr(stream, "isatty") and stream.isatty()
            and not os.environ.get("CI") and os.environ.get("TERM", "") not in ("", "dumb"))


class Console:
    def __init__(self, stream=None, visual: bool | None = None):
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.color = tty and not os.environ.get("NO_COLOR")
        self.visual = tty if visual is None else (visual and tty)
        self._lock = threading.Lock()
        self._live: str | None = None
        self._live_started = 0.0
        self._peek = None
        self._peeked = ""
        self._peek_at = 0.0
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.feed = ev.Feed()
        self.printing = True  # False while a live view holds the screen
        self.feed.subscribe(self._print)

    def emit(self, event) -> None:
        self.feed.emit(event)

    def _print(self, e) -> None:
        """Today's plain lines, from the events."""
        if not self.printing:
            return
        if isinstance(e, ev.Message):
            if e.level == "step":
                self._write(e.text)
            elif e.level == "ok":
                self._write("  " + self._c("32", "ok") + f" {e.text}")
            elif e.level == "info":
                self._write(f"  {e.text}")
            elif e.level == "warn":
                self._write("  " + self._c("33", "warning:") + f" {e.text}")
            elif e.level == "fail":
                self._write(self._c("1;31", e.label) + f" {e.text}")
            elif e.level == "output":
                for line in e.text.splitlines():
                    self._write(self._c("2", e.label + line))
            else:
                self._write(e.text)
        elif isinstance(e, ev.StepStarted):
            of = f"/{e.total}" if e.total else ""  # (a program's steps are not known ahead)
            self._write(self._c("1;36", f"[{e.idx + 1}{of}]") + f" {e.text}")
        elif isinstance(e, ev.Activity):
            self._live_start(e.text, e.peek)
        elif isinstance(e, ev.ActivityText):
            with self._lock:
                if self._live is not None:
                    self._live = e.text
        elif isinstance(e, ev.ActivityEnded):
            self._live_stop()

    def _c(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _write(self, line: str) -> None:
        with self._lock:
            if self._live is not None and self.visual:
                self.stream.write("\r\x1b[2K")
            self.stream.write(masking.mask(line) + "\n")
            self.stream.flush()

    def step(self, idx: int, total: int, text: str) -> None:
        self.emit(ev.StepStarted(idx - 1, total, visible(text)))

    def ok(self, text: str) -> None:
        self.emit(ev.Message("ok", visible(text, lines=True)))

    def info(self, text: str) -> None:
        self.emit(ev.Message("info", visible(text, lines=True)))

    def warn(self, text: str) -> None:
        self.emit(ev.Message("warn", visible(text, lines=True)))

    def fail(self, text: str, label: str = "failed:") -> None:
        self.emit(ev.Message("fail", visible(text, lines=True), label))

    def output(self, text: str, indent: str = "  | ") -> None:
        self.emit(ev.Message("output", text, indent))

    def plain(self, text: str) -> None:
        self.emit(ev.Message("plain", visible(text, lines=True)))

    def progress(self, p, label: str = "") -> None:
        """A transfer's report.Progress; the plain live line shows it after `label`."""
        self.emit(p)
        if self.printing:
            self.emit(ev.ActivityText(f"{label}  {p}" if label else str(p)))

    # ---- a live status line with elapsed time, redrawn while a long step runs
    def live(self, text: str, peek=None, session: str | None = None,
             deadline: float | None = None) -> None:
        """Show `text` with a spinner and the time spent; `peek()`, when given, returns the
        latest lines of the work's own output, the last shown after it (read at most once a
        second). `deadline`: when the work times out (wall clock)."""
        self.emit(ev.Activity(text, session, deadline, peek))

    def _live_start(self, text: str, peek) -> None:
        if not self.visual:
            return
        with self._lock:
            self._live, self._live_started = text, time.monotonic()
            self._peek, self._peeked, self._peek_at = peek, "", 0.0
        if self._ticker is None:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def live_update(self, text: str) -> None:
        """New text for the live line, keeping its clock."""
        self.emit(ev.ActivityText(text))

    def live_done(self) -> None:
        self.emit(ev.ActivityEnded())

    @contextlib.contextmanager
    def prompting(self):
        """Around a question asked on the terminal: the live view (if any) gives the screen
        back while it is asked, and takes it again after."""
        self.emit(ev.ActivityEnded())
        self.emit(ev.Prompting(True))
        try:
            yield
        finally:
            self.emit(ev.Prompting(False))

    def _live_stop(self) -> None:
        if not self.visual:
            return
        self._stop.set()
        if self._ticker:
            self._ticker.join(1)
        self._ticker = None
        with self._lock:
            if self._live is not None:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
            self._live = None

    def _tick(self) -> None:
        frames = "|/-\\"
        i = 0
        while not self._stop.wait(0.25):
            peek = self._peek
            if peek is not None and time.monotonic() - self._peek_at >= 1.0:
                self._peek_at = time.monotonic()
                try:  # outside the lock: on a host a peek is a call over ssh
                    seen = peek() or ""
                    self._peeked = (seen[-1] if seen and isinstance(seen, list) else
                                    seen if isinstance(seen, str) else "").strip()
                except Exception:  # a peek is a nicety; never let it break the run
                    self._peek = None
            with self._lock:
                if self._live is None:
                    continue
                spent = format_seconds(int(time.monotonic() - self._live_started))
                line = f"  {frames[i % 4]} {self._live} ({spent})"
                if self._peeked:
                    line += f"  | {self._peeked}"
                width = shutil.get_terminal_size((120, 24)).columns - 1
                self.stream.write("\r\x1b[2K" + masking.mask(line)[:width])
                self.stream.flush()
            i += 1
