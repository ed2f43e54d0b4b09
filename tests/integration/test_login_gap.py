"""A machine reports running before its sshd and keys are ready, as a real container does (the
fakes' `ssh_delay`): every wait for a machine gets through that gap, and a login refused in it is
never reported as a failure. `Provider.wait_ready` itself is checked on every provider by the
shared suite (cloud_suite.check_login_gap); here the fakes' gap itself, a recipe's NAME.wait and
`ow exec`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from helpers import train, wait_until, write_recipe

from trainsh.cloud.provider import CreateRequest

GAP = 4.0  # seconds; the first half nothing listens, the second sshd refuses every key
WORDS_OF_FAILURE = ("denied", "fail", "refused", "not ready", "exit 255", "timed out", "traceback")


def _said_no_failure(text: str) -> None:
    low = text.lower()
    assert not any(w in low for w in WORDS_OF_FAILURE), text


def test_the_runpod_fakes_gap_is_nothing_listening_then_no_keys(runpod_fake, tmp_path):
    from trainsh.cloud.runpod import RunPodProvider

    runpod_fake.set_faults(ssh_delay=GAP)
    cloud = RunPodProvider()
    inst = cloud.create("L40", CreateRequest(image="runpod/base", label="gap", public_key=runpod_fake.public_key))
    inst = cloud.wait_ready(inst.id, 30, login=False)  # runtime with its port: "running"
    begin = time.monotonic()

    def connects() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", inst.ssh.port), timeout=1) as s:
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    assert not connects()  # its sshd is not started yet
    wait_until(connects, timeout=GAP + 5, what="the pod's sshd to listen")
    argv = ["ssh", "-i", str(runpod_fake.ssh_key), "-p", str(inst.ssh.port), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={tmp_path}/kh", "root@127.0.0.1", "echo in"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert time.monotonic() - begin < GAP, "too slow to see the second half of the gap"
    assert r.returncode == 255 and "Permission denied" in r.stderr, r.stderr  # no keys yet
    wait_until(lambda: subprocess.run(argv, capture_output=True, timeout=30,
                                      stdin=subprocess.DEVNULL).returncode == 0,
               timeout=GAP + 5, what="the pod's keys")


GAP_RECIPE = """\
host gpu = placeholder
vast.pick @gpu
vast.wait timeout=1m poll=1s
tmux.open @gpu as w
@w > echo through > ~/through
vast.stop
"""


def test_a_recipes_wait_gets_through_the_gap(tmp_path, vast):
    vast.control(ssh_delay=GAP)
    r = write_recipe(tmp_path / "gap.recipe", GAP_RECIPE)
    begin = time.monotonic()
    p = train("recipe", "run", str(r), "--no-visual", timeout=120)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - begin > GAP  # it did wait through the gap
    _said_no_failure(p.stdout + p.stderr)
    (iid, inst), = vast.state()["instances"].items()
    assert (Path(inst["home"]) / "through").read_text() == "through\n"


def test_ow_exec_gets_through_the_gap(tmp_path, vast):
    vast.control(ssh_delay=GAP)
    begin = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "trainsh.owstart", "exec", "--provider", "vast", "--gpu", "RTX4090",
                        "--no-sync", "echo", "through"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == "through\n", r.stderr
    assert time.monotonic() - begin > GAP  # it did wait through the gap
    _said_no_failure(r.stderr)
    st = vast.state()
    assert st["rents"] == 1 and all(str(i) in map(str, st["destroyed"]) for i in st["instances"])


def test_ow_exec_on_an_existing_machine_in_the_gap(tmp_path, vast):
    """`--existing` skips the separate login (its first command is the probe): a machine the
    user just started may be in the gap then, and that must not fail the run either."""
    vast.control(ssh_delay=GAP)
    iid = vast.rent("1002", running=False)
    vast.wait(iid, "running")  # running, its sshd not up yet
    r = subprocess.run([sys.executable, "-m", "trainsh.owstart", "exec", "--provider", "vast", "--existing", iid,
                        "--no-sync", "echo", "through"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == "through\n", r.stderr
    _said_no_failure(r.stderr)
    assert vast.state()["instances"][iid]["actual_status"] == "running"  # the user's: left running


def test_ow_exec_on_runpod_gets_through_the_gap(tmp_path, runpod_fake):
    runpod_fake.set_faults(ssh_delay=GAP)
    begin = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "trainsh.owstart", "exec", "--gpu", "L40", "--no-sync", "echo",
                        "through"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == "through\n", r.stderr
    assert time.monotonic() - begin > GAP
    _said_no_failure(r.stderr)
    st = runpod_fake.state()
    assert not st["pods"] and len(st["terminated"]) == 1, st
