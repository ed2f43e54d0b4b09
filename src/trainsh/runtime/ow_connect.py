"""The first ssh connection of `ow` on an `--existing` machine, opened before the cloud answers.

A login to a cloud machine is the slowest part of a short `ow exec` (a quarter of a second or
more), and it need not wait for Python's imports or the cloud's API: the ssh command line that
reached the machine last time is remembered (`ow-endpoints.json` in the settings folder), and
started at once, as `sh -s` waiting on its stdin. Nothing is sent to it until the cloud has
said where the machine is now and the command line built from that answer is the same one;
otherwise it is closed unused. So a stale entry costs nothing but the wasted login.

This module is imported before anything else of an ow run: it needs only the standard library.
"""

from __future__ import annotations

import json
import os
import subprocess

KEEP = 50  # machines remembered


def _file() -> str:
    home = os.environ.get("TRAINSH_HOME")
    if not home:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        home = os.path.join(base, "tmux-trainsh")  # (settings/paths.py's home(), without pathlib)
    return os.path.join(os.path.expanduser(home), "ow-endpoints.json")


def _load() -> dict[str, list[str]]:
    try:
        with open(_file()) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remembered(machine: str) -> list[str] | None:
    """The ssh command line (ending in `sh -s`) that last reached `machine` (`vast:123`)."""
    argv = _load().get(machine)
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        return argv
    return None


def remember(machine: str, argv: list[str]) -> None:
    data = _load()
    if data.get(machine) == argv:
        return
    data.pop(machine, None)
    data[machine] = argv
    for old in list(data)[:-KEEP]:
        del data[old]
    path = _file()
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass  # only a cache: the next run logs in after the cloud answers


class Early:
    """An ssh connection (`sh -s`) started from a remembered command line."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.proc: subprocess.Popen | None = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)  # (Ctrl-C is ours to pass on, as for every remote call)

    @classmethod
    def start(cls, machine: str) -> Early | None:
        argv = remembered(machine)
        if argv is None:
            return None
        try:
            return cls(argv)
        except OSError:
            return None

    def take(self, argv: list[str]) -> subprocess.Popen | None:
        """The running connection, if it was started with exactly `argv` (the command line
        the cloud's answer gives now); else it is closed unused and None is returned."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if argv == self.argv and proc.poll() is None:
            return proc
        _close(proc)
        return None

    def settle(self, argv: list[str]) -> None:
        """Used only to log in: send it nothing and wait until it ends (its shared connection,
        when it made one, stays for what follows)."""
        proc = self.take(argv)
        if proc is None:
            return
        try:
            proc.communicate(timeout=30)  # (closes its stdin: `sh -s` reads nothing, ends)
        except (OSError, subprocess.TimeoutExpired):
            _close(proc)

    def discard(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _close(proc)


def _close(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
    except OSError:
        pass
    proc.communicate()
