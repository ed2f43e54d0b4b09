"""Events of a job, fanned out to the journal, the job's log file and the console."""

from __future__ import annotations

import time
from pathlib import Path

from trainsh import masking
from trainsh.runtime.journal import Journal
from trainsh.ui.console import Console


class Events:
    def __init__(self, journal: Journal, job_id: str, log_path: Path, console: Console):
        self.journal = journal
        self.job_id = job_id
        self.log_path = log_path
        self.console = console
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "a", encoding="utf-8")

    def record(self, level: str, message: str) -> None:
        """Into the journal and the log file (not the console)."""
        message = masking.mask(message)
        self.journal.event(self.job_id, level, message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {level:<7} {message}\n")
        self._log.flush()

    def info(self, message: str, show: bool = True) -> None:
        self.record("info", message)
        if show:
            self.console.info(message)

    def warn(self, message: str) -> None:
        self.record("warning", message)
        self.console.warn(message)

    def output(self, label: str, text: str) -> None:
        """A command's output: whole in the log file, not in the journal."""
        if not text:
            return
        text = masking.mask(text)
        self._log.write("".join(f"    {label} | {line}\n" for line in text.splitlines()))
        self._log.flush()

    def close(self) -> None:
        self._log.close()
