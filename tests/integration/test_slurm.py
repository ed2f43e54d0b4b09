"""Slurm allocations on a real cluster (tests/slurmd.py: munged, slurmctld, slurmd n1 and n2),
reached through a login host over ssh or as `local`."""

from __future__ import annotations

import os
import re
import signal
import subprocess

from helpers import TRAIN, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal


def machines() -> list[dict]:
    j = Journal()
    try:
        return [dict(r) for r in j.db.execute("SELECT * FROM machines ORDER BY rowid").fetchall()]
    finally:
        j.close()


def login(slurm) -> str:
    return slurm.login.spec()


def run_and_kill_9(recipe, started) -> None:
    """Run the recipe in a train of its own, and kill -9 it once `started` exists."""
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(recipe), "--no-visual"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(started.exists, what=f"{started} (the recipe's command)")
    proc.kill()
    proc.wait()


def test_a_recipe_allocates_two_nodes_runs_srun_transfers_and_releases(slurm, tmp_path):
    import sshd

    port = sshd.free_port()
    r = write_recipe(tmp_path / "r.recipe", f"""
host login = {login(slurm)}
slurm.alloc @login as cluster nodes=2 time=10m
slurm.wait @cluster timeout=30s
tmux.open @cluster as work
@work > srun -n2 hostname
@work > srun printenv SLURMD_NODENAME | sort
@work > echo "$SLURM_JOB_NUM_NODES nodes, shell on $SLURMD_NODENAME" > ~/result.txt
wait @work file=~/result.txt timeout=10s
@work > python3 -c "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)" &
wait @work port={port} timeout=10s
@cluster:~/result.txt -> ./result.txt
slurm.release @cluster
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "| n1\n  | n2" in p.stderr  # srun spans both nodes of the allocation
    assert (tmp_path / "result.txt").read_text() == "2 nodes, shell on n1\n"
    [m] = machines()
    assert (m["host"], m["kind"], m["how"], m["state"]) == ("cluster", "slurm", "allocated", "released")
    wait_until(lambda: slurm.jobs() == [], what="the allocation to end")


def test_a_pending_allocation_times_out_and_is_cancelled(slurm, tmp_path):
    blocker = slurm.run("sbatch", "--parsable", "-N2", "-n4", "-o", "/dev/null", "--wrap", "sleep 300")
    assert blocker.returncode == 0, blocker.stderr
    r = write_recipe(tmp_path / "r.recipe", """
host login = local
slurm.alloc @login as gpu nodes=2
slurm.wait @gpu timeout=2s poll=0.5s
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    [m] = machines()
    assert f"slurm job {m['ident']} still pending" in p.stderr and "cancelled" in p.stderr
    assert m["state"] == "released"
    assert [j.split("|")[0] for j in slurm.jobs()] == [blocker.stdout.strip()]


def test_a_failing_step_releases_the_allocation_unless_keep_hosts(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", """
host login = local
slurm.alloc @login as gpu
tmux.open @gpu as work
@work > test -n "$SLURM_JOB_ID" && false
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    [m] = machines()
    assert re.search(rf"slurm job {m['ident']} on local \(@gpu\).*: released \(the job failed\)", p.stderr)
    wait_until(lambda: slurm.jobs() == [], what="the allocation to end")

    p = train("recipe", "run", str(r), "--no-visual", "--keep-hosts")
    assert p.returncode == 1
    kept = machines()[-1]
    assert f"kept (--keep-hosts); stop it with: train slurm cancel local {kept['ident']}" in p.stderr
    assert [j.split("|")[0] for j in slurm.jobs()] == [kept["ident"]]


def test_kill_9_then_resume_goes_on_in_the_same_allocation(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", f"""
host login = {login(slurm)}
slurm.alloc @login as gpu
tmux.open @gpu as work
@work > touch {tmp_path}/started; while [ ! -e {tmp_path}/go ]; do sleep 0.05; done; echo $SLURM_JOB_ID > {tmp_path}/id
@work > echo second $SLURM_JOB_ID >> {tmp_path}/id
slurm.release @gpu
""")
    run_and_kill_9(r, tmp_path / "started")
    [m] = machines()
    assert m["state"] == "running" and [j.split("|")[0] for j in slurm.jobs()] == [m["ident"]]
    (tmp_path / "go").touch()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "id").read_text() == f"{m['ident']}\nsecond {m['ident']}\n"
    assert len(machines()) == 1 and machines()[0]["state"] == "released"
    wait_until(lambda: slurm.jobs() == [], what="the allocation to end")


def test_sigterm_leaves_the_allocation_and_says_how_to_release_it(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", f"""
host login = local
slurm.alloc @login as gpu
tmux.open @gpu as work
@work > touch {tmp_path}/started; sleep 60
""")
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (tmp_path / "started").exists(), what="the command in the allocation")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    [m] = machines()
    assert f"stop it with: train slurm cancel local {m['ident']}" in err
    assert [j.split("|")[0] for j in slurm.jobs()] == [m["ident"]]
    p = train("slurm", "cancel", "local", m["ident"])
    assert p.returncode == 0, p.stderr
    wait_until(lambda: slurm.jobs() == [], what="the allocation to end")


def test_a_host_given_as_slurm_spec_on_the_command_line(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", """
host gpu = placeholder
tmux.open @gpu as work
@work > echo "nodes=$SLURM_JOB_NUM_NODES cpus=$SLURM_CPUS_PER_TASK"
""")
    p = train("recipe", "run", str(r), "--no-visual", "--host",
              f"gpu=slurm:{login(slurm)}?nodes=2&cpus_per_task=2&time=5m")
    assert p.returncode == 0, p.stderr
    assert "nodes=2 cpus=2" in p.stderr
    assert "is still running; stop it with: train slurm cancel" in p.stderr  # not released by itself
    assert len(slurm.jobs()) == 1


def test_a_hosts_toml_entry_of_kind_slurm(slurm, tmp_path):
    from trainsh.settings import paths

    paths.home().mkdir(parents=True, exist_ok=True)
    paths.hosts_file().write_text(f'[cl]\nkind = "slurm"\nhost = "127.0.0.1"\nuser = "root"\n'
                                  f'port = {slurm.login.port}\nslurm = "nodes=2&time=5m"\n')
    r = write_recipe(tmp_path / "r.recipe", """
host gpu = cl
tmux.open @gpu as work
@work > echo "nodes=$SLURM_NNODES list=$SLURM_JOB_NODELIST"
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "nodes=2 list=n[1-2]" in p.stderr
    [m] = machines()
    p = train("slurm", "queue", "cl")
    assert p.returncode == 0 and m["ident"] in p.stdout, p.stderr
    paths.hosts_file().write_text('[cl]\nkind = "slurm"\nhost = "h"\nslurm = "nodes=lots"\n')
    p = train("slurm", "info", "cl")
    assert p.returncode == 2 and "'slurm' (allocation options" in p.stderr and "nodes=" in p.stderr


def test_an_allocation_that_ended_under_a_resumed_job_says_so(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", f"""
host login = local
slurm.alloc @login as gpu
tmux.open @gpu as work
@work > touch {tmp_path}/started; sleep 60
""")
    run_and_kill_9(r, tmp_path / "started")
    [m] = machines()
    slurm.cancel_all()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 1
    assert f"STEP {m['ident']}.0 ON n1 CANCELLED" in p.stderr, p.stderr  # Slurm's own words
    assert f"slurm job {m['ident']} on local (@gpu), ended" in p.stderr
    assert "Traceback" not in p.stderr


def test_bad_partition_is_one_clear_line(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", """
host login = local
slurm.alloc @login as gpu partition=nope
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    # (each of Slurm's errors, in one line: the first names the partition)
    assert re.search(r"\n  local: Slurm: [^\n]*partition specified: nope; Invalid partition name specified\n",
                     p.stderr), p.stderr
    assert "Traceback" not in p.stderr


def test_missing_slurm_tools_on_the_login_host_is_one_clear_line(slurm, tmp_path, monkeypatch):
    bare = tmp_path / "bin"
    bare.mkdir()
    slurm_tools = {"sbatch", "squeue", "scancel", "sinfo", "srun", "salloc", "scontrol"}
    for d in ("/usr/bin", "/bin"):
        for name in os.listdir(d):
            if name not in slurm_tools and not (bare / name).exists():
                (bare / name).symlink_to(os.path.join(d, name))
    monkeypatch.setenv("PATH", str(bare))
    r = write_recipe(tmp_path / "r.recipe", """
host login = local
slurm.alloc @login as gpu
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert "local: salloc not found (is it a Slurm login host?" in p.stderr
    p = train("slurm", "queue", "local")
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert "squeue not found" in p.stderr


def test_slurm_info_queue_and_cancel(slurm, tmp_path):
    p = train("slurm", "info", login(slurm))
    assert p.returncode == 0, p.stderr
    assert re.search(r"^debug\*\s+up\s+infinite\s+2\s", p.stdout, re.M), p.stdout
    r = write_recipe(tmp_path / "r.recipe", """
host login = local
slurm.alloc @login as gpu
""")
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    [m] = machines()
    p = train("slurm", "queue", "local")
    assert p.returncode == 0, p.stderr
    [row] = [ln for ln in p.stdout.splitlines() if ln.startswith(m["ident"])]
    assert m["job_id"] in row and "@gpu" in row
    p = train("slurm", "cancel", "local", "999999")
    assert p.returncode == 1 and "999999" in p.stderr and p.stderr.count("\n") == 1
    assert train("slurm", "cancel", "local", m["ident"]).returncode == 0
    wait_until(lambda: slurm.jobs() == [], what="the allocation to end")


def job_state(slurm, ident: str) -> str:
    """This one job's state as squeue has it ('' once Slurm has forgotten it)."""
    r = slurm.run("squeue", "-h", "-j", ident, "-o", "%T")
    return "" if "Invalid job id" in r.stderr else r.stdout.strip()


def test_requests_the_cluster_can_never_meet_fail_at_once_and_are_cancelled(slurm, tmp_path):
    # the cluster has 2 nodes of 2 CPUs: Slurm takes both requests and leaves them pending for
    # ever, with reason PartitionConfig (after a scheduling pass, PartitionNodeLimit for nodes=5)
    partition_config = ("Slurm's reason is PartitionConfig (Requested partition configuration not available now); "
                        "the request ({}) does not fit partition debug's nodes or limits: ask for fewer nodes, "
                        "tasks, CPUs, memory or GPUs, or another partition= (train slurm info shows them)")
    node_limit = ("Slurm's reason is PartitionNodeLimit (Requested partition configuration not available now); "
                  "5 nodes is more than partition debug has for a job (all its nodes: 2): ask for fewer nodes, "
                  "or another partition=")
    for ask, why in (("nodes=5", (partition_config.format("5 nodes, 5 CPUs"), node_limit)),
                     ("cpus_per_task=64", (partition_config.format("1 node, 64 CPUs"),))):
        r = write_recipe(tmp_path / "r.recipe", f"""
host login = local
slurm.alloc @login as big {ask} time=5m
slurm.wait @big
""")
        p = train("recipe", "run", str(r), "--no-visual")
        assert p.returncode == 1
        m = machines()[-1]
        assert any(f"  slurm job {m['ident']} on local can never start as asked: {w}; cancelled\n" in p.stderr
                   for w in why), p.stderr
        assert "Traceback" not in p.stderr and "still pending" not in p.stderr
        assert m["state"] == "released"
        assert job_state(slurm, m["ident"]) in ("", "CANCELLED")  # nothing of it left pending


def test_a_held_job_that_can_never_start_fails_its_wait_at_once_and_is_kept(slurm, tmp_path):
    # not the job's own (`?job=ID`): its reason ends the wait, and it is left to its owner
    held = slurm.run("sbatch", "--parsable", "-N3", "-J", "trainsh-test-held", "-o", "/dev/null",
                     "--wrap", "true")
    assert held.returncode == 0, held.stderr
    ident = held.stdout.strip()
    r = write_recipe(tmp_path / "r.recipe", """
host gpu = placeholder
tmux.open @gpu as work
""")
    p = train("recipe", "run", str(r), "--no-visual", "--host", f"gpu=slurm:local?job={ident}")
    assert p.returncode == 1
    # (PartitionConfig as Slurm took it; PartitionNodeLimit once a scheduling pass looked at it)
    assert (f"slurm job {ident} on local can never start as asked: Slurm's reason is PartitionConfig; the "
            "request (3 nodes, 3 CPUs) does not fit partition debug's") in p.stderr \
        or (f"slurm job {ident} on local can never start as asked: Slurm's reason is PartitionNodeLimit; 3 nodes "
            "is more than partition debug has for a job (all its nodes: 2)") in p.stderr, p.stderr
    assert f"; kept: cancel it with train slurm cancel local {ident}\n" in p.stderr
    assert job_state(slurm, ident) == "PENDING"
    assert slurm.run("scancel", ident).returncode == 0


def test_tasks_exclusive_and_extra_options_reach_salloc(slurm, tmp_path):
    r = write_recipe(tmp_path / "r.recipe", """
host login = local
slurm.alloc @login as one nodes=1 ntasks=2 time=5m
tmux.open @one as work
@work > srun -n2 printenv SLURMD_NODENAME | sed 's/^/task on /'
@work > srun printenv SLURMD_NODENAME | sed 's/^/plain on /'
slurm.release @one
slurm.alloc @login as two nodes=2 ntasks_per_node=2 exclusive=true extra="--job-name trainsh-test-extra --comment 'two words'"
tmux.open @two as work2
@work2 > srun printenv SLURMD_NODENAME | sort | sed 's/^/each on /'
@work2 > scontrol show job -o $SLURM_JOB_ID | grep -o 'JobName=[^ ]*\\|OverSubscribe=[^ ]*\\|Comment=two words'
slurm.release @two
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("| task on n1\n") == 2  # two tasks on the one node (one CPU each)
    assert p.stderr.count("| plain on n1\n") == 2  # a plain srun starts the tasks asked for
    assert p.stderr.count("| each on n1\n") == 2 and p.stderr.count("| each on n2\n") == 2
    for said in ("| JobName=trainsh-test-extra\n", "| OverSubscribe=NO\n", "| Comment=two words\n"):
        assert said in p.stderr, p.stderr
    assert [m["state"] for m in machines()] == ["released", "released"]


def test_options_slurm_refuses_are_one_line(slurm, tmp_path):
    for ask, said in (('extra="--bogus"', "unrecognized option '--bogus'"),
                      ("gres=gpu:1", "Invalid generic resource (gres) specification")):
        r = write_recipe(tmp_path / "r.recipe", f"""
host login = local
slurm.alloc @login as gpu {ask}
""")
        p = train("recipe", "run", str(r), "--no-visual")
        assert p.returncode == 1
        assert f"  local: Slurm: {said}\n" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and "--help" not in p.stderr
        assert machines() == []  # Slurm took nothing


def test_a_partition_node_limit_never_clears_only_beyond_the_partitions_nodes(slurm):
    # (root's jobs are not held to partition limits, so the reason is given, the partition real)
    from trainsh.cloud import slurm as s
    from trainsh.remote.shell import LocalShell

    made = slurm.run("scontrol", "create", "partitionname=trainsh-test-max1", "nodes=n1,n2", "maxnodes=1")
    assert made.returncode == 0, made.stderr
    try:
        def never(nodes):
            return s.never_starts(LocalShell(), "local", s.State("PENDING", "PartitionNodeLimit",
                                                                  partition="trainsh-test-max1", num_nodes=nodes))

        assert never("2") == ("2 nodes is more than partition trainsh-test-max1 has for a job (the most nodes a "
                              "job may have: 1): ask for fewer nodes, or another partition=")
        assert never("1") is None  # within its limits: its nodes are down or drained, and may come back
    finally:
        slurm.run("scontrol", "delete", "partitionname=trainsh-test-max1")
