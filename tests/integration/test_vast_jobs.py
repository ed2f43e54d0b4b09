"""Vast.ai machines in jobs, against the fake (real HTTP, real sshd machines, real tmux): the
seed's quick example end to end, what a failure, a kill -9 and Ctrl-C do to a rented machine,
autostop, --pick-host, and the bad inputs that must rent nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import TRAIN, signalled, train, wait_until, write_recipe


def _only(vast) -> tuple[str, dict]:
    insts = vast.state()["instances"]
    assert len(insts) == 1, insts
    return next(iter(insts.items()))


def _no_traceback(p) -> None:
    assert "Traceback" not in p.stderr + p.stdout, p.stderr


QUICK = """\
# Variables
var MODEL = llama-7b
var WORKDIR = ~/train

# Hosts (machines)
host gpu = placeholder
host backup = {backup}

# Storage
storage output = lake

# Workflow
vast.pick @gpu num_gpus=1 min_gpu_ram=24
vast.wait timeout=5m

# Create a tmux session "work" on the gpu host
tmux.open @gpu as work

# Commands reference the session name, not the host
@work > mkdir -p $WORKDIR && cd $WORKDIR && printf 'print("train")\\n' > train.py
@work > printf 'numpy\\n' > requirements.txt && echo installed
@work > (sleep 1; mkdir -p model; echo "weights of $MODEL" > model/weights.bin) &

wait @work idle timeout=2h

# Transfers reference the host (for SSH connection info)
@gpu:$WORKDIR/model -> @output:/models/$MODEL/
@gpu:$WORKDIR/model -> @backup:{backup_dir}/

