"""Events of a job, fanned out to the journal, the job's log file and the console.

What the console shows while the job runs (ok, info and warning lines) is heard from its feed
and kept in the journal's events and the log file; a line said while a step runs (`step`, set
by the runner) is that step's result and is kept with the step too, for `recipe logs` and the
live view. So a handler only talks to the console, and what it said is never lost.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from trainsh import masking
from trainsh.runtime import feed as ev
from trainsh.runtime.journal import Journal
from trainsh.runtime.feed import Console

KEPT = {"ok": "ok", "info": "info", "warn": "warning"}  # console level -> log level


class Events:
    def __init__(self, journal: Journal, job_id: str, log_path: Path, console: Console):
        self.journal = journal
        self.job_id = job_id
        self.log_path = log_path
        self.console = console
        self.step: int | None = None  # the step now running: what is said is its result
        self._thread = threading.current_thread()  # the journal's connection is this thread's
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8")
        console.feed.subscribe(self._hear)

    def _hear(self, e) -> None:
        """A line the console shows: into the log (and the journal), and with its step."""
        if not isinstance(e, ev.Message) or self._log.closed:
            return
        in_step = self.step is not None
        if e.level not in KEPT and not (e.level == "plain" and in_step):
            return  # (a failure's lines are recorded by the runner as one error)
        text = e.text.strip()
        if threading.current_thread() is not self._thread:
            self._write(KEPT.get(e.level, "info"), masking.mask(text))
            return
        try:
            self.record(KEPT.get(e.level, "info"), text)
            if in_step:
                self.journal.step_said(self.job_id, self.step, e.level, text)
        except Exception:  # the journal is busy or gone: the run goes on, the log has it
            pass

    def record(self, level: str, message: str) -> None:
        """Into the journal and the log file (not the console)."""
        message = masking.mask(message)
        self.journal.event(self.job_id, level, message)
        self._write(level, message)

    def _write(self, level: str, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {level:<7} {message}\n")
        self._log.flush()

    def info(self, message: str, show: bool = True) -> None:
        if show:
            self.console.info(message)  # (heard back: recorded then)
        else:
            self.record("info", message)

    def warn(self, message: str) -> None:
        self.console.warn(message)  # (heard back: recorded then)

    def output(self, label: str, text: str) -> None:
        """A command's output: whole in the log file, not in the journal."""
        if not text:
            return
        text = masking.mask(text)
        self._log.write("".join(f"    {label} | {line}\n" for line in text.splitlines()))
        self._log.flush()

    def close(self) -> None:
        self.console.feed.unsubscribe(self._hear)
        self._log.close()
