"""Running processes on hosts: the one place that starts them.

Every run returns a Result (command, exit code, stdout, stderr, seconds). Output is masked for
known secrets here, so nothing above this layer can see a secret in clear by accident.
LocalShell runs on this machine; SshShell (reaching other machines) builds on the same API.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

from trainsh import masking
from trainsh.remote.sshspec import SshSpec, ssh_argv, ssh_options, ssh_program


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


def kill_group(p: subprocess.Popen) -> None:
    """End a process started with start_new_session=True, and everything it started."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()


def _drain(p: subprocess.Popen) -> bytes:
    """What a killed process left in its stdout. Others may hold its pipes open (an ssh
    connection master keeps a killed client's pipes until the remote command ends), so
    this reads for a moment only, then lets go."""
    try:
        out, _ = p.communicate(timeout=1)
    except subprocess.TimeoutExpired as e:
        out = e.output
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.close()
    return out or b""


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except BrokenPipeError:
        pass  # it ended without reading: its result says why


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class Shell:
    """Runs commands on one host. Subclasses set how a command line reaches the host."""

    name = "host"

    def argv_for(self, argv: list[str]) -> list[str]:
        raise NotImplementedError

    def run(self, argv: list[str], *, input: str | bytes | None = None, timeout: float | None = None,
            check: bool = False, env: dict[str, str] | None = None, hold_stdin: bool = False) -> Result:
        """Run argv on the host; stdout/stderr captured as text and masked.

        With hold_stdin, the command's stdin stays open (after `input`) until it ends: its end
        of file tells the command that this process is gone (killed, or the connection
        dropped), for commands that watch for it (host-side waits)."""
        return self._run_once(argv, input=input, timeout=timeout, check=check, env=env,
                              hold_stdin=hold_stdin)

    def _run_once(self, argv, *, input=None, timeout=None, check=False, env=None,
                  hold_stdin=False, shown: str | None = None) -> Result:
        full = self.argv_for(argv)
        shown = shown or shlex.join(argv)
        data = input.encode() if isinstance(input, str) else input
        start = time.monotonic()
        held = None
        if hold_stdin:
            stdin, held = os.pipe()
        else:
            stdin = subprocess.PIPE if data is not None else subprocess.DEVNULL
        try:
            # Its own process group: a timeout or an interruption ends everything it started.
            p = subprocess.Popen(full, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, start_new_session=True)
        except FileNotFoundError as e:
            if held is not None:
                os.close(held)
            raise ShellError(f"cannot run {argv[0]!r} on {self.name}: {e.strerror}") from None
        finally:
            if held is not None:
                os.close(stdin)
        try:
            if held is not None:
                _write_all(held, data or b"")
                data = None
            out, err = p.communicate(data, timeout=timeout)
            r = Result(masking.mask(shown), p.returncode, masking.mask(_text(out)),
                       masking.mask(_text(err)), time.monotonic() - start)
        except subprocess.TimeoutExpired:
            kill_group(p)
            r = Result(masking.mask(shown), -1, masking.mask(_text(_drain(p))), "",
                       time.monotonic() - start, True)
        except BaseException:
            kill_group(p)
            raise
        finally:
            if held is not None:
                os.close(held)
        if check:
            self.check(r)
        return r

    def check(self, r: Result) -> None:
        """Raise ShellError, with the last line the command printed, unless it succeeded."""
        if not r.ok:
            detail = (r.stderr.strip() or r.stdout.strip()).splitlines()
            why = "timed out" if r.timed_out else f"exit {r.returncode}"
            raise ShellError(f"{r.command} failed on {self.name} ({why})"
                             + (f": {detail[-1]}" if detail else ""), r)

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


class SshError(ShellError):
    """ssh could not reach or log in to the host (not a failure of the remote command)."""


# Runs "$@" tied to its ssh session. The client holds the session's stdin open until the
# command ends, so an end of file there means the client is gone (killed at a timeout, its
# `train` killed, or the connection dropped): then the command's whole process group (sshd
# gives each session its own) gets TERM, and KILL a second later. $1 is a count of lines
# first read from stdin as exports for the command: values never go in an argv.
TIED = ('n=$1; shift; [ "$n" -gt 0 ] && eval "$(head -n "$n")"; exec 3<&0 </dev/null; '
        '( cat <&3 >/dev/null 2>&1; trap "" TERM; kill -TERM 0; sleep 1; kill -KILL 0 ) '
        '>/dev/null 2>&1 & w=$!; "$@" 3<&-; r=$?; kill $w 2>/dev/null; exit $r')

# What ssh prints when trying again cannot help.
FATAL = ("Permission denied", "Host key verification failed", "Could not resolve hostname",
          "REMOTE HOST IDENTIFICATION HAS CHANGED", "no matching host key", "Too many authentication",
          "Bad configuration option", "Bad port")


