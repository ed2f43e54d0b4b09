"""The fakes' machines behave as a cloud's: each has a /workspace of its own, and nothing of a
machine outlives its stop or destroy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from trainsh.cloud.provider import RUNNING, CreateRequest


def _ssh(identity, port: int, command: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-i", str(identity), "-p", str(port), "-o", "BatchMode=yes",
                           "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                           "-o", f"UserKnownHostsFile={tmp_path}/known_hosts", "-o", "LogLevel=ERROR",
                           "root@127.0.0.1", command], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def _real_workspace() -> list[str]:
    return sorted(os.listdir("/workspace")) if os.path.isdir("/workspace") else []


def _dead(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def _two_machines_keep_their_own_workspace(logins, folders, tmp_path):
    before = _real_workspace()
    for name, run in logins.items():
        r = run(f"cd /workspace && echo {name} > x && pwd")
        assert r.returncode == 0 and r.stdout.strip() == "/workspace", r.stderr
    for name, run in logins.items():
        r = run("cat /workspace/x; ls -A /workspace")
        assert r.returncode == 0 and r.stdout.split() == [name, "x"], (name, r.stdout, r.stderr)
        assert (folders[name] / "x").read_text() == f"{name}\n"  # where tests read a machine's files
    assert _real_workspace() == before  # nothing of theirs in this machine's own /workspace


def test_each_vast_machine_has_its_own_workspace(vast, tmp_path):
    ids = {"first": vast.rent("1002"), "second": vast.rent("1003")}  # (a rented ask leaves the market)
    state = vast.state()["instances"]
    logins = {n: (lambda cmd, i=i: _ssh(vast.identity, state[i]["proxy_port"], cmd, tmp_path))
              for n, i in ids.items()}
    folders = {n: Path(state[i]["workspace"]) for n, i in ids.items()}
    _two_machines_keep_their_own_workspace(logins, folders, tmp_path)
    # a process a login left behind (in the machine's namespace) ends with the machine
    pid = int(logins["first"]("nohup sleep 1000 >/dev/null 2>&1 & echo $!").stdout)
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    vast.api("DELETE", f"instances/{ids['first']}/")
    assert _dead(pid)


def test_each_runpod_pod_has_its_own_workspace(runpod_fake, tmp_path):
    from trainsh.cloud.runpod import RunPodProvider

    cloud = RunPodProvider()
    pods = {}
    for name in ("first", "second"):
        inst = cloud.create("NVIDIA GeForce RTX 4090", CreateRequest(image="runpod/base", label=name,
                                                                     public_key=runpod_fake.public_key))
        pods[name] = cloud.wait_ready(inst.id, 30, login=False)
    logins = {n: (lambda cmd, p=p: _ssh(runpod_fake.ssh_key, p.ssh.port, cmd, tmp_path)) for n, p in pods.items()}
    state = runpod_fake.state()["pods"]
    folders = {n: Path(state[p.id]["workspace"]) for n, p in pods.items()}
    _two_machines_keep_their_own_workspace(logins, folders, tmp_path)
    # the volume stays across a stop and resume; the processes do not
    pid = int(logins["first"]("nohup sleep 1000 >/dev/null 2>&1 & echo $!").stdout)
    cloud.stop(pods["first"].id)
    assert _dead(pid)
    cloud.start(pods["first"].id)
    inst = cloud.wait_ready(pods["first"].id, 30, login=False)
    r = _ssh(runpod_fake.ssh_key, inst.ssh.port, "cat /workspace/x", tmp_path)
    assert r.returncode == 0 and r.stdout == "first\n", r.stderr


@pytest.fixture(autouse=True)
def _needs_root():
    if os.getuid() != 0:
        pytest.skip("needs root (the fakes' machines are real sshd servers)")
