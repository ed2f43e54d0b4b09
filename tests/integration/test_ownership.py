"""We own what we rent: a job never picks, reuses or stops a machine another live job or `ow`
holds, a label the user chose never names an older machine, and a machine stopped from outside
is said to be so at once. Against the Vast.ai and RunPod fakes (real sshd machines, real tmux);
each test counts what the fake itself has."""

from __future__ import annotations

import re
import signal

from helpers import HOLDS, TRAIN, signalled, started_on, train, wait_until, write_recipe



def _interrupted_job_holding(tmp_path, vast) -> str:
    """A job that rented a machine and was interrupted with its command running: resumable,
    so the machine is still the job's. Returns the instance id."""
    r = write_recipe(tmp_path / "a.recipe", HOLDS)
    p = signalled([*TRAIN, "recipe", "run", str(r), "--no-visual", "--autostop", "0"], signal.SIGINT,
                  lambda: started_on(vast), timeout=90)
    assert p.returncode == 130, p.stderr
    iid = started_on(vast)
    assert vast.state()["instances"][iid]["intended_status"] == "running"
    return iid


def test_a_second_job_never_takes_or_stops_a_machine_another_job_holds(tmp_path, vast):
    held = _interrupted_job_holding(tmp_path, vast)
    r = write_recipe(tmp_path / "b.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\n"
                                            "tmux.open @gpu as w\n@w > echo on $CONTAINER_ID\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    state = vast.state()
    assert state["rents"] == 2  # B rented its own
    mine = next(i for i in state["instances"] if i != held)
    assert f"@gpu = vast {mine}" in p.stderr and "rented" in p.stderr
    assert "your running instance" not in p.stderr and f"on {held}" not in p.stderr

    # a stop step naming the held machine is refused, and the machine runs on
    r = write_recipe(tmp_path / "s.recipe", f"vast.stop {held}\n")
    p = train("recipe", "run", str(r), "--no-visual", timeout=60)
    assert p.returncode == 1, p.stderr
    assert f"vast {held} is held by job " in p.stderr and "does not stop it" in p.stderr
    assert vast.state()["instances"][held]["intended_status"] == "running"

    # --pick-host (headless) chooses the same way
    r = write_recipe(tmp_path / "h.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\n"
                                            "vast.stop\n")
    p = train("recipe", "run", str(r), "--no-visual", "--pick-host", "gpu", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"vast {held}" not in p.stderr
    assert vast.state()["instances"][held]["intended_status"] == "running"


def test_once_the_holding_job_is_done_its_stopped_machine_is_the_users_again(tmp_path, vast):
    r = write_recipe(tmp_path / "a.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\n"
                                            "vast.stop\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    (first,) = vast.state()["instances"]
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert vast.state()["rents"] == 1 and f"@gpu = vast {first}" in p.stderr  # reused, not rented


def test_a_pick_never_takes_a_machine_ow_holds(tmp_path, runpod_fake):
    c = train("runpod", "create", "RTX4090", "--label", "ow-0123abcd", timeout=60)  # as ow --no-terminate leaves it
    assert c.returncode == 0, c.stderr
    (kept,) = runpod_fake.state()["pods"]
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\nrunpod.pick @gpu gpu=RTX4090\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    pods = runpod_fake.state()["pods"]
    assert len(pods) == 2 and f"runpod {kept}" not in p.stderr, p.stderr


def test_a_machine_stopped_outside_the_job_is_said_at_once(tmp_path, vast):
    r = write_recipe(tmp_path / "a.recipe", HOLDS.replace("sleep 600", "sleep 600; echo never"))
    proc_out = {}

    def stop_it() -> bool:
        iid = started_on(vast)
        if iid:
            vast.api("PUT", f"instances/{iid}/", {"state": "stopped"})
            proc_out["iid"] = iid
        return bool(iid)

    import subprocess

    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual", "--autostop", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(stop_it, timeout=90, what="the command to start")
        out, err = proc.communicate(timeout=50)  # well inside ssh's 60 s of reconnecting
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert f"vast {proc_out['iid']} was stopped outside this job" in err
    assert "Connection refused" not in err  # not an ssh failure after its reconnect time


def test_create_with_a_label_the_user_has_used_names_the_new_machine(vast):
    old = vast.rent("1001", label="mine")
    vast.control(fail_after_create=1)  # the rent is made, then its answer is a 500
    p = train("vast", "create", "1002", "--label", "mine", timeout=120)
    assert p.returncode == 0, p.stderr
    insts = vast.state()["instances"]
    new = next(i for i in insts if i != old)
    assert len(insts) == 2 and f"vast {new}:" in p.stdout and f"vast {old}:" not in p.stdout, p.stdout


def test_the_terminal_menu_shows_a_held_machine_as_taken_and_never_offers_it(tmp_path, vast):
    import io

    from trainsh.cloud.provider import provider
    from trainsh.runtime import clouds
    from trainsh.runtime.holds import Holds
    from trainsh.runtime.journal import Journal

    held = _interrupted_job_holding(tmp_path, vast)
    free = vast.rent("1003", label="mine")  # (1002 is the held job's: a rented ask is off the market)
    out = io.StringIO()
    asked = []
    choice = clouds.choose(provider("vast"), clouds.pick_options(_NO_RECIPE, "gpu", "vast") |
                           {"gpu": "RTX_4090"}, out=out, ask=lambda q: asked.append(q) or "1",
                           holds=Holds(Journal()))
    menu = out.getvalue()
    assert choice == {"instance": free}, menu
    taken = [ln for ln in menu.splitlines() if held in ln]
    assert len(taken) == 1 and "taken" in taken[0] and "held by job " in taken[0], menu
    assert not re.search(rf"^\s+\d+\) instance\s+{held}\b", menu, re.M)


class _NoRecipe:
    steps: list = []


_NO_RECIPE = _NoRecipe()