vast.cost
vast.stop
tmux.close @work
"""


def test_the_quick_example_end_to_end(tmp_path, ssh, vast, lake, monkeypatch):
    monkeypatch.setenv("TRAINSH_SSH_OPTIONS", f"-F {ssh.config}")  # for the backup host
    backup_dir = ssh.a.home / "backup"
    r = write_recipe(tmp_path / "quick.recipe", QUICK.format(backup=ssh.a.spec(), backup_dir=backup_dir))
    p = train("recipe", "run", str(r), "--no-visual", timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    _no_traceback(p)
    iid, inst = _only(vast)
    state = vast.state()
    assert state["rents"] == 1 and inst["intended_status"] == "stopped" and inst["sshd_pid"] is None
    assert f"@gpu = vast {iid}: 1x RTX 3090" in p.stderr and "rented" in p.stderr  # the cheapest match
    assert f"vast {iid}: stopped" in p.stderr and "session work closed (its machine is stopped)" in p.stderr
    assert "/h, running, up" in p.stderr and "so far" in p.stderr  # vast.cost
    # the folder lands inside, by the rsync rule
    body = lake["s3"].get_object(Bucket=lake["bucket"], Key="models/llama-7b/model/weights.bin")["Body"].read()
    assert body == b"weights of llama-7b\n"
    assert (backup_dir / "model" / "weights.bin").read_bytes() == body
    home = Path(inst["home"])
    assert (home / ".no_auto_tmux").exists()  # cloud images start tmux on login otherwise
    assert "still running" not in p.stderr  # nothing left billing


FAILS = """\
host gpu = placeholder
vast.pick @gpu gpu=RTX_4090
tmux.open @gpu as w
@w > echo working; exit 3
"""


def test_a_failure_after_pick_stops_the_machine(tmp_path, vast):
    r = write_recipe(tmp_path / "f.recipe", FAILS)
    p = train("recipe", "run", str(r), "--no-visual", timeout=120)
    assert p.returncode == 1, p.stderr
    _no_traceback(p)
    iid, inst = _only(vast)
    assert inst["intended_status"] == "stopped"  # stopped, not destroyed: its disk is kept
    assert f"vast {iid} (1x RTX 4090, $0.3" in p.stderr  # its price, with the disk's share
    assert "/h): stopped (the job failed)" in p.stderr


def test_keep_hosts_leaves_it_running_and_says_how_to_stop_it(tmp_path, vast):
    r = write_recipe(tmp_path / "f.recipe", FAILS)
    p = train("recipe", "run", str(r), "--no-visual", "--keep-hosts", timeout=120)
    assert p.returncode == 1, p.stderr
    iid, inst = _only(vast)
    assert inst["intended_status"] == "running" and inst["sshd_pid"]
    assert f"train vast stop {iid}" in p.stderr


RESUMABLE = """\
host gpu = placeholder
vast.pick @gpu
vast.wait timeout=1m
tmux.open @gpu as w
@w > touch ~/started; sleep 3; echo done > ~/finished
@w > cat ~/finished && echo $CONTAINER_ID
"""


def _runner(recipe: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TRAIN, "recipe", "run", str(recipe), "--no-visual", *extra],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _started_on(vast) -> str | None:
    """The instance whose command has started (made ~/started), if any yet."""
    for iid, inst in vast.state()["instances"].items():
        if (Path(inst["home"]) / "started").exists():
            return iid
    return None


def _started(vast) -> str:
    return wait_until(lambda: _started_on(vast), timeout=60, what="the command on the machine to start")


def test_kill_9_then_resume_finishes_on_the_same_machine(tmp_path, vast):
    r = write_recipe(tmp_path / "k.recipe", RESUMABLE)
    proc = _runner(r)
    try:
        iid = _started(vast)
    finally:
        proc.kill()
        proc.communicate()
    status = train("recipe", "status")
    assert f"machine vast {iid}" in status.stdout and f"train vast stop {iid}" in status.stdout
    assert vast.state()["instances"][iid]["intended_status"] == "running"  # the work goes on
    p = train("recipe", "resume", "--no-visual", timeout=120)
    assert p.returncode == 0, p.stderr
    assert vast.state()["rents"] == 1  # no second machine
    assert "done" in p.stdout + p.stderr and iid in p.stdout + p.stderr  # ran on the same one


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_leave_it_running_and_say_what_bills(tmp_path, vast, sig):
    r = write_recipe(tmp_path / "c.recipe", RESUMABLE)
    p = signalled([*TRAIN, "recipe", "run", str(r), "--no-visual"], sig, lambda: _started_on(vast))
    iid, err = _started_on(vast), p.stderr
    assert p.returncode == 130, err
    assert "Traceback" not in err
    assert vast.state()["instances"][iid]["intended_status"] == "running"
    assert f"vast {iid} (1x RTX 3090, $0.2" in err and "/h) is still running and billing" in err
    assert f"train vast stop {iid}" in err


def test_autostop_stops_an_idle_machine_after_train_leaves(tmp_path, vast):
    r = write_recipe(tmp_path / "a.recipe", """\
