"""Shared fixtures: every test gets its own settings folder, HOME and tmux server.

Nothing is written to the real home folder, and every tmux server a test starts is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from trainsh import masking

# A suite started in the background of a script inherits SIGINT ignored, and so would every train
# it starts (an ignored signal stays ignored across exec): the Ctrl-C tests need it delivered as
# a terminal delivers it. A Python handler here is reset to the default in each child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    import sshd

    sshd.close_masters(control)
    ssh_servers.kill_remote_tmux()


@pytest.fixture(scope="session")
def s3_server():
    """moto_server on a free loopback port, with real key checking: an IAM user and its key are
    made by the first unauthenticated requests, after which every request must be signed."""
    import json
    import socket
    import sys

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kw = dict(endpoint_url=url, region_name="us-east-1")
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        iam = boto3.client("iam", aws_access_key_id="boot", aws_secret_access_key="boot", **kw)
        iam.create_user(UserName="trainsh")
        key = iam.create_access_key(UserName="trainsh")["AccessKey"]
        iam.put_user_policy(UserName="trainsh", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        client = boto3.client("s3", aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"], **kw)
        yield {"url": url, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"], "s3": client}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def lake(s3_server, monkeypatch):
    """A fresh bucket, named `lake` in storages.toml, with its keys as secrets (environment)."""
    import uuid

    from trainsh.settings import paths

    bucket = f"b{uuid.uuid4().hex[:12]}"
    s3_server["s3"].create_bucket(Bucket=bucket)
    paths.home().mkdir(parents=True, exist_ok=True)
    paths.storages_file().write_text(f'[lake]\nkind = "s3"\nbucket = "{bucket}"\n'
                                     f'endpoint = "{s3_server["url"]}"\n')
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    return {**s3_server, "bucket": bucket}


@pytest.fixture
def vast(monkeypatch, tmp_path):
    """The Vast.ai fake (tests/fakes/vast.py) on a free port with a fresh API key, and this test
    pointed at it: VAST_URL, VAST_API_KEY, an ssh identity registered on the account and set as
    `ssh.key`, its own ssh connection folder. Every sshd the fake started must be gone after."""
    from fakes.vast import FakeVast

    import sshd

    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (./dev test installs it)")
    fake = FakeVast(start_delay=0.3)
    control = Path(tempfile.mkdtemp(prefix="tsc", dir="/tmp"))
    try:
        monkeypatch.setenv("VAST_URL", fake.url)
        monkeypatch.setenv("VAST_API_KEY", fake.key)
        monkeypatch.setenv("TRAINSH_SSH_CONTROL_DIR", str(control))
        monkeypatch.delenv("TRAINSH_SSH_OPTIONS", raising=False)
        fake.identity = tmp_path / "id_vast"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(fake.identity)], check=True)
        fake.api("POST", "ssh/", {"ssh_key": (tmp_path / "id_vast.pub").read_text()})
        from trainsh.settings import config

        config.set_value("ssh.key", str(fake.identity))
        yield fake
    finally:
        sshd.close_masters(control)
        survivors = fake.stop()
        assert not survivors, f"the Vast fake left sshd running: {survivors}"


@pytest.fixture
def runpod_fake(monkeypatch, tmp_path):
    """The fake RunPod API (tests/fakes/runpod.py) on a free port with a fresh key, set as
    RUNPOD_API_BASE_URL / RUNPOD_API_KEY; its pods are real sshd. `runpod_fake.ssh_key` is a
    key pair for the pods (config ssh.key points at it), and ssh connection masters live in a
    folder of this test's own, closed afterwards."""
    import sshd
    from fakes.runpod import serving

    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (./dev test installs it)")
    key = tmp_path / "pod_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    from trainsh.settings import paths

    paths.home().mkdir(parents=True, exist_ok=True)
    (paths.home() / "config.toml").write_text(f'[ssh]\nkey = "{key}"\n')
    control = Path(tempfile.mkdtemp(prefix="trc", dir="/tmp"))
    monkeypatch.setenv("TRAINSH_SSH_CONTROL_DIR", str(control))
    with serving() as fake:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", fake.url)
        monkeypatch.setenv("RUNPOD_API_KEY", fake.api_key)
        fake.ssh_key = key
        fake.public_key = (tmp_path / "pod_key.pub").read_text().strip()
        try:
            yield fake
        finally:
            sshd.close_masters(control)


@pytest.fixture(scope="session")
def slurm_cluster(ssh_servers):
    """A real Slurm cluster (tests/slurmd.py), started once, with its login host on loopback."""
    import slurmd

    why = slurmd.available()
    if why:
        pytest.skip(f"Slurm: {why}")
    cluster = slurmd.start(ssh_servers)
    yield cluster
    slurmd.stop(cluster)


@pytest.fixture
def slurm(slurm_cluster, ssh, monkeypatch):
    """The cluster for one test: SLURM_CONF here (for `local` login hosts), the ssh client
    settings for its login host, and no job of the test left in the queue after it."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    yield slurm_cluster
    slurm_cluster.cancel_all()
    for sock in slurm_cluster.login.tmux_dir.glob("tmux-*/*"):
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)


@pytest.fixture
def machine_dir():
    """An absolute folder for a fake cloud machine (they share this machine's files) that no
    other test or run can name: not made, removed afterwards."""
    import uuid

    path = Path(f"/tmp/ow-{uuid.uuid4().hex[:16]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)
