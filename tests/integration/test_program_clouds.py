"""A Python recipe's clouds and clusters: `job.pick` over both cloud fakes, `job.vast.pick(...,
interruptible=True, recover=1)` whose machine is outbid mid-command (the program catches
ts.HostLost, opens its session on the replacement and finishes; a kill -9 in the replacement's
rent and a resume make exactly one), `job.host("vast:ID")` on an instance of the user's, and
`job.slurm.alloc` on the real Slurm cluster. The fakes' own state is the evidence."""

from __future__ import annotations

from pathlib import Path

from helpers import start, train, wait_until, write_recipe
from test_pick import both, rtx4090_at  # noqa: F401 - `both`: a fixture (the two cloud fakes)
from test_recovery import TRAIN_PY, _epochs, _training_on, one_replacement_after_a_kill_in_its_rent
from test_slurm import login, machines

CHEAP = '''
import trainsh as ts


def main(job):
    gpu = job.pick("gpu", clouds=["vast", "runpod"], gpu="RTX_4090", num_gpus=2, max_dph=2)
    print("picked", gpu.spec)
'''


def test_job_pick_over_both_clouds_takes_the_cheaper(tmp_path, both, monkeypatch):
    vast, runpod = both
    rtx4090_at(monkeypatch, 0.30)  # 2 x 0.30 = $0.60/h; Vast's cheapest 2-GPU one is $0.68/h
    p = train("recipe", "run", str(write_recipe(tmp_path / "cheap.py", CHEAP)), "--no-visual",
              "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    (pid, pod), = runpod.state()["pods"].items()
    assert pod["gpuCount"] == 2 and vast.state()["rents"] == 0
    assert f"picked runpod:{pid}" in p.stdout
    assert "others: vast 1003 $0.68/h" in p.stderr
    train("runpod", "destroy", pid, "--yes")


SPOT = '''
import trainsh as ts


def main(job, tmp: str, epochs: int = 5):
    gpu = job.vast.pick("gpu", gpu="RTX_4090", interruptible=True, recover=1)
    while True:  # the work on a machine that may be lost: again on its replacement
        try:
            gpu.wait(timeout="60s")
            work = gpu.open("work")
            work.run(f"python3 {tmp}/train.py {tmp}/ckpt {epochs}")
            break
        except ts.HostLost as e:
            print("lost", e.host.spec, f"({e.why})", "->", e.replaced_by.spec)
            gpu = e.replaced_by
    work.close()
'''


def _spot(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN_PY)
    return write_recipe(tmp_path / "spot.py", SPOT)


def test_an_outbid_machine_raises_host_lost_and_the_program_goes_on_on_its_replacement(tmp_path, vast):
    proc = start("recipe", "run", str(_spot(tmp_path)), "--var", f"tmp={tmp_path}")
    first = _training_on(vast, tmp_path, 2)
    vast.preempt(first)
    wait_until(lambda: _epochs(tmp_path)[-1][1] != first, timeout=60, what="training on the replacement")
    proc.kill()  # a resume replays the loss and the replacement from the journal
    _, said = proc.communicate()
    assert f"vast {first} was lost (paused: outbid)" in said and "recovering (1 of 1)" in said
    r = train("recipe", "resume", "--no-visual", timeout=180)
    out, err = r.stdout, r.stderr
    assert r.returncode == 0, err
    assert "Traceback" not in out + err
    epochs = _epochs(tmp_path)
    assert sorted(e for e, _ in epochs) == [1, 2, 3, 4, 5]  # each once: from its checkpoint
    state = vast.state()
    (second, inst), = state["instances"].items()
    assert {who for _, who in epochs} == {first, second} and epochs[-1][1] == second
    assert int(first) in state["destroyed"] and state["rents"] == 2
    assert inst["label"].endswith("-gpu-r1")
    assert f"lost vast:{first} (paused: outbid) -> vast:{second}" in out
    train("vast", "destroy", second, "--yes")


def test_a_kill_during_the_programs_replacement_rent_then_resume_makes_exactly_one(tmp_path, vast):
    proc = start("recipe", "run", str(_spot(tmp_path)), "--var", f"tmp={tmp_path}", "--var", "epochs=4")
    first, second, r = one_replacement_after_a_kill_in_its_rent(vast, proc, tmp_path, 4)
    assert f"lost vast:{first} (paused: outbid) -> vast:{second}" in r.stdout  # told on the resume
    train("vast", "destroy", second, "--yes")


def test_a_loss_past_recover_fails_the_program_in_the_recipes_one_line(tmp_path, vast):
    proc = start("recipe", "run", str(_spot(tmp_path)), "--var", f"tmp={tmp_path}", "--var", "epochs=20")
    first = _training_on(vast, tmp_path, 1)
    vast.preempt(first)
    wait_until(lambda: _epochs(tmp_path)[-1][1] != first, timeout=60, what="training on the replacement")
    second = _epochs(tmp_path)[-1][1]
    vast.preempt(second)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in out + err
    assert f"@gpu lost 2 machines, more than recover=1: vast {first} (paused: outbid), vast {second}" in err
    state = vast.state()
    assert not state["instances"] and {int(first), int(second)} <= set(state["destroyed"])
    assert state["rents"] == 2


def test_job_host_runs_a_command_on_an_existing_vast_instance(tmp_path, vast):
    iid = vast.rent("1007")
    prog = write_recipe(tmp_path / "mine.py", '''
import trainsh as ts


def main(job, iid: str):
    gpu = job.host(f"vast:{iid}", name="gpu")
    r = gpu.open("w").run("echo on $CONTAINER_ID")
    print(r.output.strip(), gpu.spec)
''')
    p = train("recipe", "run", str(prog), "--no-visual", "--autostop", "0", "--var", f"iid={iid}",
              timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"on {iid} vast:{iid}" in p.stdout
    assert vast.state()["rents"] == 1  # the user's own: nothing rented
    train("vast", "destroy", iid, "--yes")


def test_job_slurm_alloc_runs_a_command_in_an_allocation_and_releases_it(slurm, tmp_path):
    prog = write_recipe(tmp_path / "alloc.py", '''
import trainsh as ts


def main(job, login: str):
    cluster = job.slurm.alloc(login, "cluster", nodes=2, time="10m")
    cluster.wait(timeout="30s")
    r = cluster.open("work").run("srun -n2 printenv SLURMD_NODENAME | sort | tr '\\\\n' ' '")
    print("nodes:", r.output.strip())
    cluster.release()
''')
    p = train("recipe", "run", str(prog), "--no-visual", "--var", f"login={login(slurm)}")
    assert p.returncode == 0, p.stderr
    assert "nodes: n1 n2" in p.stdout
    [m] = machines()
    assert (m["host"], m["kind"], m["how"], m["state"]) == ("cluster", "slurm", "allocated", "released")
    wait_until(lambda: slurm.jobs() == [], what="the allocation to end")