host gpu = placeholder
vast.pick @gpu
tmux.open @gpu as w
@w > echo hello
""")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "4s", timeout=120)
    assert p.returncode == 0, p.stderr
    iid, inst = _only(vast)
    assert "autostop after 4s" in p.stderr
    assert inst["intended_status"] == "running"  # the job itself stopped nothing
    assert f"vast {iid} (1x RTX 3090, $0.2" in p.stderr and "/h) is still running" in p.stderr
    wait_until(lambda: vast.state()["instances"][iid]["intended_status"] == "stopped",
               timeout=60, what="autostop to stop the machine")
    log = (Path(inst["home"]) / ".cache/trainsh/autostop").glob("*.log")
    assert any("idle for 4s: stopping" in f.read_text() for f in log)


def test_autostop_0_is_off_and_a_bad_duration_is_bad_input(tmp_path, vast):
    r = write_recipe(tmp_path / "a.recipe", "host gpu = placeholder\nvast.pick @gpu\n"
                                            "tmux.open @gpu as w\n@w > true\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "soon")
    assert p.returncode == 2 and "--autostop soon" in p.stderr and len(p.stderr.splitlines()) == 1
    assert vast.state()["rents"] == 0
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    iid, inst = _only(vast)
    assert "autostop after" not in p.stderr
    assert not (Path(inst["home"]) / ".cache/trainsh/autostop").exists()


def test_pick_takes_the_users_stopped_instance_before_renting(tmp_path, vast):
    mine = vast.rent("1002", label="mine")
    vast.api("PUT", f"instances/{mine}/", {"state": "stopped"})
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\n"
                                            "tmux.open @gpu as w\n@w > echo $CONTAINER_ID\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert vast.state()["rents"] == 1  # no new machine
    assert f"@gpu = vast {mine}" in p.stderr and "your stopped instance" in p.stderr
    assert mine in p.stderr  # $CONTAINER_ID, printed on that machine


def test_pick_host_chooses_before_the_run_and_a_vast_host_is_started(tmp_path, vast):
    r = write_recipe(tmp_path / "h.recipe", "host gpu = placeholder\n"
                                            "tmux.open @gpu as w\n@w > echo on $CONTAINER_ID\n")
    p = train("recipe", "run", str(r), "--no-visual", "--pick-host", "gpu", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    iid, inst = _only(vast)
    assert f"on {iid}" in p.stderr and "rented from the offer chosen" in p.stderr
    vast.api("PUT", f"instances/{iid}/", {"state": "stopped"})
    p = train("exec", "@gpu > echo again on $CONTAINER_ID", "--host", f"gpu=vast:{iid}", timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"again on {iid}" in p.stdout and "was stopped: started it" in p.stderr
    # the exec started it, so the exec's end stops it again (see test_exec_stops_what_it_started)
    assert vast.state()["instances"][iid]["intended_status"] == "stopped"


def test_exec_stops_what_it_started_unless_keep_hosts_and_takes_autostop(vast):
    """`train exec` on a stopped `vast:ID` starts it; when the exec ends the machine is stopped
    again (it billed until autostop before), unless --keep-hosts. A machine that was running
    before the exec is left running. --autostop works as for `recipe run`."""
    iid = vast.rent("1001")
    vast.api("PUT", f"instances/{iid}/", {"state": "stopped"})
    p = train("exec", "@gpu > echo on $CONTAINER_ID", "--host", f"gpu=vast:{iid}", "--autostop", "0",
              timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"on {iid}" in p.stdout and "autostop after" not in p.stderr
    assert vast.state()["instances"][iid]["intended_status"] == "stopped"
    assert f"vast {iid} (1x RTX 3090" in p.stderr and "stopped (this exec started it" in p.stderr

    p = train("exec", "@gpu > echo kept", "--host", f"gpu=vast:{iid}", "--keep-hosts", "--autostop", "1h",
              timeout=120)
    assert p.returncode == 0, p.stderr
    inst = vast.state()["instances"][iid]
    assert inst["intended_status"] == "running" and inst["sshd_pid"]  # kept, as asked
    assert "autostop after 1h" in p.stderr and f"train vast stop {iid}" in p.stderr

    p = train("exec", "@gpu > echo found", "--host", f"gpu=vast:{iid}", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert vast.state()["instances"][iid]["intended_status"] == "running"  # running before: not the exec's
    assert "is still running" in p.stderr

    p = train("exec", "@gpu > true", "--host", f"gpu=vast:{iid}", "--autostop", "soon")
    assert p.returncode == 2 and "--autostop soon" in p.stderr and len(p.stderr.splitlines()) == 1
    assert vast.state()["rents"] == 1


@pytest.mark.parametrize("fault", ["wrong key", "api down", "unknown id", "no offer"])
def test_bad_inputs_are_one_clear_line_and_rent_nothing(tmp_path, vast, monkeypatch, fault):
    r = write_recipe(tmp_path / "b.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=H100_SXM num_gpus=9\n"
                     if fault == "no offer" else "host gpu = placeholder\nvast.pick @gpu\n")
    args = ["recipe", "run", str(r), "--no-visual"]
    want = {"wrong key": "Vast.ai", "api down": "Vast.ai", "unknown id": "no instance 999",
            "no offer": "no vast offer matches gpu=H100_SXM num_gpus=9"}[fault]
    if fault == "wrong key":
        monkeypatch.setenv("VAST_API_KEY", "wrong")
    elif fault == "api down":
        vast.control(down=True)
    elif fault == "unknown id":
        args = ["exec", "@gpu > true", "--host", "gpu=vast:999"]
    p = train(*args, timeout=120)
    vast.control(down=False)
    assert p.returncode in (1, 2), p.stderr
    _no_traceback(p)
    lines = [ln for ln in p.stderr.splitlines() if want in ln]
    assert len(lines) == 1, p.stderr
    assert vast.state()["rents"] == 0
    # and --pick-host says so before any job starts
    if fault in ("no offer", "api down"):
        vast.control(down=fault == "api down")
        p = train("recipe", "run", str(r), "--no-visual", "--pick-host", "gpu", timeout=120)
        vast.control(down=False)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        _no_traceback(p)
        assert vast.state()["rents"] == 0


def test_pricing_vast_against_the_fake(vast):
    vast.rent("1004")
    p = train("pricing", "vast")
    assert p.returncode == 0, p.stderr
    assert "A100 SXM4" in p.stdout and "running:" in p.stdout and "cheapest offer" in p.stdout


def test_pick_on_a_terminal_lists_instances_and_offers_and_takes_the_choice(tmp_path, vast):
    from test_bad_input import on_terminal

    mine = vast.rent("1002", label="mine")
    r = write_recipe(tmp_path / "t.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\n"
                                            "tmux.open @gpu as w\n@w > echo on $CONTAINER_ID\n")
    code, out = on_terminal(["recipe", "run", str(r), "--autostop", "0"], ["2"], timeout=120)
    assert code == 0, out
    assert f"instance {mine}" in out  # the user's own first, then the market, cheapest first
    offers = [line.split()[2] for line in out.splitlines() if " offer " in line and ")" in line]
    # (1002 is the user's: a rented ask leaves the market, as the search's default `rented`
    # {"eq": false} has it, search_offers.yaml; this test listed it before the fake knew)
    assert offers[:2] == ["1003", "1006"], out
    state = vast.state()
    assert state["rents"] == 2  # choice 2: the first offer, 1003
    new = next(i for i in state["instances"] if i != mine)
    assert "2x RTX 4090" in out
    # (on a terminal the live view shows the run; its log says where the command ran)
    logs = train("recipe", "logs", "--last").stdout
    assert f"on {new}" in logs, logs


def test_start_wait_cost_stop_on_a_vast_host_and_a_failure_after_start_stops_it(tmp_path, vast):
    iid = vast.rent("1007")
    vast.api("PUT", f"instances/{iid}/", {"state": "stopped"})
    r = write_recipe(tmp_path / "s.recipe", f"""\
