"""Limits that must hold on ssh hosts: timeouts end the wait and the remote command, a pattern
wait keeps its deadline whatever the pattern costs, a secret command's `exit` is its exit code,
and a host-side waiter ends with the `train` that started it."""

from __future__ import annotations

import time

import pytest
from helpers import train, write_recipe


def run(tmp_path, text: str, *args: str, name: str = "r.recipe"):
    r = write_recipe(tmp_path / name, text)
    return train("recipe", "run", str(r), "--no-visual", *args, timeout=120)


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

