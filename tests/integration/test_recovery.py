"""A job that loses its machine goes on (`recover=N`), against the Vast fake: a training run on
an interruptible machine that is outbid mid-way (on RunPod: a spot pod reclaimed) finishes on a
second machine, resuming from its checkpoint; the lost machine is destroyed; only the host's steps run again; a spent budget fails
in one line; a failing command is no loss; a kill -9 during the recovery's rent and a resume
make exactly one replacement. The fake's own state is the evidence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from helpers import TRAIN, train, wait_until, write_recipe
from test_cli import http_sink  # noqa: F401 - a fixture: a web server that keeps what it is sent

# The user's training script: an epoch a beat, a checkpoint per epoch in CKPT (standing in for
# a store the checkpoints are copied to), and a start from the last checkpoint there.
TRAIN_PY = """\
import os, sys, time
ckpt, total = sys.argv[1], int(sys.argv[2])
os.makedirs(ckpt, exist_ok=True)
done = [int(n.split("-")[1]) for n in os.listdir(ckpt) if n.startswith("epoch-")]
start = max(done, default=0) + 1
me = os.environ.get("CONTAINER_ID") or os.environ.get("RUNPOD_POD_ID") or "?"  # Vast's, RunPod's
print(f"resuming at epoch {start}" if done else "fresh start", flush=True)
for e in range(start, total + 1):
    time.sleep(0.6)
    with open(os.path.join(ckpt, f"epoch-{e}"), "w") as f:
        f.write(me)
    with open(os.path.join(ckpt, "log"), "a") as f:
        f.write(f"{e} {me}\\n")
    print(f"epoch {e}/{total}", flush=True)
