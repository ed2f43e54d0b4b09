"""Resume after the runner dies: nothing repeated, nothing lost, exit codes picked up."""

from __future__ import annotations

import os
import time
import signal
import subprocess

from helpers import TRAIN, tmux, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal


def job_state():
    j = Journal()
    try:
        jobs = j.jobs(1)
        if not jobs:
            return None, []
        return jobs[0], j.steps(jobs[0].id)
    finally:
        j.close()


def start(recipe) -> subprocess.Popen:
    return subprocess.Popen([*TRAIN, "recipe", "run", str(recipe), "--no-visual"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def kill_9_in_step_3(recipe, folder) -> None:
    """Run the recipe and kill -9 its runner once step 3 has started (it touches `started`)."""
    proc = start(recipe)
    wait_until(lambda: (folder / "started").exists(), what="step 3 to start")
    proc.kill()
    proc.wait()


def running_step(idx: int):
    def check():
        _, steps = job_state()
        return len(steps) > idx and steps[idx]["status"] == "running"
    return check


RECIPE = """
tmux.open @local as w
@w > echo one >> log.txt
@w > touch started; while [ ! -e release ]; do sleep 0.05; done; echo two >> log.txt; (exit 5)
@w > echo three >> log.txt
"""


def test_kill_9_mid_command_then_resume_waits_for_the_same_command(tmp_path):
    r = write_recipe(tmp_path / "r.recipe", RECIPE.replace("(exit 5)", "true"))
    kill_9_in_step_3(r, tmp_path)
    job, steps = job_state()
    assert job.shown_status == "interrupted"  # the runner is gone
    assert steps[2]["status"] == "running"
    (tmp_path / "release").touch()  # the command goes on in tmux and ends meanwhile, or later
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "picking up the command sent before the runner stopped" in p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\nthree\n"
    job, steps = job_state()
    assert job.status == "done"
    assert [s["status"] for s in steps] == ["done"] * 4


def test_a_command_that_ended_while_the_runner_was_dead_keeps_its_exit_code(tmp_path):
    r = write_recipe(tmp_path / "r.recipe", RECIPE)
    kill_9_in_step_3(r, tmp_path)
    (tmp_path / "release").touch()
    wait_until(lambda: "two" in (tmp_path / "log.txt").read_text(), what="the command to end")
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 1
    assert "command exited with code 5" in p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\n"  # not run twice, nothing after
    _, steps = job_state()
    assert steps[2]["exit_code"] == 5


def test_ctrl_c_marks_the_job_interrupted_and_keeps_the_command_running(tmp_path):
    r = write_recipe(tmp_path / "r.recipe", RECIPE.replace("(exit 5)", "true"))
    proc = start(r)
    wait_until(lambda: (tmp_path / "started").exists(), what="step 3 to start")
    wait_until(running_step(2), what="the journal to show step 3 running")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "train recipe resume" in err
    job, _ = job_state()
    assert job.status == "interrupted"
    assert tmux("ls").returncode == 0  # the session (and its command) live on
    (tmp_path / "release").touch()
    p = train("recipe", "resume", job.id, "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\nthree\n"


def test_sigterm_is_an_interruption_too(tmp_path):
    r = write_recipe(tmp_path / "r.recipe", RECIPE)
    proc = start(r)
    wait_until(running_step(2), what="step 3 to run")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    job, _ = job_state()
    assert job.status == "interrupted"
    (tmp_path / "release").touch()


def test_a_vanished_session_is_opened_again_and_the_lost_command_reruns(tmp_path):
    r = write_recipe(tmp_path / "r.recipe", RECIPE.replace("(exit 5)", "true"))
    kill_9_in_step_3(r, tmp_path)
    tmux("kill-server")  # the machine rebooted, say
    os.remove(tmp_path / "started")
    (tmp_path / "release").touch()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "no longer exists: opening it again" in p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\nthree\n"
    assert (tmp_path / "started").exists(), p.stderr  # step 3 ran again


def test_resume_refuses_a_live_or_finished_job(tmp_path):
    r = write_recipe(tmp_path / "ok.recipe", "tmux.open @local as w\n@w > true\n")
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    job, _ = job_state()
    p = train("recipe", "resume", job.id)
    assert p.returncode == 2 and "finished; nothing to resume" in p.stderr
    p = train("recipe", "resume")
    assert p.returncode == 2 and "no interrupted job to resume" in p.stderr


def test_resume_does_not_rerun_a_background_command_that_failed(tmp_path):
    r = write_recipe(tmp_path / "bg.recipe", """
tmux.open @local as w
@w > echo RUN-BG >> bg.txt; false &
@w > echo second
@w > touch started; while [ ! -e release ]; do sleep 0.05; done
""")
    proc = start(r)
    wait_until(lambda: (tmp_path / "started").exists(), what="step 4 to start")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    (tmp_path / "release").touch()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "bg.txt").read_text() == "RUN-BG\n"


def test_a_failed_job_resumes_in_sessions_opened_again(tmp_path):
    r = write_recipe(tmp_path / "f.recipe", """
tmux.open @local as w
@w > echo one >> log.txt
@w > test -e flag
@w > echo after >> log.txt
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    (tmp_path / "flag").touch()
    job, _ = job_state()
    p = train("recipe", "resume", job.id, "--no-visual")  # a failed job is resumed by its id
    assert p.returncode == 0, p.stderr
    assert "opening it again" in p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\nafter\n"


def test_a_command_journaled_but_never_sent_is_sent_on_resume(tmp_path):
    """The runner can stop between writing a command to the journal and typing it."""
    from trainsh.runtime.journal import Journal

    r = write_recipe(tmp_path / "ns.recipe", """
tmux.open @local as w
@w > echo one >> log.txt
@w > echo two >> log.txt
""")
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    # Make the journal say what a runner killed right after journaling step 3 would leave:
    # step 3 running, its command recorded as in flight, the job interrupted.
    j = Journal()
    job = j.jobs(1)[0]
    steps = j.steps(job.id)
    row = j.sessions(job.id)[0]
    state = row["state"]
    state["current"].update(done=False, rc=None, collected=False, output="",
                            channel=state["current"]["channel"] + "x", n=99,
                            rc_path=state["current"]["rc_path"].replace("/2.rc", "/99.rc"))
    j.session_state(job.id, "w", state)
    j.step_update(job.id, 2, status="running", exit_code=None)
    j.set_job(job.id, status="interrupted")
    j.close()
    (tmp_path / "log.txt").write_text("one\n")
    t0 = time.monotonic()
    p = train("recipe", "resume", job.id, "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "sending the command the runner had not sent yet" in p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\n"
    assert time.monotonic() - t0 < 15
    j = Journal()
    assert j.job(job.id).status == "done" and len(steps) == 3
    j.close()


def test_two_resumes_of_one_job_at_once_run_it_once(tmp_path):
    """Claiming a job is atomic: of two resumes started together, one runs what is left and
    the other says who holds the job. (The race is narrow: several trials.)"""
    r = write_recipe(tmp_path / "r.recipe", RECIPE.replace("(exit 5)", "true")
                     .replace("echo three >> log.txt", "echo three >> log.txt; sleep 1"))
    for trial in range(4):
        for name in ("log.txt", "started", "release"):
            if (tmp_path / name).exists():
                os.remove(tmp_path / name)
        kill_9_in_step_3(r, tmp_path)
        job, _ = job_state()
        both = [subprocess.Popen([*TRAIN, "recipe", "resume", job.id, "--no-visual"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for i in range(2)]
        try:  # the loser ends while the winner still waits in step 3
            wait_until(lambda: any(p.poll() is not None for p in both), timeout=30,
                       what="one resume to give up")
        finally:
            (tmp_path / "release").touch()
        results = [(p.wait(60), p.communicate()[1]) for p in both]
        codes = sorted(code for code, _ in results)
        assert (tmp_path / "log.txt").read_text() == "one\ntwo\nthree\n", (trial, results)
        assert codes == [0, 1], results
        loser = next(err for code, err in results if code == 1)
        assert f"job {job.id} is being resumed by pid " in loser, loser
        tmux("kill-server")


def test_a_resume_without_an_id_never_picks_a_job_another_process_holds(tmp_path):
    r = write_recipe(tmp_path / "r.recipe", RECIPE.replace("(exit 5)", "true"))
    kill_9_in_step_3(r, tmp_path)
    job, _ = job_state()
    holder = subprocess.Popen([*TRAIN, "recipe", "resume", job.id, "--no-visual"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: job_state()[0].pid == holder.pid, what="the resume to take the job")
        p = train("recipe", "resume", "--no-visual")
        assert p.returncode == 2 and "no interrupted job to resume" in p.stderr, p.stderr
    finally:
        (tmp_path / "release").touch()
        assert holder.wait(60) == 0, holder.communicate()
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\nthree\n"
