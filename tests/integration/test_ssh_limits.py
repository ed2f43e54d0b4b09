"""Limits that must hold on ssh hosts: timeouts end the wait and the remote command, a pattern
wait keeps its deadline whatever the pattern costs, a secret command's `exit` is its exit code,
and a host-side waiter ends with the `train` that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import TRAIN, drop_masters, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal


def run(tmp_path, text: str, *args: str, name: str = "r.recipe"):
    r = write_recipe(tmp_path / name, text)
    return train("recipe", "run", str(r), "--no-visual", *args, timeout=120)


def running(token: str) -> bool:
    return subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 0


def waiters(home: Path) -> list[int]:
    """The host-side waits (each a process and its checking child) of logins on the test
    server whose HOME is `home`: one pid per wait."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes().split(b"\0")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"json.loads(sys.stdin.readline())" in cmd and f"HOME={home}".encode() in env:
            found[int(d.name)] = ppid
    return sorted(pid for pid, ppid in found.items() if ppid not in found)


def test_a_host_command_timeout_ends_the_wait_and_the_remote_command(tmp_path, ssh):
    token = f"ts-exec-timeout-{time.time_ns()}"
    t0 = time.monotonic()
    p = train("exec", f"host me = {ssh.a.spec()}",
              f"@me timeout=2s > python3 -c 'import time; time.sleep(40)' {token}", timeout=60)
    assert time.monotonic() - t0 < 20, "the local wait outlasted the timeout"
    assert p.returncode == 1 and "timed out after 2s" in p.stderr, p.stderr
    wait_until(lambda: not running(token), timeout=10, what="the remote command to be stopped")


def test_a_host_command_gets_its_secrets_and_ends_at_its_timeout(tmp_path, ssh, monkeypatch):
    monkeypatch.setenv("TS_MULTI", "line one\nline 'two'")
    p = train("exec", f"host me = {ssh.a.spec()}",
              '@me > printf "%s|" "${secret:TS_MULTI}" | tr -c "|" x')
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "x" * len("line one\nline 'two'") + "|"
    # (a killed `train exec` leaves its command running in its session, for resume, as a
    # recipe does; its timeout is what stops it)
    token = f"ts-exec-timeout-{time.time_ns()}"
    t0 = time.monotonic()
    p = train("exec", f"host me = {ssh.a.spec()}",
              f"@me timeout=2s > python3 -c 'import time; time.sleep(60)' {token}")
    assert time.monotonic() - t0 < 30
    assert p.returncode == 1 and "timed out after 2s" in p.stderr, p.stderr
    wait_until(lambda: not running(token), timeout=10, what="the remote command to be stopped")


def test_a_session_command_timeout_over_ssh_interrupts_it(tmp_path, ssh):
    token = f"ts-session-timeout-{time.time_ns()}"
    t0 = time.monotonic()
    p = run(tmp_path, f"host gpu = {ssh.a.spec()}\ntmux.open @gpu as w\n"
                      f"@w timeout=2s > python3 -c 'import time; time.sleep(40)' {token}\n")
    assert time.monotonic() - t0 < 30
    assert p.returncode == 1 and "timed out after 2s" in p.stderr, p.stderr
    wait_until(lambda: not running(token), timeout=10, what="the remote command to be stopped")


