"""A job that loses its Slurm allocation goes on (`slurm.alloc ... recover=N`), on the real test
cluster (tests/slurmd.py): the test cancels the job's allocation with scancel mid-command, as
an administrator or a preemption would end it; the job asks for a new one and runs the
allocation's steps again in it. A spent budget fails in one line, a failing command in a live
allocation is no loss, and a kill -9 while the replacement waits, then a resume, makes no
third allocation. Slurm's own queue is the evidence, looked at only for this job's jobs."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from helpers import TRAIN, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal

RECIPE = """\
host login = local
tmux.open @login as here
@here > echo ran >> {tmp}/local.log
slurm.alloc @login as cl nodes=1 time=5m {recover}
tmux.open @cl as work
@work > echo $SLURM_JOB_ID >> {tmp}/ids; while [ ! -e {tmp}/go-$SLURM_JOB_ID ]; do sleep 0.05; done
@work > echo after $SLURM_JOB_ID >> {tmp}/ids
slurm.release @cl
tmux.close @here
"""


def _recipe(tmp_path: Path, recover: str = "recover=1") -> Path:
    return write_recipe(tmp_path / "r.recipe", RECIPE.format(tmp=tmp_path, recover=recover))


def _runner(recipe: Path) -> subprocess.Popen:
    return subprocess.Popen([*TRAIN, "recipe", "run", str(recipe), "--no-visual"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ids(tmp_path: Path) -> list[str]:
    f = tmp_path / "ids"
    return f.read_text().split("\n")[:-1] if f.exists() else []


def _running_in(tmp_path: Path, n: int) -> str:
    """The allocation the waiting command runs in the n-th time."""
    wait_until(lambda: len(_ids(tmp_path)) >= n, timeout=60, what=f"the command's run {n}")
    return _ids(tmp_path)[n - 1]


def _job() -> tuple[str, list]:
    j = Journal()
    try:
        row = j.db.execute("SELECT job_id FROM machines ORDER BY rowid DESC").fetchone()
        job = j.job(row["job_id"])
        return job.id, job.options.get("lost", [])
    finally:
        j.close()


def _allocations(slurm, job_id: str) -> dict[str, str]:
    """This job's allocations Slurm knows of, running or ended: id -> job name."""
    out = slurm.run("scontrol", "show", "job", "-o").stdout
    found = {}
    for line in out.splitlines():
        kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
        if kv.get("JobName", "").startswith(f"trainsh-{job_id}-"):
            found[kv["JobId"]] = kv["JobName"]
    return found


def _live(slurm, job_id: str) -> list[str]:
    return [ln.split("|")[0] for ln in slurm.jobs() if f"|trainsh-{job_id}-" in ln]


def test_a_cancelled_allocation_is_replaced_and_its_steps_run_again(slurm, tmp_path):
    p = _runner(_recipe(tmp_path))
    first = _running_in(tmp_path, 1)
    assert slurm.run("scancel", first).returncode == 0  # as an administrator would
    second = _running_in(tmp_path, 2)
    assert second != first
    (tmp_path / f"go-{second}").touch()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert _ids(tmp_path) == [first, second, f"after {second}"]
    assert (tmp_path / "local.log").read_text() == "ran\n"  # only the allocation's steps again
    assert f"slurm {first} was lost (cancelled outside the job)" in err and "recovering (1 of 1)" in err
    job_id, lost = _job()
    assert [(x["host"], x["kind"], x["ident"], x["why"]) for x in lost] == \
        [("cl", "slurm", first, "cancelled outside the job")]
    assert lost[0]["replaced_by"] == second
    assert sorted(_allocations(slurm, job_id).values()) == [f"trainsh-{job_id}-cl", f"trainsh-{job_id}-cl-r1"]
    wait_until(lambda: _live(slurm, job_id) == [], what="the job's allocations to end")
    logs = train("recipe", "logs", "--last").stdout
    assert f"lost: @cl slurm {first} (cancelled outside the job)" in logs and f"replaced by slurm {second}" in logs


def test_losing_more_allocations_than_recover_allows_fails_in_one_line(slurm, tmp_path):
    p = _runner(_recipe(tmp_path))
    first = _running_in(tmp_path, 1)
    slurm.run("scancel", first)
    second = _running_in(tmp_path, 2)
    slurm.run("scancel", second)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1
    assert (f"@cl lost 2 allocations, more than recover=1: slurm {first} (cancelled outside the job), "
            f"slurm {second} (cancelled outside the job)") in err
    assert "Traceback" not in err
    job_id, lost = _job()
    assert [x["ident"] for x in lost] == [first, second]
    wait_until(lambda: _live(slurm, job_id) == [], what="the job's allocations to end")


def test_a_failing_command_in_a_live_allocation_is_no_loss(slurm, tmp_path):
    r = write_recipe(tmp_path / "fails.recipe", """\
host login = local
slurm.alloc @login as cl recover=3
tmux.open @cl as work
@work > sh -c 'exit 3'
""")
    p = train("recipe", "run", str(r), "--no-visual", timeout=120)
    assert p.returncode == 1 and "exited with code 3" in p.stderr, p.stderr
    assert "recovering" not in p.stderr
    job_id, lost = _job()
    assert lost == [] and list(_allocations(slurm, job_id).values()) == [f"trainsh-{job_id}-cl"]


def test_a_kill_while_the_replacement_waits_then_resume_makes_no_third(slurm, tmp_path):
    p = _runner(_recipe(tmp_path))
    first = _running_in(tmp_path, 1)
    job_id, _ = _job()
    # the whole cluster, asked for ahead of the replacement: it waits behind this one
    blocker = slurm.run("sbatch", "--parsable", "-N2", "-n4", "-o", "/dev/null", "-J", f"blocker-{job_id}",
                        "--wrap", "sleep 300").stdout.strip()
    slurm.run("scancel", first)
    wait_until(lambda: len(_allocations(slurm, job_id)) == 2, timeout=60, what="the replacement's request")
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    [second] = [i for i in _allocations(slurm, job_id) if i != first]
    slurm.run("scancel", blocker)
    (tmp_path / f"go-{second}").touch()
    r = train("recipe", "resume", "--no-visual", timeout=120)
    assert r.returncode == 0, r.stderr
    assert _ids(tmp_path) == [first, second, f"after {second}"]
    assert sorted(_allocations(slurm, job_id).values()) == [f"trainsh-{job_id}-cl", f"trainsh-{job_id}-cl-r1"]
    wait_until(lambda: _live(slurm, job_id) == [], what="the job's allocations to end")
