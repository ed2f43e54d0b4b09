"""Shared fixtures: every test gets its own settings folder, HOME and tmux server.

Nothing is written to the real home folder, and every tmux server a test starts is killed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
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