def test_a_costly_pattern_keeps_the_waits_deadline(tmp_path, ssh):
    t0 = time.monotonic()
    p = run(tmp_path, f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > python3 -c 'print("a" * 40 + "!")'; sleep 60 &
wait @w "(a+)+$" timeout=3s
""")
    assert time.monotonic() - t0 < 30, "the wait outlasted its deadline"
    assert p.returncode == 1 and "timed out after 3s" in p.stderr, p.stderr
    wait_until(lambda: not waiters(ssh.a.home), timeout=10, what="the waiter to end")


@pytest.mark.parametrize("where", ["local", "ssh"])
def test_exit_in_a_command_with_a_secret_is_its_exit_code(tmp_path, ssh, monkeypatch, where):
    monkeypatch.setenv("TS_TOKEN", "exit-secret-5d1c")
    spec = "local" if where == "local" else ssh.a.spec()
    t0 = time.monotonic()
    p = run(tmp_path, f"""
host gpu = {spec}
tmux.open @gpu as w
@w > echo "t=${{secret:TS_TOKEN}}"; exit 3
""")
    assert time.monotonic() - t0 < 30, "hung until the command's timeout"
    assert p.returncode == 1 and "command exited with code 3" in p.stderr, p.stderr
    assert "t=***" in p.stderr and "exit-secret-5d1c" not in p.stderr


WAITING = """
host gpu = {spec}
tmux.open @gpu as w
wait @w file={home}/never-{name} timeout=1h
"""


def _start_waiting(tmp_path, ssh) -> subprocess.Popen:
    r = write_recipe(tmp_path / "w.recipe", WAITING.format(spec=ssh.a.spec(), home=ssh.a.home, name=tmp_path.name))
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: waiters(ssh.a.home), timeout=30, what="the host-side waiter")
    return proc


@pytest.mark.parametrize("how", ["kill-9", "sigterm", "dropped"])
def test_a_host_side_waiter_ends_with_its_train(tmp_path, ssh, how):
    proc = _start_waiting(tmp_path, ssh)
    try:
        if how == "kill-9":
            proc.send_signal(signal.SIGKILL)
        elif how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:  # end the shared connection: the host sees the ssh session drop
            control = os.environ["TRAINSH_SSH_CONTROL_DIR"]
            first = waiters(ssh.a.home)
            drop_masters(control)
            # the running train reconnects and waits again: one waiter, a new one
            wait_until(lambda: not set(first) & set(waiters(ssh.a.home)), timeout=15,
                       what="the waiter of the dropped connection to end")
            wait_until(lambda: waiters(ssh.a.home), timeout=30, what="a waiter after the reconnect")
            assert len(waiters(ssh.a.home)) == 1
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        wait_until(lambda: not waiters(ssh.a.home), timeout=15, what="the waiter to end")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_resumed_wait_runs_one_waiter(tmp_path, ssh):
    proc = _start_waiting(tmp_path, ssh)
    first = waiters(ssh.a.home)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.Popen([*TRAIN, "recipe", "resume", "--no-visual"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the killed run's waiter ends and the resumed run's begins; then there is that one only
        wait_until(lambda: (now := waiters(ssh.a.home)) and not set(first) & set(now), timeout=30,
                   what="the resumed waiter, and the killed run's gone")
        assert len(waiters(ssh.a.home)) == 1
        (ssh.a.home / f"never-{tmp_path.name}").touch()
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait()
    j = Journal()
    try:
        assert j.jobs(1)[0].status == "done"
    finally:
        j.close()


def test_a_newer_wait_on_a_session_replaces_one_left_behind(tmp_path, ssh):
    """A wait whose caller is gone without the host noticing (a half-open connection) is
    replaced by the next wait that claims the same session."""
    import threading

    from trainsh.remote.shell import SshShell
    from trainsh.remote.waits import run_wait

    shell = SshShell(ssh.a.spec())
    claim = f"{ssh.a.home}/wait.pid"
    spec = {"kind": "file", "path": f"{ssh.a.home}/never-{tmp_path.name}", "claim": claim}
    outcomes = []
    old = threading.Thread(target=lambda: outcomes.append(run_wait(shell, spec, 3600)))
    old.start()
    wait_until(lambda: waiters(ssh.a.home), timeout=20, what="the first waiter")
    first = waiters(ssh.a.home)
    new = threading.Thread(target=lambda: outcomes.append(run_wait(shell, spec, 3600)))
    new.start()
    old.join(20)
    assert not old.is_alive(), "the older wait was not replaced"
    assert outcomes[0].reason == "replaced", outcomes
    assert len(waiters(ssh.a.home)) == 1 and waiters(ssh.a.home) != first
    (ssh.a.home / f"never-{tmp_path.name}").touch()
    new.join(20)
    assert not new.is_alive() and outcomes[1].ok, outcomes
