"""`ow exec --spot [--bid PRICE] [--recover N]` against the fakes (real HTTP APIs, machines that
are real sshd processes, real unison and tmux): an interruptible rent, and a machine the cloud
takes back (`POST /_fake/preempt`) replaced and the command run again there. Every test checks
the fake's own state: how many rents, on a bid or not, and nothing left running."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until

OW = [sys.executable, "-m", "trainsh.owstart"]  # what the `ow` console script runs
VAST = ["--provider", "vast", "--gpu", "RTX4090"]
RUNPOD = ["--provider", "runpod", "--gpu", "RTX4090"]  # (the fake's L40 takes no bid)


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*OW, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def ended(p: subprocess.Popen, timeout: float = 90) -> tuple[str, str]:
    try:
        return p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def live_vast(fake) -> dict[str, dict]:
    """The fake's instances not destroyed: id -> its view (bid, home, ...)."""
    return fake.state()["instances"]


def last_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def test_a_preempted_spot_machine_is_replaced_and_the_command_runs_again(vast, tmp_path):
    work = tmp_path / "proj"
    work.mkdir()
    # each run leaves a mark; `go` reaches a machine only through a sync up, and the test
    # writes it only once the first machine's run has begun: that run waits, the next ends
    p = spawn("exec", *VAST, "--spot", "--recover", "1", "--mount", f"{work}:work", "sh", "-c",
              "echo start >> marks; [ -e go ] && { echo end; exit 4; }; sleep 60")
    try:
        first = wait_until(lambda: [i for i, v in live_vast(vast).items()
                                    if (Path(v["home"]) / "work" / "marks").exists()],
                           timeout=60, what="the command to start on the first machine")[0]
        bid = live_vast(vast)[first]["bid"]
        (work / "go").touch()
        vast.preempt(first)
    finally:
        out, err = ended(p)
    assert p.returncode == 4, (p.returncode, out, err)
    assert "end" in out and "Traceback" not in err, (out, err)
    assert f"vast:{first} was lost (outbid) while running the command" in err, err
    st = vast.state()
    assert st["rents"] == 2 and not st["instances"], st  # a second rent, and both destroyed
    assert bid is not None  # the first was rented on a bid
    (second,) = [i for i in st["machines"] if i != first]
    label = st["machines"][first]["label"]
    assert label.startswith("ow-") and st["machines"][second]["label"] == f"{label}-r1"
    assert sorted(st["destroyed"]) == sorted([int(first), int(second)])
    # the second machine's run came back here; the first's mark went with its machine
    assert (work / "marks").read_text() == "start\n"
    # both rents journaled, both ended
    from trainsh.runtime.holds import Holds
    from trainsh.runtime.journal import Journal

    rows = {r.label: r.state for r in Holds(Journal()).of_holder("ow")}
    assert rows == {label: "destroyed", f"{label}-r1": "destroyed"}, rows


def test_losing_more_machines_than_recover_allows_names_them_and_exits_1(vast, tmp_path):
    # (--no-terminate keeps the machine a run ends on; a lost one is not that machine)
    p = spawn("exec", *VAST, "--spot", "--recover", "1", "--no-terminate", "--no-sync",
              f"touch {tmp_path}/m$$; sleep 60")
    try:
        for n in (1, 2):  # each machine is taken back once its command runs
            wait_until(lambda: len(list(tmp_path.glob("m*"))) == n, timeout=60,
                       what=f"the command to start on machine {n}")
            (iid,) = live_vast(vast)
            vast.preempt(iid)
            if n == 1:
                first = iid
    finally:
        out, err = ended(p)
    assert p.returncode == 1, (p.returncode, err)
    line = last_line(err)
    assert line == (f"ow: lost 2 machines, more than --recover 1: vast:{first} (outbid, while running "
                    f"the command), vast:{iid} (outbid, while running the command)"), err
    assert "Traceback" not in err
    st = vast.state()
    assert st["rents"] == 2 and not st["instances"], st


def test_a_machine_taken_back_while_it_starts_is_replaced(vast, tmp_path):
    vast.control(start_delay=30)  # the first machine is still starting when it is outbid
    p = spawn("exec", *VAST, "--spot", "--recover", "1", "--no-sync", "exit 5")
    try:
        first = wait_until(lambda: list(live_vast(vast)), timeout=60, what="a rent")[0]
        vast.control(start_delay=0.3)  # (its replacement starts as usual)
        vast.preempt(first)
    finally:
        out, err = ended(p)
    assert p.returncode == 5, (p.returncode, err)
    assert f"vast:{first} was lost (outbid) while starting" in err and "Traceback" not in err, err
    st = vast.state()
    assert st["rents"] == 2 and not st["instances"], st