host gpu = vast:{iid}
vast.start
vast.wait timeout=1m poll=1s
vast.cost
tmux.open @gpu as w
@w > echo on $CONTAINER_ID
vast.stop
tmux.close @w
""")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"on {iid}" in p.stderr and f"vast {iid}: starting" in p.stderr and "so far" in p.stderr
    assert vast.state()["instances"][iid]["intended_status"] == "stopped"
    r = write_recipe(tmp_path / "f.recipe", f"host gpu = vast:{iid}\nvast.start\n"
                                            "tmux.open @gpu as w\n@w > exit 4\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 1
    assert vast.state()["instances"][iid]["intended_status"] == "stopped"  # the job started it
    assert f"vast {iid} (1x RTX A6000" in p.stderr and "stopped (the job failed)" in p.stderr


def test_wait_times_out_and_stops_the_machine_when_asked(tmp_path, vast):
    vast.control(start_delay=60)
    r = write_recipe(tmp_path / "w.recipe", "host gpu = placeholder\nvast.pick @gpu\n"
                                            "vast.wait timeout=2s poll=1s stop_on_fail=true\n")
    p = train("recipe", "run", str(r), "--no-visual", timeout=120)
    assert p.returncode == 1, p.stderr
    _no_traceback(p)
    iid, inst = _only(vast)
    assert inst["intended_status"] == "stopped"
    assert f"vast {iid} is not ready: starting (loading); stopped it (stop_on_fail)" in p.stderr


def test_a_failure_after_vast_stop_does_not_wait_on_the_stopped_machine(tmp_path, vast):
    r = write_recipe(tmp_path / "s.recipe", """\
