"""Shared fixtures: every test gets its own settings folder, HOME and tmux server.

Nothing is written to the real home folder, and every tmux server a test starts is killed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from trainsh import masking


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    # tmux sockets must live on a short path (sun_path is ~108 bytes).
    short = Path(tempfile.mkdtemp(prefix="ts", dir="/tmp"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TRAINSH_HOME", str(tmp_path / "trainsh"))
    monkeypatch.setenv("TRAINSH_TMUX_SOCKET", str(short / "tmux.sock"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    masking.clear()
    yield tmp_path
    subprocess.run(["tmux", "-S", str(short / "tmux.sock"), "kill-server"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(short, ignore_errors=True)
    masking.clear()


@pytest.fixture(scope="session")
def ssh_servers():
    import sshd

    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (./dev test installs it)")
    env = sshd.start()
    yield env
    sshd.stop(env)


@pytest.fixture
def ssh(ssh_servers, monkeypatch):
    """The servers, with this test's own ssh client settings and connection masters."""
    control = Path(tempfile.mkdtemp(prefix="tsc", dir="/tmp"))
    monkeypatch.setenv("TRAINSH_SSH_OPTIONS", f"-F {ssh_servers.config}")
    monkeypatch.setenv("TRAINSH_SSH_CONTROL_DIR", str(control))
    yield ssh_servers
    for sock in control.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
    shutil.rmtree(control, ignore_errors=True)
    ssh_servers.kill_remote_tmux()
