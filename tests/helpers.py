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


def masters(control: str | Path) -> dict[str, int]:
    """The live ssh connection masters whose sockets are in the folder `control`: socket -> pid."""
    import re

    found = {}
    if not Path(control).is_dir():
        return found
    for sock in Path(control).iterdir():
        r = subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "check", "x"],
                           capture_output=True, text=True)
        m = re.search(r"pid=(\d+)", r.stderr)
        if r.returncode == 0 and m:
            found[str(sock)] = int(m.group(1))
    return found


def drop_masters(control: str | Path) -> dict[str, int]:
    """End every ssh connection master in `control` (every session multiplexed on them drops)
    and wait until their processes are gone. Asserts there was one to drop: a test that means
    to drop a connection must not pass because there was none. Returns socket -> old pid."""
    live = masters(control)
    assert live, f"no ssh connection master in {control} to drop"
    for sock in live:
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
    wait_until(lambda: not any(_running(pid) for pid in live.values()), 10, "the masters to end")
    return live


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def procs_with(needle: str, home: str | Path) -> list[int]:
    """Processes whose command line holds `needle` and whose HOME is `home` (a folder of this
    test's own, such as a test sshd's login HOME): never anything another run started."""
    want = f"HOME={home}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle.encode() in cmd and want in env:
            found.append(int(d.name))
    return found


# A recipe that rents a Vast machine and keeps a command running there (it touches ~/started
# first): the job holds its machine for as long as it lives or can be resumed.
HOLDS = """\
host gpu = placeholder
vast.pick @gpu gpu=RTX_4090
tmux.open @gpu as w
@w > touch ~/started; sleep 600
"""


def started_on(vast) -> str | None:
    """The fake Vast instance whose command has started (made ~/started), if any yet."""
    for iid, inst in vast.state()["instances"].items():
        if (Path(inst["home"]) / "started").exists():
            return iid
    return None


def start(*args: str) -> subprocess.Popen:
    """`train ARGS --no-visual` running in the background (to be killed mid-job)."""
    return subprocess.Popen([*TRAIN, *args, "--no-visual"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.communicate()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