host gpu = placeholder
vast.pick @gpu
tmux.open @gpu as w
@w > true
vast.stop
tmux.open @local as l
@l > exit 2
""")
    # its sessions went with it: closing them must not try to reach it (ssh would retry a minute)
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=45)
    assert p.returncode == 1, p.stderr
    iid, inst = _only(vast)
    assert inst["intended_status"] == "stopped"


def test_logs_keep_each_steps_result_and_a_stopped_machine_is_not_called_running(tmp_path, vast):
    """What the cloud steps and notify say is kept with each step (`recipe logs`, job.log); after
    `vast.stop` the end of the run neither calls the machine running nor its session open, and
    `recipe status` lists neither."""
    r = write_recipe(tmp_path / "l.recipe", """\
var WHAT = llama
host gpu = placeholder
vast.pick @gpu
tmux.open @gpu as w
@w > echo on-$CONTAINER_ID
vast.cost
notify trained $WHAT
vast.stop
""")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    iid, inst = _only(vast)
    assert inst["intended_status"] == "stopped"
    assert f"on-{iid}" in p.stderr
    for false in ("still running", "left open", "stop it with"):
        assert false not in p.stderr, p.stderr
    logs = train("recipe", "logs", "--last").stdout
    lines = logs.splitlines()

    def under(step: str) -> list[str]:  # the lines a step's head line has below it
        i = next(n for n, ln in enumerate(lines) if ln.endswith(f": {step}"))
        return [ln.strip() for ln in lines[i + 1:] if ln.startswith("    ")][:1]

    assert under("vast.pick @gpu") == [f"ok @gpu = vast {iid}: 1x RTX 3090, $0.23/h (rented)"], logs
    assert re.fullmatch(rf"ok vast {iid}: \$0\.23/h, running, up \d+s, \$0\.\d\d so far",
                        under("vast.cost")[0]), logs
    assert under("notify trained $WHAT") == [">> trained llama"], logs
    assert under("vast.stop") == [f"ok vast {iid}: stopped (its disk stays and bills storage; "
                                  f"train vast destroy {iid} ends that)"], logs
    job = logs.split()[1]
    text = (Path(os.environ["TRAINSH_HOME"]) / "jobs" / job / "job.log").read_text()
    for said in (f"@gpu = vast {iid}: 1x RTX 3090", "so far", ">> trained llama", f"train vast destroy {iid}"):
        assert said in text, text
    status = train("recipe", "status", "--all").stdout
    assert f"vast {iid}" not in status and "session w" not in status, status


def test_after_a_stop_a_resume_leaves_the_machine_stopped(tmp_path, vast):
    """A job interrupted after `vast.stop`: its session there went with the machine, so the
    resume neither starts the machine again to reopen it nor calls it running."""
    started, release = tmp_path / "started", tmp_path / "release"
    r = write_recipe(tmp_path / "r.recipe", f"""\
