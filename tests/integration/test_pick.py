"""`pick @host` over several clouds and `train pick`, against the Vast.ai and RunPod fakes running
together (real HTTP, real sshd machines): the cheaper cloud's offer per GPU hour is taken, an
offer that cannot be had falls through to the next with one machine rented in all, a cloud
without a key is left out (or refused when named), and a failed job releases what it took."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import TRAIN, train, write_recipe

RTX4090 = "NVIDIA GeForce RTX 4090"


@pytest.fixture
def both(vast, runpod_fake):
    """Both fakes; runpod_fake's config (its ssh key) is the one in force, and Vast attaches that
    key to each machine it rents, so logins work on either cloud."""
    return vast, runpod_fake


def rtx4090_at(monkeypatch, community: float) -> None:
    """RunPod's community price of an RTX 4090 per GPU hour (the fake reads its table per call)."""
    import fakes.runpod as fake

    monkeypatch.setattr(fake, "GPU_TYPES", [(g[0], g[1], g[2], community, g[4]) if g[0] == RTX4090 else g
                                            for g in fake.GPU_TYPES])


def pods(fake) -> dict:
    return {pid: m for pid, m in fake.state()["machines"].items()}


def one_line(p, want: str) -> None:
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and want in p.stderr, p.stderr


FAILS = """\
host gpu = placeholder
pick @gpu {clouds}gpu=RTX_4090 num_gpus=2 max_dph=2
tmux.open @gpu as w
@w > echo working; false
"""


def test_runpod_cheaper_per_gpu_hour_is_rented_and_released_when_the_job_fails(tmp_path, both, monkeypatch):
    vast, runpod = both
    rtx4090_at(monkeypatch, 0.30)  # 2 x 0.30 = $0.60/h; Vast's cheapest 2-GPU one is $0.68/h
    r = write_recipe(tmp_path / "p.recipe", FAILS.format(clouds="clouds=vast,runpod "))
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    (pid, pod), = runpod.state()["pods"].items()
    assert pod["gpuTypeId"] == RTX4090 and pod["gpuCount"] == 2
    assert pod["desiredStatus"] == "EXITED"  # released (stopped) as the job failed
    assert vast.state()["rents"] == 0 and not vast.state()["instances"]
    said = [ln for ln in p.stderr.splitlines() if "@gpu = runpod" in ln]
    assert len(said) == 1, p.stderr
    assert f"@gpu = runpod {pid}: 2x RTX 4090, $0.60/h ($0.300/GPU/h), rented offer 2x {RTX4090}@COMMUNITY" in said[0]
    assert "others: vast 1003 $0.68/h ($0.340/GPU/h)" in said[0]
    assert "stopped (the job failed)" in p.stderr