"""

SPOT = """\
var CKPT = {tmp}/ckpt
host gpu = placeholder
{cloud}.pick @gpu gpu={gpu} {spot} {recover}
tmux.open @local as here
@here > echo ran >> {tmp}/local.log
{cloud}.wait timeout=60s
tmux.open @gpu as work
@work > echo opened >> {tmp}/opened.log
@work > python3 {tmp}/train.py $CKPT {epochs}
{cloud}.cost
tmux.close @work
tmux.close @here
"""


# how each cloud words a pick of an interruptible machine
PICKS = {"vast": {"gpu": "RTX_4090", "spot": "interruptible=true"},
         "runpod": {"gpu": "RTX4090", "spot": "spot=true"}}


def _recipe(tmp_path: Path, recover: str = "recover=1", epochs: int = 8, cloud: str = "vast") -> Path:
    (tmp_path / "train.py").write_text(TRAIN_PY)
    return write_recipe(tmp_path / "spot.recipe", SPOT.format(tmp=tmp_path, recover=recover, epochs=epochs,
                                                              cloud=cloud, **PICKS[cloud]))


def _runner(recipe: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TRAIN, "recipe", "run", str(recipe), "--no-visual", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _epochs(tmp_path: Path) -> list[tuple[int, str]]:
    log = tmp_path / "ckpt" / "log"
    lines = log.read_text().split("\n") if log.exists() else []
    return [(int(e), who) for e, who in (ln.split() for ln in lines if ln)]


def _training_on(vast, tmp_path: Path, after: int) -> str:
    """The instance training has reached epoch `after` on."""
    wait_until(lambda: len(_epochs(tmp_path)) >= after, timeout=60, what=f"epoch {after}")
    return _epochs(tmp_path)[-1][1]


def _finished_on_a_second_machine(p: subprocess.Popen, tmp_path: Path, cloud: str, first: str, why: str) -> str:
    """The job finished with every epoch once, the last ones on a second machine; only the
    host's steps ran again; stderr and `recipe logs` name the loss. The second machine's id."""
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    epochs = _epochs(tmp_path)
    assert sorted(e for e, _ in epochs) == list(range(1, 9))  # each epoch exactly once
    second = epochs[-1][1]
    assert second != first and {who for _, who in epochs} == {first, second}
    # only the host's steps ran again: the session was opened twice, the local step once
    assert (tmp_path / "opened.log").read_text() == "opened\nopened\n"
    assert (tmp_path / "local.log").read_text() == "ran\n"
    assert f"{cloud} {first} was lost ({why})" in err and "recovering (1 of 1)" in err
    # the cost step sums every machine the job paid for on that cloud, the lost one too
    assert f"in all with the 1 machine it lost ({cloud} {first} $" in out + err
    logs = train("recipe", "logs", "--last").stdout
    assert f"lost: @gpu {cloud} {first} ({why}) at " in logs and f"replaced by {cloud} {second} in " in logs
    return second


def test_an_outbid_machine_is_replaced_and_training_finishes_from_its_checkpoint(tmp_path, vast):
    p = _runner(_recipe(tmp_path))
    first = _training_on(vast, tmp_path, 2)
    vast.preempt(first)
    second = _finished_on_a_second_machine(p, tmp_path, "vast", first, "paused: outbid")
    state = vast.state()
    assert int(first) in state["destroyed"] and first not in state["instances"]  # the lost one: gone
    assert list(state["instances"]) == [second] and state["rents"] == 2
    assert state["instances"][second]["label"].endswith("-gpu-r1")
    train("vast", "destroy", second, "--yes")


def _reclaim(fake, pod: str) -> None:
    """RunPod takes the spot pod back, through the fake's admin route as a test from outside would."""
    req = urllib.request.Request(f"{fake.url}/_fake/preempt", data=json.dumps({"id": pod}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def test_a_reclaimed_runpod_spot_pod_is_replaced_and_training_finishes(tmp_path, runpod_fake):
    p = _runner(_recipe(tmp_path, cloud="runpod"))
    first = _training_on(runpod_fake, tmp_path, 2)
    _reclaim(runpod_fake, first)
    second = _finished_on_a_second_machine(p, tmp_path, "runpod", first, "stopped: reclaimed")
    state = runpod_fake.state()
    assert first in state["terminated"] and list(state["pods"]) == [second]  # the lost one: gone
    assert state["pods"][second]["name"].endswith("-gpu-r1") and state["pods"][second]["spec"]["bidPerGpu"]
    train("runpod", "destroy", second, "--yes")


def test_status_shows_a_recovery_and_notify_on_recovered_tells_its_end(tmp_path, vast, http_sink):
    from trainsh.settings import config

    config.set_value("notify.urls", f"json://127.0.0.1:{http_sink.server_address[1]}/")
    config.set_value("notify.on", "recovered")
    p = _runner(_recipe(tmp_path, epochs=4))
    first = _training_on(vast, tmp_path, 1)
    vast.control(slow_create=30)  # the replacement's rent is held: the job is recovering meanwhile
    vast.preempt(first)
    vast.wait_creating(1, timeout=60)
    status = train("recipe", "status").stdout
    assert " recovering " in status, status
    assert f"lost vast {first} for @gpu (paused: outbid) at " in status and "; recovering" in status
    assert http_sink.bodies == []
    vast.control(slow_create=0)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    message = json.loads(http_sink.bodies[0][2])["message"]
    second = _epochs(tmp_path)[-1][1]
    assert len(http_sink.bodies) == 1 and f"@gpu recovered: vast {first} was lost (paused: outbid), " \
        f"replaced by vast {second} in " in message, message
    status = train("recipe", "status", "--all").stdout
    assert f"lost vast {first} for @gpu" in status and f"replaced by vast {second}" in status
    train("vast", "destroy", second, "--yes")


def test_losing_more_machines_than_recover_allows_fails_in_one_line(tmp_path, vast):
    p = _runner(_recipe(tmp_path, epochs=30))
    first = _training_on(vast, tmp_path, 1)
    vast.preempt(first)
    wait_until(lambda: any(who != first for _, who in _epochs(tmp_path)), timeout=90, what="the replacement trains")
    second = _epochs(tmp_path)[-1][1]
    vast.preempt(second)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1
    assert (f"@gpu lost 2 machines, more than recover=1: vast {first} (paused: outbid), "
            f"vast {second} (paused: outbid)") in err
    assert "Traceback" not in err
    state = vast.state()
    assert {int(first), int(second)} <= set(state["destroyed"]) and state["instances"] == {}  # nothing bills on
    assert state["rents"] == 2


def test_a_failing_command_on_a_running_machine_is_no_loss(tmp_path, vast):
    r = write_recipe(tmp_path / "fails.recipe", """\
host gpu = placeholder
vast.pick @gpu recover=3
vast.wait timeout=60s
tmux.open @gpu as work
@work > sh -c 'exit 3'
""")
    p = train("recipe", "run", str(r), "--no-visual", timeout=120)
    assert p.returncode == 1 and "exited with code 3" in p.stderr, p.stderr
    assert "recovering" not in p.stderr and vast.state()["rents"] == 1


def test_run_recover_sets_it_for_a_pick_that_names_none(tmp_path, vast):
    p = _runner(_recipe(tmp_path, recover="", epochs=5), "--recover", "1")
    first = _training_on(vast, tmp_path, 1)
    vast.preempt(first)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    assert sorted(e for e, _ in _epochs(tmp_path)) == [1, 2, 3, 4, 5]
    state = vast.state()
    assert int(first) in state["destroyed"] and state["rents"] == 2
    for iid in state["instances"]:
        train("vast", "destroy", iid, "--yes")


def one_replacement_after_a_kill_in_its_rent(vast, p: subprocess.Popen, tmp_path: Path, epochs: int):
    """Training's machine is outbid, and `train` is killed -9 while the replacement's rent has
    made its machine but holds the answer; a resume finishes on that machine, with no second
    rent and every epoch once. (first, second machine's id, the resume's process)"""
    first = _training_on(vast, tmp_path, 1)
    vast.control(slow_create=30)
    vast.preempt(first)
    vast.wait_creating(1, timeout=60)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    vast.control(slow_create=0)
    r = train("recipe", "resume", "--no-visual", timeout=180)
    assert r.returncode == 0, r.stderr
    state = vast.state()
    assert state["rents"] == 2 and len(state["instances"]) == 1, state
    assert int(first) in state["destroyed"]
    assert sorted(e for e, _ in _epochs(tmp_path)) == list(range(1, epochs + 1))
    (second,) = state["instances"]
    return first, second, r


def test_a_kill_during_the_replacements_rent_then_resume_makes_exactly_one(tmp_path, vast):
    _, second, _ = one_replacement_after_a_kill_in_its_rent(vast, _runner(_recipe(tmp_path, epochs=5)),
                                                            tmp_path, 5)
    train("vast", "destroy", second, "--yes")


def _cut_off(vast, iid: str) -> None:
    """The machine drops off the network: its sshd and every ssh session it serves end, while
    the cloud still says it runs (what runs in its tmux goes on, as on a host that lost its
    link). Only this test's fake's processes are touched."""
    sshd = vast.state()["instances"][iid]["sshd_pid"]
    children = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == sshd:
                children.append(pid)
        except (OSError, IndexError, ValueError):
            pass
    for pid in [sshd, *children]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_machine_ssh_cannot_reach_while_its_cloud_says_it_runs_is_lost_after_lost_after(tmp_path, vast):
    from trainsh.settings import config

    config.set_value("cloud.lost_after", "3s")
    p = _runner(_recipe(tmp_path, epochs=6))
    first = _training_on(vast, tmp_path, 2)
    _cut_off(vast, first)
    assert vast.state()["instances"][first]["actual_status"] == "running"  # as far as the cloud knows
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    assert f"vast {first} was lost (unreachable for 3s while its cloud said it runs)" in err
    state = vast.state()
    assert int(first) in state["destroyed"] and state["rents"] == 2
    assert sorted(e for e, _ in _epochs(tmp_path)) == [1, 2, 3, 4, 5, 6]
    for iid in state["instances"]:
        train("vast", "destroy", iid, "--yes")


def test_a_loss_the_cloud_reports_while_ssh_still_answers_is_noticed_within_30_s(tmp_path, vast):
    p = _runner(_recipe(tmp_path, epochs=200))  # a long run: only the watcher can end it early
    first = _training_on(vast, tmp_path, 1)
    said = time.time()
    vast.preempt(first, linger=120)  # the API says outbid now; the container goes in 2 minutes
    wait_until(lambda: any(who != first for _, who in _epochs(tmp_path)), timeout=90,
               what="training on the replacement")
    from trainsh.runtime.journal import Journal

    journal = Journal.reader()
    (lost,) = journal.jobs(1)[0].options["lost"]
    journal.close()
    # noticed at the watcher's next look (every 30 s), while ssh still answered
    assert lost["ident"] == first and lost["why"] == "paused: outbid" and lost["at"] - said < 31
    assert int(first) in vast.state()["destroyed"]  # ended, not left to linger and bill
    p.kill()
    p.communicate(timeout=30)
    for iid in vast.state()["instances"]:
        train("vast", "destroy", iid, "--yes")


def test_a_machine_the_job_stopped_itself_is_no_loss(tmp_path, vast):
    r = write_recipe(tmp_path / "own.recipe", """\
host gpu = placeholder
vast.pick @gpu recover=2
tmux.open @gpu as w
@w > echo before
vast.stop
@w > echo after
""")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 1, p.stderr
    assert "recovering" not in p.stderr and "was lost" not in p.stderr
    state = vast.state()
    assert state["rents"] == 1 and state["destroyed"] == []  # stopped as asked, not replaced
    for iid in state["instances"]:
        train("vast", "destroy", iid, "--yes")