host gpu = placeholder
vast.pick @gpu
tmux.open @gpu as w
@w > true
vast.stop
tmux.open @local as l
@l > touch {started}; while [ ! -e {release} ]; do sleep 0.1; done
tmux.close @w
tmux.close @l
""")
    p = signalled([*TRAIN, "recipe", "run", str(r), "--no-visual", "--autostop", "0"], signal.SIGINT,
                  started.exists)
    assert p.returncode == 130, p.stderr
    iid, _ = _only(vast)
    assert "still running" not in p.stderr, p.stderr
    release.touch()
    p = train("recipe", "resume", "--no-visual", timeout=120)
    assert p.returncode == 0, p.stderr
    assert vast.state()["instances"][iid]["intended_status"] == "stopped", p.stderr
    assert "started it" not in p.stderr and "still running" not in p.stderr, p.stderr
    assert "session w closed (its machine is stopped)" in p.stderr, p.stderr


@pytest.mark.parametrize("end", ["done", "failed"])
def test_a_machine_destroyed_during_a_command_is_said_gone(tmp_path, vast, end):
    """The machine is destroyed through the cloud's API while a command runs: the job's end
    says it is gone (nothing bills), not that it could not be released or still runs, and
    waits for neither its session nor its folder."""
    started, release = tmp_path / "started", tmp_path / "release"
    r = write_recipe(tmp_path / "d.recipe", f"""\
host gpu = placeholder
vast.pick @gpu
tmux.open @gpu as w
@w > echo on-$CONTAINER_ID
tmux.open @local as l
@l > touch {started}; while [ ! -e {release} ]; do sleep 0.1; done; (exit {0 if end == "done" else 2})
""")
    proc = _runner(r, "--autostop", "0")
    try:
        wait_until(started.exists, timeout=60, what="the command to start")
        iid, _ = _only(vast)
        vast.api("DELETE", f"instances/{iid}/")
        release.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == (0 if end == "done" else 1), err
    assert vast.state()["destroyed"] == [int(iid)]
    assert f"vast {iid} (1x RTX 3090, $0.23/h) is gone (destroyed outside this job): nothing bills" in err, err
    for false in ("could NOT", "may still bill", "still running", "session w left open",
                  "could not close", "left behind", "stop it with"):
        assert false not in err, err


@pytest.mark.parametrize("status", ["exited", "offline"])
def test_a_machine_that_crashes_while_it_loads_fails_the_job_at_once(tmp_path, vast, status):
    # "exited", "unknown", "offline" "will never reach running" while the disk bills (vast-ai/docs
    # api-reference/hello-world.mdx): the wait ends there, not at its time-out
    vast.control(start_delay=600)
    r = write_recipe(tmp_path / "x.recipe", "host gpu = placeholder\nvast.pick @gpu\nvast.wait timeout=5m\n"
                                            "tmux.open @gpu as w\n@w > echo never\n")
    proc = _runner(r)
    try:
        wait_until(lambda: vast.state()["instances"] or proc.poll() is not None, timeout=60, what="a rent")
        iid = next(iter(vast.state()["instances"]), None)
        assert iid, proc.communicate()
        vast.crash(iid, status)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 1, err
    assert "Traceback" not in out + err and "never" not in out
    why = {"exited": "exited: the container stopped", "offline": "offline: the host is disconnected"}[status]
    assert f"vast {iid} crashed ({why})" in err, err
    assert vast.state()["instances"][iid]["intended_status"] == "stopped"  # released as a failed job's
    assert "/h): stopped (the job failed)" in err


def test_pick_host_choosing_a_stopped_instance_starts_it_as_the_pick_step_would(tmp_path, vast):
    mine = vast.rent("1002", label="mine")
    vast.api("PUT", f"instances/{mine}/", {"state": "stopped"})
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\n"
                                            "tmux.open @gpu as w\n@w > echo on $CONTAINER_ID\n")
    p = train("recipe", "run", str(r), "--no-visual", "--pick-host", "gpu", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"on {mine}" in p.stderr and vast.state()["rents"] == 1  # started, nothing rented
    assert vast.state()["instances"][mine]["actual_status"] == "running"
