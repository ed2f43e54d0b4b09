"""Running processes on hosts: the one place that starts them.

Every run returns a Result (command, exit code, stdout, stderr, seconds). Output is masked for
known secrets here, so nothing above this layer can see a secret in clear by accident.
LocalShell runs on this machine; SshShell (reaching other machines) builds on the same API.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass

from trainsh import masking


@dataclass
class Result:
    command: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class ShellError(Exception):
    """A process on a host could not be run, or failed where failure was not expected."""

    def __init__(self, message: str, result: Result | None = None):
        super().__init__(message)
        self.result = result


class Shell:
    """Runs commands on one host. Subclasses set how a command line reaches the host."""

    name = "host"

    def argv_for(self, argv: list[str]) -> list[str]:
        raise NotImplementedError

    def run(self, argv: list[str], *, input: str | None = None, timeout: float | None = None,
            check: bool = False, env: dict[str, str] | None = None) -> Result:
        """Run argv on the host; stdout/stderr captured as text and masked."""
        full = self.argv_for(argv)
        shown = shlex.join(argv)
        start = time.monotonic()
        try:
            p = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout,
                               env=env, errors="replace",
                               stdin=None if input is not None else subprocess.DEVNULL)
            r = Result(masking.mask(shown), p.returncode, masking.mask(p.stdout),
                       masking.mask(p.stderr), time.monotonic() - start)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            r = Result(masking.mask(shown), -1, masking.mask(out), "", time.monotonic() - start, True)
        except FileNotFoundError as e:
            raise ShellError(f"cannot run {argv[0]!r} on {self.name}: {e.strerror}") from None
        if check and not r.ok:
            detail = (r.stderr.strip() or r.stdout.strip()).splitlines()
            why = "timed out" if r.timed_out else f"exit {r.returncode}"
            raise ShellError(f"{r.command} failed on {self.name} ({why})"
                             + (f": {detail[-1]}" if detail else ""), r)
        return r

    def script(self, text: str, **kw) -> Result:
        """Run a POSIX sh script on the host as one process (one round trip when remote)."""
        return self.run(["sh", "-c", text], **kw)

    def read_file(self, path: str, offset: int = 0) -> bytes | None:
        """The file's bytes from offset on, or None when it does not exist."""
        raise NotImplementedError

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Create or replace a file on the host, readable by its owner only (by default).
        The bytes never appear on a command line."""
        raise NotImplementedError

    def is_local(self) -> bool:
        return False


class LocalShell(Shell):
    """This machine."""

    name = "local"

    def argv_for(self, argv: list[str]) -> list[str]:
        return argv

    def read_file(self, path: str, offset: int = 0) -> bytes | None:
        try:
            with open(os.path.expanduser(path), "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return None

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        path = os.path.expanduser(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)

    def is_local(self) -> bool:
        return True
