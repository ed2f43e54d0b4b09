"""job.parallel (child jobs in threads, on two hosts, resumed child by child after kill -9),
job.include of a `.recipe` file and ts.parse."""

from __future__ import annotations

from helpers import kill_9, lines, start, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal


def family():
    """The last parent job and its children, from the journal."""
    j = Journal()
    try:
        parent = next(job for job in j.jobs() if not job.parent)
        return parent, j.children(parent.id), {c.id: j.sessions(c.id) for c in j.children(parent.id)}
    finally:
        j.close()


SWEEP = '''
import trainsh as ts


def train(job, item):
    lr, spec, where = item
    box = job.host(spec, name="box")
    s = box.open("train")
    s.run(f"echo {lr} >> {where}/count-{lr}; "
          f"while [ ! -e {where}/go-{lr} ]; do sleep 0.05; done; test {lr} != 0.3")
    return {"lr": lr, "loss": 1 / lr}


def main(job, here: str, there: str, spec: str):
    items = [(lr, *([("local", here), (spec, there)][i % 2])) for i, lr in enumerate([0.1, 0.2, 0.3, 0.4])]
    got = job.parallel(train, [(lr, s, w) for lr, s, w in items], max_workers=2)
    ok = [r for r in got if not isinstance(r, ts.ChildFailed)]
    bad = [r for r in got if isinstance(r, ts.ChildFailed)]
    print("results", sorted(r["lr"] for r in ok), "failed", [(e.job[-2:], e.exit_code) for e in bad])
'''


def test_a_sweep_on_two_hosts_resumes_only_its_unfinished_children(tmp_path, ssh):
    here, there = tmp_path, ssh.a.home
    where = {0.1: here, 0.2: there, 0.3: here, 0.4: there}
    prog = write_recipe(tmp_path / "sweep.py", SWEEP)
    proc = start("recipe", "run", str(prog), "--var", f"here={here}", "--var", f"there={there}",
                 "--var", f"spec={ssh.a.spec()}")
    # two at a time: 0.1 (here) and 0.2 (over ssh) run; 0.3 starts once 0.1 ends
    wait_until(lambda: lines(here / "count-0.1") and lines(there / "count-0.2"), what="two children")
    assert not (here / "count-0.3").exists()
    (here / "go-0.1").touch()
    wait_until(lambda: lines(here / "count-0.3"), what="the third child")
    kill_9(proc)  # mid-sweep: child 1 done, 2 and 3 in a command, 4 not started
    parent, kids, _ = family()
    assert [k.status for k in kids][:1] == ["done"] and len(kids) == 3
    for lr in (0.2, 0.3, 0.4):
        (where[lr] / f"go-{lr}").touch()
    status = train("recipe", "status").stdout
    assert f"{parent.id}/2" in status and f"{parent.id}/3" in status, status
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "results [0.1, 0.2, 0.4] failed [('/3', 1)]" in p.stdout, p.stdout + p.stderr
    for lr in (0.1, 0.2, 0.3, 0.4):  # no command ran twice, each child's on its own host
        assert lines(where[lr] / f"count-{lr}") == [str(lr)], lr
    parent, kids, sessions = family()
    assert parent.status == "done"
    assert [k.id for k in kids] == [f"{parent.id}/{i}" for i in (1, 2, 3, 4)]
    assert [k.status for k in kids] == ["done", "done", "failed", "done"]
    assert kids[0].options["result"] == {"lr": 0.1, "loss": 10.0}
    reals = {s["real"] for ss in sessions.values() for s in ss}
    assert len(reals) == 4 and all("/" not in r for r in reals)  # each child its own session
    # a finished sweep replays from the journal alone
    j = Journal()
    try:
        j.set_job(parent.id, status="interrupted")
    finally:
        j.close()
    p = train("recipe", "resume", parent.id, "--no-visual")
    assert p.returncode == 0 and "results [0.1, 0.2, 0.4] failed [('/3', 1)]" in p.stdout, p.stderr
    assert lines(here / "count-0.1") == ["0.1"] and lines(there / "count-0.2") == ["0.2"]
    p = train("recipe", "resume", f"{parent.id}/2")
    assert p.returncode != 0 and f"train recipe resume {parent.id}" in p.stderr, p.stderr


def test_fail_fast_fails_the_parent_and_starts_no_more_children(tmp_path):
    prog = write_recipe(tmp_path / "ff.py", '''
def step(job, n):
    job.host("local").open("s").run(f"echo {n} >> count; (exit {n})")
    return n


def main(job):
    job.parallel(step, [0, 3, 0], max_workers=1, fail_fast=True)
    print("not reached")
''')
    p = train("recipe", "run", str(prog), "--no-visual")
    assert p.returncode == 1 and "not reached" not in p.stdout
    assert lines(tmp_path / "count") == ["0", "3"]
    assert "/2 failed: step 2 (ff.py:2): command exited with code 3" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    parent, kids, _ = family()
    assert parent.status == "failed" and [k.status for k in kids] == ["done", "failed"]


PREP = '''
var GREETING = hello
tmux.open @local as prep
@prep > echo ${GREETING} ${WHO} >> {dir}/count
@prep > touch {dir}/waiting; while [ ! -e {dir}/go ]; do sleep 0.05; done
tmux.close @prep
'''


def test_include_runs_a_recipes_steps_and_replays_them_on_resume(tmp_path):
    write_recipe(tmp_path / "prep.recipe", PREP.replace("{dir}", str(tmp_path)))
    prog = write_recipe(tmp_path / "inc.py", f'''
import trainsh as ts


def main(job):
    recipe = ts.parse("{tmp_path}/prep.recipe")
    print("parsed", [s.kind for s in recipe.steps], recipe.variables)
    job.include("prep.recipe", vars={{"WHO": "world"}})
    job.host("local").open("after").run("echo after >> {tmp_path}/count")
''')
    proc = start("recipe", "run", str(prog))
    wait_until((tmp_path / "waiting").exists, what="the included wait")
    kill_9(proc)
    (tmp_path / "go").touch()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "parsed ['tmux.open', 'command', 'command', 'tmux.close'] {'GREETING': 'hello'}" in p.stdout
    assert lines(tmp_path / "count") == ["hello world", "after"]
    j = Journal()
    try:
        job = j.jobs()[0]
        calls = j.calls(job.id)
    finally:
        j.close()
    assert [c["at"].split(" > ")[-1] for c in calls[:4]] == \
        ["prep.recipe:2", "prep.recipe:3", "prep.recipe:4", "prep.recipe:5"]
    bad = write_recipe(tmp_path / "bad.py", 'def main(job):\n    job.include("nope.recipe")\n')
    p = train("recipe", "run", str(bad), "--no-visual")
    assert p.returncode == 1 and "bad.py:2: ValueError: nope.recipe: No such file or directory" in p.stderr
    assert "Traceback" not in p.stderr
