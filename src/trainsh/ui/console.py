"""What the user sees while a job runs: one line per step, warnings, errors, a live status line.

Plain ANSI, no dependency: `train --help` and short runs stay fast. Colour and the live line
appear only on a terminal (and never with NO_COLOR or --no-visual).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

from trainsh import masking
from trainsh.recipe.model import format_seconds


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

    def _c(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _write(self, line: str) -> None:
        with self._lock:
            if self._live is not None and self.visual:
                self.stream.write("\r\x1b[2K")
            self.stream.write(masking.mask(line) + "\n")
            self.stream.flush()

    def step(self, idx: int, total: int, text: str) -> None:
        self._write(self._c("1;36", f"[{idx}/{total}]") + f" {text}")

    def ok(self, text: str) -> None:
        self._write("  " + self._c("32", "ok") + f" {text}")

    def info(self, text: str) -> None:
        self._write(f"  {text}")

    def warn(self, text: str) -> None:
        self._write("  " + self._c("33", "warning:") + f" {text}")

    def fail(self, text: str, label: str = "failed:") -> None:
        self._write(self._c("1;31", label) + f" {text}")

    def output(self, text: str, indent: str = "  | ") -> None:
        for line in text.splitlines():
            self._write(self._c("2", indent + line))

    def plain(self, text: str) -> None:
        self._write(text)

    # ---- a live status line with elapsed time, redrawn while a long step runs
    def live(self, text: str, peek=None) -> None:
        """Show `text` with a spinner and the time spent; `peek()`, when given, returns the
        latest line of the work's own output, shown after it (read at most once a second)."""
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
        with self._lock:
            if self._live is not None:
                self._live = text

    def live_done(self) -> None:
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
            with self._lock:
                if self._live is None:
                    continue
                spent = format_seconds(int(time.monotonic() - self._live_started))
                if self._peek is not None and time.monotonic() - self._peek_at >= 1.0:
                    self._peek_at = time.monotonic()
                    try:
                        self._peeked = (self._peek() or "").strip()
                    except Exception:  # a peek is a nicety; never let it break the run
                        self._peek = None
                line = f"  {frames[i % 4]} {self._live} ({spent})"
                if self._peeked:
                    line += f"  | {self._peeked}"
                width = shutil.get_terminal_size((120, 24)).columns - 1
                self.stream.write("\r\x1b[2K" + masking.mask(line)[:width])
                self.stream.flush()
            i += 1