def test_vast_cheaper_per_gpu_hour_wins_and_train_pick_shows_the_same_order(tmp_path, both, monkeypatch):
    vast, runpod = both
    rtx4090_at(monkeypatch, 0.40)  # $0.80/h for 2; Vast: 1003 2x $0.68/h, 1006 4x $1.45/h
    p = train("pick", "--gpu", "rtx4090", "--num-gpus", "2", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert all(list(r) == ["cloud", "id", "gpu", "num_gpus", "$/h", "$/GPU/h"] for r in rows)
    # per GPU hour: the 4-GPU machine ($0.3625/GPU/h) before RunPod's 2 GPUs at $0.80/h
    assert [(r["cloud"], r["id"], r["num_gpus"]) for r in rows[:3]] == [
        ("vast", "1003", 2), ("vast", "1006", 4), ("runpod", f"2x {RTX4090}@COMMUNITY", 2)]
    assert rows[0]["$/h"] == 0.68 and rows[0]["$/GPU/h"] == 0.34 and rows[2]["$/GPU/h"] == 0.4
    table = train("pick", "--gpu", "RTX_4090", "--num-gpus", "2")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["CLOUD", "OFFER"] and lines[1].split()[:2] == ["vast", "1003"]
    assert vast.state()["rents"] == 0 and not runpod.state()["pods"]  # nothing rented by a look

    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\npick @gpu gpu=RTX_4090 num_gpus=2\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    (iid, inst), = vast.state()["instances"].items()
    assert vast.state()["rents"] == 1 and not runpod.state()["pods"]
    assert f"@gpu = vast {iid}: 2x RTX 4090" in p.stderr and "rented offer 1003" in p.stderr
    assert f"others: runpod 2x {RTX4090}@COMMUNITY $0.80/h ($0.400/GPU/h)" in p.stderr


def test_an_offer_that_cannot_be_had_falls_through_and_one_machine_is_rented(tmp_path, both, monkeypatch):
    vast, runpod = both
    rtx4090_at(monkeypatch, 0.40)  # Vast is cheaper, but has no capacity
    vast.control(no_capacity=True)
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\npick @gpu gpu=RTX4090 num_gpus=2\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "vast offer 1003 cannot be had" in p.stderr and "vast offer 1006 cannot be had" in p.stderr
    assert "others: vast 1003 $0.68/h ($0.340/GPU/h) (could not be had)" in p.stderr
    state = vast.state()
    assert state["rents"] == 0 and not state["machines"]  # every Vast rent refused, nothing made
    (pid, pod), = runpod.state()["pods"].items()
    assert pod["gpuCount"] == 2 and f"@gpu = runpod {pid}" in p.stderr


def test_a_cloud_without_a_key_is_left_out_unless_named(tmp_path, runpod_fake, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    p = train("pick", "--gpu", "RTX_4090", "--json")
    assert p.returncode == 0, p.stderr
    assert "vast left out: Vast.ai: no API key" in p.stderr
    assert {r["cloud"] for r in json.loads(p.stdout)} == {"runpod"}
    named = train("pick", "--gpu", "RTX_4090", "--clouds", "runpod,vast")
    assert named.returncode == 1
    one_line(named, "Vast.ai: no API key")

    r = write_recipe(tmp_path / "n.recipe", "host gpu = placeholder\npick @gpu clouds=vast,runpod gpu=RTX_4090\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 1 and "Vast.ai: no API key" in p.stderr and "Traceback" not in p.stderr
    assert not runpod_fake.state()["pods"]
    r = write_recipe(tmp_path / "d.recipe", "host gpu = placeholder\npick @gpu gpu=RTX_4090\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "vast left out: Vast.ai: no API key" in p.stderr
    (pid, pod), = runpod_fake.state()["pods"].items()
    assert f"@gpu = runpod {pid}: 1x RTX 4090" in p.stderr and "others" not in p.stderr


@pytest.mark.parametrize("args, want", [
    (["--gpu", "RTX_4090", "--num-gpus", "0"], "argument --num-gpus: '0' is out of range"),
    (["--gpu", "RTX_4090", "--max-dph", "nan"], "argument --max-dph: 'nan' is out of range"),
    (["--gpu", "RTX_4090", "--min-gpu-ram", "lots"], "argument --min-gpu-ram: 'lots' is not a number"),
    (["--gpu", "RTX_4090", "--clouds", "vast,aws"], "argument --clouds: unknown cloud 'aws'"),
    (["--limit", "0"], "argument --limit: '0' is out of range"),
    (["--clouds", ""], "argument --clouds: a comma-separated list of clouds (vast, runpod)"),
])
def test_train_pick_bad_input_is_one_line(args, want):
    p = train("pick", *args)
    assert p.returncode == 2
    one_line(p, want)


def test_recipe_check_takes_pick_and_names_each_mistake(tmp_path):
    good = write_recipe(tmp_path / "g.recipe", "host gpu = placeholder\n"
                        "pick @gpu clouds=vast,runpod num_gpus=1 gpu=RTX_4090 min_gpu_ram=24 max_dph=0.8\n"
                        "tmux.open @gpu as w\n@w > nvidia-smi\n")
    p = train("recipe", "check", str(good))
    assert p.returncode == 0, p.stdout + p.stderr
    bad = write_recipe(tmp_path / "b.recipe", "host gpu = placeholder\n"
                       "pick @gpu clouds=vast,aws\npick @gpu max_dph=cheap\npick @gpu spot=true\n")
    p = train("recipe", "check", str(bad))
    assert p.returncode == 2
    assert f"{bad}:2:18: clouds=: unknown cloud 'aws' (known: vast, runpod)" in p.stderr
    assert f"{bad}:3:19: max_dph= takes a number, got 'cheap'" in p.stderr
    assert f"{bad}:4:11: unknown pick option 'spot'" in p.stderr
    assert "Traceback" not in p.stderr


def test_a_lost_answer_is_settled_not_fallen_through(tmp_path, both, monkeypatch):
    """Vast makes the machine and the answer is lost (the connection drops, its list lags): the
    rents ledger finds the machine by its label; RunPod is never asked to rent a second one."""
    vast, runpod = both
    rtx4090_at(monkeypatch, 0.40)
    vast.control(garble_create="drop", list_lag=3)
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\npick @gpu gpu=RTX_4090 num_gpus=2\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    (iid, m), = vast.state()["machines"].items()
    assert not m["destroyed"] and f"@gpu = vast {iid}" in p.stderr and "cannot be had" not in p.stderr
    assert not runpod.state()["machines"]


def test_your_own_free_machine_comes_before_a_cheaper_offer(tmp_path, both, monkeypatch):
    from trainsh.cloud.provider import CreateRequest
    from trainsh.cloud.runpod import RunPodProvider

    vast, runpod = both
    rtx4090_at(monkeypatch, 0.40)  # Vast's 1003 ($0.34/GPU/h) is cheaper than a pod ($0.40/h)
    mine = RunPodProvider().create(f"{RTX4090}@COMMUNITY", CreateRequest(
        image="img", disk_gb=20, label="mine", public_key=runpod.public_key))
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\npick @gpu gpu=RTX4090\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"@gpu = runpod {mine.id}: 1x RTX 4090" in p.stderr and "your running instance" in p.stderr
    assert "others: vast 1003 $0.68/h ($0.340/GPU/h)" in p.stderr, p.stderr
    assert vast.state()["rents"] == 0 and list(runpod.state()["machines"]) == [mine.id]


def test_a_rent_cut_short_by_kill_9_is_found_on_resume_not_made_again(tmp_path, both, monkeypatch):
    """Killed while RunPod holds the answer to its rent: the resumed pick finds that pod by the
    rent's label (the ledger names its cloud) and rents nothing more on either cloud."""
    vast, runpod = both
    rtx4090_at(monkeypatch, 0.30)
    runpod.control(slow_create=30)
    r = write_recipe(tmp_path / "k.recipe", "host gpu = placeholder\npick @gpu gpu=RTX_4090\n"
                     "tmux.open @gpu as w\n@w > echo on-$RUNPOD_POD_ID\n")
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual", "--autostop", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        runpod.wait_creating(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    runpod.control(slow_create=0)
    (pid, _), = runpod.state()["machines"].items()
    p = train("recipe", "resume", "--no-visual", timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"@gpu = runpod {pid}" in p.stderr and list(runpod.state()["machines"]) == [pid]
    assert vast.state()["rents"] == 0
    logs = train("recipe", "logs", "--last")
    assert f"on-{pid}" in logs.stdout, logs.stdout + logs.stderr