def test_sigterm_after_a_recovery_terminates_the_replacement_too(vast, tmp_path):
    p = spawn("exec", *VAST, "--spot", "--recover", "1", "--no-sync", f"touch {tmp_path}/m$$; sleep 60")
    try:
        wait_until(lambda: len(list(tmp_path.glob("m*"))) == 1, timeout=60, what="the first run")
        (first,) = live_vast(vast)
        vast.preempt(first)
        wait_until(lambda: len(list(tmp_path.glob("m*"))) == 2, timeout=60, what="the second run")
        p.send_signal(signal.SIGTERM)
    finally:
        out, err = ended(p)
    assert p.returncode == 128 + signal.SIGTERM and "Traceback" not in err, (p.returncode, err)
    st = vast.state()
    assert st["rents"] == 2 and not st["instances"] and len(st["destroyed"]) == 2, st


def test_recover_0_a_reclaimed_spot_pod_ends_the_run_in_one_line(runpod_fake, tmp_path):
    started = tmp_path / "started"
    p = spawn("exec", *RUNPOD, "--spot", "--no-sync", f"touch {started}; sleep 60")
    try:
        wait_until(started.exists, timeout=60, what="the command to start")
        (pod,) = runpod_fake.state()["pods"]
        assert runpod_fake.state()["pods"][pod]["spec"].get("bidPerGpu")  # a spot pod
        runpod_fake.preempt(pod)
    finally:
        out, err = ended(p)
    assert p.returncode == 1, (p.returncode, err)
    assert last_line(err) == (f"ow: runpod:{pod} was lost (reclaimed) while running the command; "
                              "--recover N rents another and runs the command again"), err
    assert "Traceback" not in err
    st = runpod_fake.state()
    assert not st["pods"] and list(st["terminated"]) == [pod], st


@pytest.mark.parametrize("cloud", ["vast", "runpod"])
def test_a_failing_command_on_a_healthy_spot_machine_is_not_a_loss(cloud, request, tmp_path):
    fake = request.getfixturevalue("vast" if cloud == "vast" else "runpod_fake")
    go = tmp_path / "go"
    count = "1" if cloud == "vast" else "2"  # (the fake's one-GPU 4090 on Vast; per GPU on RunPod)
    p = spawn("exec", "--provider", cloud, "--gpu", "RTX4090", "--count", count, "--spot", "--bid", "0.3",
              "--recover", "2", "--no-sync", f"while [ ! -e {go} ]; do sleep 0.05; done; exit 3")
    try:
        if cloud == "vast":  # the bid as given: for the machine
            wait_until(lambda: live_vast(fake), timeout=60, what="a rent")
            assert [v["bid"] for v in live_vast(fake).values()] == [0.3]
        else:  # per GPU, whatever the count
            wait_until(lambda: fake.state()["pods"], timeout=60, what="a rent")
            assert [v["spec"]["bidPerGpu"] for v in fake.state()["pods"].values()] == [0.3]
        go.touch()
    finally:
        out, err = ended(p)
    assert p.returncode == 3, (p.returncode, err)
    assert "was lost" not in err and "Traceback" not in err, err
    st = fake.state()
    if cloud == "vast":
        assert st["rents"] == 1 and not st["instances"], st
    else:
        assert not st["pods"] and len(st["terminated"]) == 1, st


def test_bad_spot_input_is_one_line_exit_2_and_rents_nothing(vast, tmp_path):
    for args, words in (
        (("--spot", "--bid", "-1"), "--bid"),
        (("--spot", "--bid", "0"), "--bid"),
        (("--recover", "x"), "--recover"),
        (("--recover", "-1"), "--recover"),
        (("--bid", "0.5"), "--bid goes with --spot"),
        (("--spot", "--existing", "1"), "not with --existing"),
        (("--recover", "1", "--existing", "1"), "not with --existing"),
    ):
        r = subprocess.run([*OW, "exec", *VAST, *args, "--no-sync", "true"], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("ow: "), (args, r.stderr)
        assert words in lines[0] and "Traceback" not in r.stderr, (args, lines)
    assert vast.state()["rents"] == 0


def test_a_bid_below_every_minimum_rents_nothing(vast, tmp_path):
    r = subprocess.run([*OW, "exec", *VAST, "--spot", "--bid", "0.01", "--no-sync", "true"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and last_line(r.stderr).startswith("ow: vast: no 1x RTX4090 on a bid"), r.stderr
    assert "$0.01/h" in r.stderr and "Traceback" not in r.stderr
    assert vast.state()["rents"] == 0
