"""Python recipes (`import trainsh as ts`): the DSL's engine and journal, typed --vars, and a
resume that replays what finished and never runs a command twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from helpers import TRAIN, kill_9, lines, start, tmux, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal
from trainsh.settings import paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jobs():
    j = Journal()
    try:
        return [(job, j.steps(job.id), j.calls(job.id)) for job in j.jobs()]
    finally:
        j.close()


def last_job():
    return jobs()[0]


def test_quickstart_in_python_journals_what_the_recipe_does(tmp_path):
    port = free_port()
    p = train("recipe", "run", str(EXAMPLES / "quickstart.recipe"), "--no-visual",
              "--var", f"WORK={tmp_path}/dsl", "--var", f"PORT={port}")
    assert p.returncode == 0, p.stderr
    dsl = [(r["kind"], r["exit_code"], r["status"]) for r in last_job()[1]]
    p = train("recipe", "run", str(EXAMPLES / "quickstart.py"), "--no-visual",
              "--var", f"work={tmp_path}/py", "--var", f"port={port}")
    assert p.returncode == 0, p.stderr
    job, steps, calls = last_job()
    assert [(r["kind"], r["exit_code"], r["status"]) for r in steps] == dsl
    assert job.status == "done" and job.options.get("program")
    assert [c["step"] for c in calls] == list(range(len(steps)))
    assert all(c["at"].startswith("quickstart.py:") for c in calls)
    assert sorted(os.listdir(tmp_path / "py" / "backup" / "checkpoints")) == ["epoch1.pt", "epoch2.pt", "epoch3.pt"]
    # status and logs read it as any job
    assert job.id in train("recipe", "status", "--all").stdout
    logs = train("recipe", "logs", job.id)
    assert logs.returncode == 0 and "epoch3.pt" in logs.stdout


PROGRAM = '''
import trainsh as ts


def main(job, dir: str, rounds: int = 3):
    w = job.host("local").open("w")
    with open(f"{dir}/results", "a") as results:
        for i in range(rounds):
            r = w.run(f"echo run{i} >> {dir}/counter; "
                      f"while [ ! -e {dir}/go{i} ]; do sleep 0.05; done; date +%s%N")
            results.write(f"{i} {r.output} {r.exit_code} {job.now()}\\n")
            results.flush()
            if i == 1:  # a branch on a result
                r = w.run(f"echo branch >> {dir}/counter; (exit 5)", check=False)
                if r.exit_code == 5:
                    w.run(f"echo five >> {dir}/counter")
                else:
                    w.run(f"echo other >> {dir}/counter")
                w.wait(file=f"{dir}/gate", timeout="1m")
    w.close()


ts.main(main)
'''


def test_kill_9_anywhere_then_resume_runs_no_command_twice(tmp_path):
    prog = write_recipe(tmp_path / "loop.py", PROGRAM)
    counter, results = tmp_path / "counter", tmp_path / "results"
    log = lambda: (paths.jobs_dir() / last_job()[0].id / "job.log").read_text()  # noqa: E731

    # 1: killed while the first command runs
    proc = start("recipe", "run", str(prog), "--var", f"dir={tmp_path}")
    wait_until(lambda: lines(counter) == ["run0"], what="run0")
    kill_9(proc)
    (tmp_path / "go0").touch()
    # 2: the resume waits for that command (not sent again), goes on, is killed in the next
    proc = start("recipe", "resume")
    wait_until(lambda: lines(counter) == ["run0", "run1"], what="run1")
    kill_9(proc)
    # 3: killed while it waits again for the command the last runner sent
    proc = start("recipe", "resume")
    wait_until(lambda: log().count("picking up the command") == 2, what="the second pick-up")
    kill_9(proc)
    (tmp_path / "go1").touch()
    # 4: killed in a wait on the host (after the branch), which a resume enters again
    proc = start("recipe", "resume")
    wait_until(lambda: any(r["kind"] == "wait" and r["status"] == "running" for r in last_job()[1]),
               what="the wait")
    kill_9(proc)
    (tmp_path / "gate").touch()
    (tmp_path / "go2").touch()
    # 5: to the end
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr

    assert lines(counter) == ["run0", "run1", "branch", "five", "run2"]
    # each run of the program wrote what its calls returned: a replay gets the journaled result
    by_round: dict[str, set[str]] = {}
    for line in lines(results):
        by_round.setdefault(line.split()[0], set()).add(line)
    assert sorted(by_round) == ["0", "1", "2"] and all(len(v) == 1 for v in by_round.values()), by_round
    job, steps, calls = last_job()
    assert len(jobs()) == 1 and job.status == "done"
    assert [(r["kind"], r["exit_code"]) for r in steps] == [
        ("tmux.open", 0), ("command", 0), ("command", 0), ("command", 5), ("command", 0),
        ("wait", 0), ("command", 0), ("tmux.close", 0)]
    assert [c["source"] for c in calls if c["step"] is None] == ["job.now()"] * 3


def test_a_changed_program_stops_the_resume_naming_both_calls(tmp_path):
    prog = write_recipe(tmp_path / "p.py", '''
import trainsh as ts


def main(job):
    w = job.host("local").open("w")
    w.run("echo first")
    w.run("touch started; while [ ! -e go ]; do sleep 0.05; done")
''')
    proc = start("recipe", "run", str(prog))
    wait_until((tmp_path / "started").exists, what="the second command")
    kill_9(proc)
    prog.write_text(prog.read_text().replace('w.run("echo first")', 'w.run("echo second")'))
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 2
    said = [line for line in p.stderr.splitlines() if "echo" in line]
    assert len(said) == 1 and "`@w > echo second` (p.py:6)" in said[0] and "`@w > echo first` (p.py:6)" in said[0], p.stderr
    assert "Traceback" not in p.stderr
    job = last_job()[0]
    assert job.shown_status == "interrupted"
    # a new job from the program as it is now
    (tmp_path / "go").touch()
    p = train("recipe", "resume", job.id, "--from-scratch", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert len(jobs()) == 2 and last_job()[0].status == "done"


def test_check_and_run_type_the_vars_from_main(tmp_path):
    prog = write_recipe(tmp_path / "sweep.py", '''
import trainsh as ts


def main(job: ts.Job, lr: float, epochs: int = 2, fast: bool = False, tag="x"):
    w = job.host("local").open("w")
    print(repr((lr, epochs, fast, tag)))
    w.close()


ts.main(main)
''')
    p = train("recipe", "check", str(prog), "--var", "lr=1e-4")
    assert p.returncode == 0 and "lr: float, epochs: int, fast: bool, tag: str" in p.stdout
    for var, expected in [("lr2=1", "--var lr2: main() has no parameter lr2 (its parameters: "
                                    "lr: float, epochs: int, fast: bool, tag: str)"),
                          ("epochs=3.5", "--var epochs=3.5: epochs is an int (a whole number)")]:
        p = train("recipe", "check", str(prog), "--var", "lr=1", "--var", var)
        assert (p.returncode, p.stderr) == (2, f"train: {expected}\n")
        p = train("recipe", "run", str(prog), "--var", "lr=1", "--var", var)
        assert (p.returncode, p.stderr) == (2, f"train: {expected}\n")
    p = train("recipe", "check", str(prog))  # as for a recipe's placeholders: to give when it runs
    assert p.returncode == 0 and "to give when it runs: --var lr=..." in p.stdout
    for cmd in ("check", "run"):
        p = train("recipe", cmd, str(prog), "--var", "epochs=2")
        assert (p.returncode, p.stderr) == (2, "train: main() needs --var lr=... (a float)\n")
    assert train("recipe", "show", str(prog)).returncode == 0
    assert jobs() == []
    p = train("recipe", "run", str(prog), "--no-visual", "--var", "lr=1e-4", "--var", "fast=yes")
    assert p.returncode == 0 and "(0.0001, 2, True, 'x')" in p.stdout, p.stderr
    # python FILE.py runs the same job through ts.main(main)
    p = subprocess.run([sys.executable, str(prog), "--var", "lr=2", "--no-visual"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "(2.0, 2, False, 'x')" in p.stdout, p.stderr
    assert len(jobs()) == 2
    p = subprocess.run([sys.executable, str(prog), "--var", "lr=fast"], capture_output=True, text=True)
    assert (p.returncode, p.stderr) == (2, "python sweep.py: --var lr=fast: lr is a float (a number like 1e-4)\n")
    bad = write_recipe(tmp_path / "bad.py", "def main(job):\n    return (\n")
    p = train("recipe", "check", str(bad))
    assert p.returncode == 2 and p.stderr.startswith("train: bad.py:2: ") and p.stderr.count("\n") == 1


def test_failures_and_timeouts_are_exceptions_the_program_can_catch(tmp_path):
    prog = write_recipe(tmp_path / "f.py", '''
import trainsh as ts


def main(job):
    w = job.host("local").open("w")
    r = w.run("echo out; (exit 3)", check=False)
    print("result", r.exit_code, r.output, r.tail(1), r.duration >= 0)
    try:
        w.run("echo boom; (exit 4)")
    except ts.StepFailed as e:
        print("failed", e.exit_code, e, e.tail())
    try:
        w.run("sleep 5", timeout=0.5)
    except ts.Timeout as e:
        print("timeout", e)
    w.run("sleep 3", background=True)  # (a wait on a session with nothing running ends at once)
    try:
        w.wait("never", timeout="0.3s")
    except ts.Timeout as e:
        print("timeout", e)
    w.run("echo last; (exit 7)")
''')
    p = train("recipe", "run", str(prog), "--no-visual")
    assert p.returncode == 1
    assert "result 3 out out True" in p.stdout
    assert "failed 4 command exited with code 4 boom" in p.stdout
    assert "timeout command timed out after 0.5s and was interrupted (Ctrl-C)" in p.stdout
    assert "timeout timed out after 0.3s waiting for pattern 'never'" in p.stdout
    assert "failed: step 7 (f.py:21) @w > echo last; (exit 7)" in p.stderr
    job, steps, _ = last_job()
    assert job.status == "failed" and [r["exit_code"] for r in steps] == [0, 3, 4, None, 0, None, 7]
    # a bug in the program: one line where it was raised, the traceback in the job's log only
    bug = write_recipe(tmp_path / "bug.py", "def main(job):\n    job.host('local')\n    {}['x']\n")
    p = train("recipe", "run", str(bug), "--no-visual")
    assert p.returncode == 1 and "program raised: bug.py:3: KeyError: 'x'" in p.stderr
    assert "Traceback" not in p.stderr
    assert "Traceback" in (paths.jobs_dir() / last_job()[0].id / "job.log").read_text()


SECRET = "tok-5e1d7c9b3a2f"


def test_a_secret_from_ts_secret_leaks_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    prog = write_recipe(tmp_path / "s.py", '''
import trainsh as ts


def main(job):
    token = ts.secret("HF_TOKEN")
    print("the program holds", token)
    w = job.host("local").open("w")
    r = w.run(f"echo the token is {token}; printenv HF_TOKEN || echo not in the session")
    print("output:", r.output)
    w.run(f"echo 'twice: {token} {token}'", background=True)
    w.wait(idle=True, timeout="30s")
    w.run("history -w")
    job.notify(f"done with {token}")
''')
    p = train("recipe", "run", str(prog), "--no-visual", "--keep-sessions")
    assert p.returncode == 0, p.stderr
    assert "the program holds ${secret:HF_TOKEN}" in p.stdout
    assert "output: the token is ***\nnot in the session" in p.stdout
    assert SECRET not in p.stdout + p.stderr
    leaked = [str(f) for f in paths.home().rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
    assert leaked == []
    names = tmux("ls", "-F", "#{session_name}").stdout.split()
    assert names
    for name in names:
        history = tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
        assert "the token is ***" in history and SECRET not in history
    hist = Path(os.environ["HOME"]) / ".bash_history"
    assert hist.exists() and SECRET not in hist.read_text()
    _, _, calls = last_job()
    assert "${secret:HF_TOKEN}" in calls[1]["source"]


def test_a_program_on_an_ssh_host_copies_waits_and_resumes(tmp_path, ssh):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "w.bin").write_bytes(os.urandom(3000))
    home = ssh.a.home
    prog = write_recipe(tmp_path / "remote.py", f'''
import trainsh as ts


def main(job, spec: str):
    gpu = job.host(spec)
    job.copy("./data/", gpu.path("{home}/pdata"))
    w = gpu.open("w")
    r = w.run("echo n >> {home}/pcount; touch {home}/pstarted; "
              "while [ ! -e {home}/pgo ]; do sleep 0.05; done; md5sum < {home}/pdata/w.bin")
    w.run("sleep 0.2; echo ready", background=True)
    w.wait("ready", timeout=20)
    job.copy(gpu.path("{home}/pdata/"), "./back")
    print("sum", r.output.split()[0], gpu.name)
''')
    proc = start("recipe", "run", str(prog), "--var", f"spec={ssh.a.spec()}")
    wait_until((home / "pstarted").exists, what="the command on the host")
    kill_9(proc)
    (home / "pgo").touch()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    import hashlib

    assert f"sum {hashlib.md5((tmp_path / 'data' / 'w.bin').read_bytes()).hexdigest()}" in p.stdout
    assert (home / "pcount").read_text() == "n\n"
    assert (tmp_path / "back" / "w.bin").read_bytes() == (tmp_path / "data" / "w.bin").read_bytes()
    job, steps, _ = last_job()
    assert [r["kind"] for r in steps] == ["transfer", "tmux.open", "command", "command", "wait", "transfer"]
    assert job.status == "done" and job.options["defined"]["host"]


def test_the_live_view_grows_with_a_programs_steps(tmp_path):
    import shlex

    prog = write_recipe(tmp_path / "live.py", '''
def main(job):
    w = job.host("local").open("w")
    for i in range(3):
        w.run(f"echo tick-{i}")
    print("printed-by-the-program")
    w.run("while [ ! -e release ]; do sleep 0.05; done")
    w.close()
''')
    keep = {k: os.environ[k] for k in ("HOME", "TRAINSH_HOME", "TRAINSH_TMUX_SOCKET", "PATH", "PYTHONPATH")
            if k in os.environ}
    line = (f"env -u CI -u NO_COLOR TERM=xterm-256color "
            f"{' '.join(f'{k}={shlex.quote(v)}' for k, v in keep.items())} "
            f"{shlex.join([*TRAIN, 'recipe', 'run', str(prog)])}; echo EXITED=$?; sleep 60")
    t = ["tmux", "-S", str(tmp_path / "tty.sock")]
    subprocess.run([*t, "new-session", "-d", "-s", "tty", "-x", "100", "-y", "30", line], check=True)
    screen = lambda: subprocess.run([*t, "capture-pane", "-p", "-t", "tty"],  # noqa: E731
                                    capture_output=True, text=True).stdout
    try:
        s = wait_until(lambda: (lambda s: s if "▶   5" in s and "live.py" in s else None)(screen()),
                       what="the fifth step running in the live view")
        assert "✓   4  @w > echo tick-2" in s, s
        assert "printed-by-the-program" in s and not s.startswith("printed"), s
        (tmp_path / "release").touch()
        s = wait_until(lambda: (lambda s: s if "EXITED=0" in s else None)(screen()), what="the end")
        assert "done after" in s and "tmux.close @w" in s, s
    finally:
        subprocess.run([*t, "kill-server"], capture_output=True)


def test_a_failed_program_job_resumes_at_the_step_that_ended_it(tmp_path):
    prog = write_recipe(tmp_path / "again.py", f'''
def main(job):
    w = job.host("local").open("w")
    w.run("echo once >> {tmp_path}/counter")
    try:
        w.run("(exit 2)")
    except Exception:
        pass  # seen by the program: replayed as it was, never run again
    w.run("echo try >> {tmp_path}/counter; test -e {tmp_path}/fixed")
    w.run("echo after >> {tmp_path}/counter")
''')
    p = train("recipe", "run", str(prog), "--no-visual")
    assert p.returncode == 1 and "failed: step 4 (again.py:8)" in p.stderr, p.stderr
    (tmp_path / "fixed").touch()
    p = train("recipe", "resume", last_job()[0].id, "--no-visual")
    assert p.returncode == 0, p.stderr
    assert lines(tmp_path / "counter") == ["once", "try", "try", "after"]
    job, steps, _ = last_job()
    assert [(r["exit_code"], r["status"]) for r in steps] == [(0, "done"), (0, "done"), (2, "failed"),
                                                              (0, "done"), (0, "done")]


def test_a_program_picks_a_vast_machine_and_resumes_on_the_same_one(tmp_path, vast):
    prog = write_recipe(tmp_path / "cloud.py", '''
import trainsh as ts


def main(job):
    gpu = job.vast.pick("gpu", num_gpus=1, min_gpu_ram=24)
    job.vast.wait(timeout="5m")
    w = gpu.open("w")
    w.run("echo n >> ~/count; touch ~/started; while [ ! -e ~/go ]; do sleep 0.05; done")
    r = w.run("cat ~/count")
    print("count", r.output.strip(), gpu.spec)
    job.vast.stop()
''')
    proc = start("recipe", "run", str(prog))
    home = wait_until(lambda: next((Path(i["home"]) for i in vast.state()["instances"].values()
                                    if (Path(i["home"]) / "started").exists()), None),
                      timeout=60, what="the command on the machine")
    kill_9(proc)
    (home / "go").touch()
    p = train("recipe", "resume", "--no-visual", timeout=120)
    assert p.returncode == 0, p.stderr
    (iid, inst), = vast.state()["instances"].items()
    assert vast.state()["rents"] == 1 and inst["intended_status"] == "stopped"
    assert f"count n vast:{iid}" in p.stdout
    _, steps, _ = last_job()
    assert [r["source"] for r in steps[:2]] == ["vast.pick @gpu num_gpus=1 min_gpu_ram=24",
                                                "vast.wait timeout=5m"]


def test_copies_to_and_from_a_storage(tmp_path, lake):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("alpha\n")
    (tmp_path / "data" / "b.ckpt").write_text("skip\n")
    prog = write_recipe(tmp_path / "store.py", '''
def main(job):
    lake = job.storage("lake")
    print(job.copy("./data/", lake.path("/run1/"), exclude=["*.ckpt"]))
    job.copy(lake.path("/run1/"), "./back/")
    job.sleep(0.1)
''')
    p = train("recipe", "run", str(prog), "--no-visual")
    assert p.returncode == 0, p.stderr
    body = lake["s3"].get_object(Bucket=lake["bucket"], Key="run1/a.txt")["Body"].read()
    assert body == b"alpha\n" and os.listdir(tmp_path / "back") == ["a.txt"]
    _, steps, _ = last_job()
    assert [r["source"] for r in steps] == ["./data/ -> @lake:/run1/ exclude=*.ckpt", "@lake:/run1/ -> ./back/",
                                            "sleep 0.1s"]
