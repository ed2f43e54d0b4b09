"""The shared provider suite (tests/cloud_suite.py), once per provider, each against its fake."""

from __future__ import annotations

import os

import pytest

from cloud_suite import CHECKS, HARNESSES


@pytest.fixture(params=sorted(HARNESSES))
def cloud(request, tmp_path, monkeypatch):
    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (the fakes' machines are real sshd servers)")
    import tempfile
    from pathlib import Path

    import sshd

    control = Path(tempfile.mkdtemp(prefix="tsc", dir="/tmp"))
    monkeypatch.setenv("TRAINSH_SSH_CONTROL_DIR", str(control))
    monkeypatch.delenv("TRAINSH_SSH_OPTIONS", raising=False)
    try:
        with HARNESSES[request.param](tmp_path) as harness:
            yield harness
    finally:
        sshd.close_masters(control)


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_provider(cloud, check):
    CHECKS[check](cloud)


def test_host_keys_go_to_trainsh_known_hosts(cloud, tmp_path):
    from cloud_suite import rent, ssh_run, wait_for

    from trainsh.cloud.provider import RUNNING
    from trainsh.remote.sshspec import known_hosts_file

    inst = wait_for(cloud, rent(cloud, "suite-keys").id, RUNNING)
    assert ssh_run(cloud, inst).returncode == 0
    import subprocess

    found = subprocess.run(["ssh-keygen", "-F", f"{cloud.name}-{inst.id}", "-f", known_hosts_file()],
                           capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip()
    assert not (tmp_path / "home" / ".ssh" / "known_hosts").exists()