class SshShell(Shell):
    """A host reached with the user's OpenSSH client over one shared connection.

    A dropped connection (exit 255 without an authentication or host-key problem) is tried
    again with backoff, for up to `reconnect` seconds; what the remote command did is never
    retried, only reaching the host.
    """

    def __init__(self, spec, reconnect: float = 60.0, gone: str | None = None, lost=None):
        self.spec = spec if isinstance(spec, SshSpec) else SshSpec.parse(spec)
        self.name = self.spec.destination
        self.reconnect = reconnect
        self.gone = gone  # what it means when the host cannot be reached (a Colab runtime ended)
        # lost() -> (why, state) when the host will never answer again (a cloud machine
        # stopped or destroyed from outside: state "stopped" or "gone"), else None; asked when
        # a connection drops, so that is said at once instead of after the reconnect time.
        # `lost_as` keeps the answer once there was one.
        self.lost = lost
        self.lost_as: tuple[str, str] | None = None
        self._lost_asked = 0.0
        self._home: str | None = None

    def argv_for(self, argv: list[str]) -> list[str]:
        return ssh_argv(self.spec, shlex.join(argv))

    def disconnect(self) -> None:
        """End the shared connection: every call riding on it drops and, like any dropped
        call, asks `lost` before it tries again (a machine its cloud no longer runs ends them)."""
        subprocess.run([*ssh_program(self.spec), *ssh_options(self.spec), "-O", "exit",
                        self.spec.destination], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)

    def run(self, argv, *, input=None, timeout=None, check=False, env=None, hold_stdin=False) -> Result:
        # Only variables that differ from ours go along, over stdin (never in an argv,
        # where `ps` on either machine would show them).
        shown = shlex.join(argv)
        extra = {k: v for k, v in (env or {}).items() if os.environ.get(k) != v}
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in extra.items())
        if extra and input is not None:
            raise ShellError("cannot pass both input and environment to a remote command")
        if timeout is not None and input is None and not hold_stdin:
            # A timeout must stop the remote command too: killing our client alone would
            # leave it running (and the connection master would keep our pipes until it ends).
            input, hold_stdin = exports, True
            argv = ["sh", "-c", TIED, "sh", str(exports.count("\n")), *argv]
        elif extra:
            input = exports
            argv = ["sh", "-c", 'eval "$(cat)"; exec "$@"', "sh", *argv]
        delay, deadline = 0.25, time.monotonic() + self.reconnect
        while True:
            r = self._run_once(argv, input=input, timeout=timeout, check=False,
                               hold_stdin=hold_stdin, shown=shown)
            if r.returncode != 255 or r.timed_out:
                break
            if any(f in r.stderr for f in FATAL) or time.monotonic() + delay > deadline:
                raise SshError(self.explain(r), r)
            if self.is_lost():
                raise SshError(self.lost_as[0])
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        if check:
            self.check(r)
        return r

    def is_lost(self) -> bool:
        """Whether `lost()` says so (or said so: `lost_as`), asked at most every 10 s (each ask
        may be an API call). Waits whose connection dropped ask it too (remote/tmux.py)."""
        if self.lost_as is None and self.lost is not None and time.monotonic() - self._lost_asked >= 10:
            self._lost_asked = time.monotonic()
            try:
                self.lost_as = self.lost()
            except Exception:  # noqa: BLE001 - cannot tell: keep trying the host
                pass
        return self.lost_as is not None

    def explain(self, r: Result) -> str:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip() and "Warning: Permanently" not in ln]
        last = lines[-1] if lines else "connection failed"
        if self.gone and "Permission denied" not in r.stderr:
            return f"{self.gone} ({last})"
        return f"ssh {self.spec}: {last}"

    def home(self) -> str:
        if self._home is None:
            self._home = self.run(["sh", "-c", 'printf %s "$HOME"'], check=True, timeout=60).stdout
        return self._home

    def read_file(self, path: str, offset: int = 0) -> bytes | None:
        script = f"[ -e {shlex.quote(path)} ] || exit 3; tail -c +{offset + 1} {shlex.quote(path)}"
        full = self.argv_for(["sh", "-c", script])
        for _ in range(2):
            p = subprocess.run(full, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
            if p.returncode == 3:
                return None
            if p.returncode == 0:
                return p.stdout
            if p.returncode != 255:
                break
            self.run(["true"])  # reconnects with backoff, or raises SshError
        raise ShellError(f"cannot read {path} on {self.name}: {_text(p.stderr).strip()}")

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        q = shlex.quote(path)
        self.run(["sh", "-c", f"umask 077 && cat > {q} && chmod {mode:o} {q}"], input=data,
                 check=True, timeout=120)
