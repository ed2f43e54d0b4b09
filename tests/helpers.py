"""Helpers for tests that run the real `train` command and real tmux."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

TRAIN = [sys.executable, "-m", "trainsh"]


def tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-S", os.environ["TRAINSH_TMUX_SOCKET"], *args],
                          capture_output=True, text=True)


def train(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real `train` command in a child process."""
    return subprocess.run([*TRAIN, *args], capture_output=True, text=True, input=input,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def wait_until(predicate, timeout: float = 20, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def signalled(argv: list[str], sig: int, once, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ARGV and send it `sig` as soon as `once()` is true; the process as it ended."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(once, timeout=timeout, what=f"the moment to send signal {sig}")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def interrupted(*args: str, once: Path, timeout: float = 15) -> subprocess.CompletedProcess:
    """Run `train ARGS` and press Ctrl-C (SIGINT) once the file `once` exists."""
    import signal

    return signalled([*TRAIN, *args], signal.SIGINT, once.exists, timeout)
