"""Limits that must hold on ssh hosts: timeouts end the wait and the remote command, a pattern
wait keeps its deadline whatever the pattern costs, a secret command's `exit` is its exit code,
and a host-side waiter ends with the `train` that started it."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from helpers import TRAIN, train, wait_until, write_recipe


def run(tmp_path, text: str, *args: str, name: str = "r.recipe"):
    r = write_recipe(tmp_path / name, text)
    return train("recipe", "run", str(r), "--no-visual", *args, timeout=120)


def running(token: str) -> bool:
    return subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 0


def test_a_host_command_timeout_ends_the_wait_and_the_remote_command(tmp_path, ssh):
    token = f"ts-exec-timeout-{time.time_ns()}"
    t0 = time.monotonic()
    p = train("exec", f"host me = {ssh.a.spec()}",
              f"@me timeout=2s > python3 -c 'import time; time.sleep(40)' {token}", timeout=60)
    assert time.monotonic() - t0 < 20, "the local wait outlasted the timeout"
    assert p.returncode == 1 and "timed out after 2s" in p.stderr, p.stderr
    wait_until(lambda: not running(token), timeout=10, what="the remote command to be stopped")


def test_a_host_command_ends_with_its_train_and_gets_its_secrets(tmp_path, ssh, monkeypatch):
    monkeypatch.setenv("TS_MULTI", "line one\nline 'two'")
    p = train("exec", f"host me = {ssh.a.spec()}",
              '@me > printf "%s|" "${secret:TS_MULTI}" | tr -c "|" x; [ -t 0 ] || read -r x || echo no-stdin')
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "x" * len("line one\nline 'two'") + "|no-stdin"
    token = f"ts-exec-killed-{time.time_ns()}"
    proc = subprocess.Popen([*TRAIN, "exec", f"host me = {ssh.a.spec()}",
                             f"@me > python3 -c 'import time; time.sleep(60)' {token}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: running(f"^python3 -c import time.* {token}"), timeout=20, what="the remote command")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not running(token), timeout=10, what="the remote command to be stopped")


def test_a_session_command_timeout_over_ssh_interrupts_it(tmp_path, ssh):
    token = f"ts-session-timeout-{time.time_ns()}"
    t0 = time.monotonic()
    p = run(tmp_path, f"host gpu = {ssh.a.spec()}\ntmux.open @gpu as w\n"
                      f"@w timeout=2s > python3 -c 'import time; time.sleep(40)' {token}\n")
    assert time.monotonic() - t0 < 30
    assert p.returncode == 1 and "timed out after 2s" in p.stderr, p.stderr
    wait_until(lambda: not running(token), timeout=10, what="the remote command to be stopped")


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

