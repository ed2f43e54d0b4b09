"""The recipe engine against real tmux on this machine: exit codes, output, timeouts, waits."""

from __future__ import annotations

import socket
import subprocess
import time

from helpers import tmux, train, write_recipe

from trainsh.runtime.journal import Journal


def last_job():
    j = Journal()
    try:
        job = j.jobs(1)[0]
        return job, j.steps(job.id), j.sessions(job.id)
    finally:
        j.close()


def step_output(step: dict) -> str:
    with open(step["log_path"], encoding="utf-8") as f:
        return f.read()


def test_exit_codes_are_exact_and_the_first_failure_stops_the_job(tmp_path):
    r = write_recipe(tmp_path / "codes.recipe", """
host box = local
tmux.open @box as w
@w > true
@w > (exit 7)
@w > echo never-runs
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1, p.stderr
    assert "command exited with code 7" in p.stderr
    assert "codes.recipe:4" in p.stderr
    job, steps, _ = last_job()
    assert job.status == "failed"
    assert [(s["status"], s["exit_code"]) for s in steps] == [("done", 0), ("done", 0), ("failed", 7)]
    # the failed job closed the session it opened
    assert tmux("ls").returncode != 0


def test_commands_run_in_the_sessions_own_shell_exactly_as_typed(tmp_path):
    r = write_recipe(tmp_path / "shell.recipe", """
var NAME = world
tmux.open @local as w
@w > mkdir -p sub && cd sub && export GREETING="hi there"
@w > echo "$GREETING $NAME from $(basename $PWD)" > out.txt; cat out.txt
@w > cat > doc.txt <<'EOF'
literal $NAME and "quotes" and 'single' > not a redirect
EOF
@w > python3 -c 'import sys; print("argv:", sys.argv[1:])' "a b" 'c"d' \\
       --flag
@w > echo "$HOME" | grep -c /home
tmux.close @w
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "sub" / "out.txt").read_text() == "hi there world from sub\n"
    # heredoc body is the shell's: recipe variables are expanded ($NAME), quotes kept
    assert (tmp_path / "sub" / "doc.txt").read_text() == \
        "literal world and \"quotes\" and 'single' > not a redirect\n"
    _, steps, _ = last_job()
    assert step_output(steps[2]).strip() == "hi there world from sub"
    assert step_output(steps[4]).strip() == "argv: ['a b', 'c\"d', '--flag']"
    assert step_output(steps[5]).strip() == "1"  # $HOME left for the shell


def test_var_overrides_reach_every_step(tmp_path):
    r = write_recipe(tmp_path / "vars.recipe", """
var MODEL = small
var OUT = $MODEL.txt
tmux.open @local as w
@w > echo $MODEL > ${OUT}
""")
    p = train("recipe", "run", str(r), "--var", "MODEL=large", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "large.txt").read_text() == "large\n"
    assert not (tmp_path / "small.txt").exists()


def test_timeout_interrupts_the_command_and_fails_saying_so(tmp_path):
    r = write_recipe(tmp_path / "slow.recipe", """
tmux.open @local as w
@w timeout=1s > echo started; sleep 30; echo finished
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 1
    assert "timed out after 1s and was interrupted" in p.stderr
    _, _, sessions = last_job()
    pane = tmux("capture-pane", "-p", "-t", sessions[0]["real"]).stdout
    lines = [ln.strip() for ln in pane.splitlines()]
    assert "started" in lines and "^C" in lines and "finished" not in lines
    # the pane is back at a prompt: no sleep left running in it
    ps = tmux("display-message", "-p", "-t", sessions[0]["real"], "#{pane_current_command}").stdout
    assert "sleep" not in ps


def test_a_shell_that_exits_fails_the_step_at_once(tmp_path):
    r = write_recipe(tmp_path / "exit.recipe", """
tmux.open @local as w
@w > exit 3
""")
    # without the exit seen, the step would wait on a pane that never answers until train()'s
    # time-out kills the run; the failure names the exit, the event it was woken by
    p = train("recipe", "run", str(r), "--no-visual", timeout=60)
    assert p.returncode == 1
    assert "shell exited (status 3)" in p.stderr and "timed out" not in p.stderr


def test_background_commands_run_in_order_and_idle_reports_their_failure(tmp_path):
    r = write_recipe(tmp_path / "bg.recipe", """
tmux.open @local as w
@w > sleep 0.3; echo first >> order.txt; false &
@w > echo second >> order.txt
wait @w idle timeout=10s
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert (tmp_path / "order.txt").read_text() == "first\nsecond\n"
    # the background command failed: recorded when it ended, and the job went on
    assert "background command in w failed (exit code 1)" in p.stderr
    assert p.returncode == 0, p.stderr
    _, steps, _ = last_job()
    assert steps[1]["exit_code"] == 1 and steps[1]["status"] == "failed"


def test_idle_wait_fails_naming_the_failed_command(tmp_path):
    r = write_recipe(tmp_path / "idle.recipe", """
tmux.open @local as w
@w > sleep 0.2; python3 -c 'raise SystemExit(4)' &
wait @w idle timeout=10s
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert "exited with code 4" in p.stderr and "raise SystemExit(4)" in p.stderr


def _own_sleep() -> tuple[str, str]:
    """`sleep 30.N` with a fraction no other test or run uses, and a pgrep pattern for it alone."""
    import uuid

    token = f"sleep 30.{uuid.uuid4().int % 10**15:015d}"
    return token, "^" + token.replace(".", "\\.") + "$"


def _running(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


def test_idle_wait_times_out_when_the_command_runs_on(tmp_path):
    cmd, pattern = _own_sleep()
    r = write_recipe(tmp_path / "busy.recipe", f"""
tmux.open @local as w
@w > {cmd} &
wait @w idle timeout=1s
""")
    try:
        p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
        assert p.returncode == 1
        assert f"timed out after 1s: still running in w: {cmd}" in p.stderr
        # the wait gave up while the command ran on (its session is kept): it did not wait for it
        assert _running(pattern)
    finally:
        subprocess.run(["pkill", "-f", pattern])


def test_pattern_wait_matches_output_not_the_typed_command(tmp_path):
    r = write_recipe(tmp_path / "pat.recipe", """
tmux.open @local as w
@w > echo "loss 0.5"; sleep 20 # Epoch 9 is in the command text only &
wait @w "Epoch \\d" timeout=1s
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert "timed out after 1s waiting for pattern" in p.stderr


def test_pattern_wait_sees_output_and_fails_fast_when_the_command_ends(tmp_path):
    r = write_recipe(tmp_path / "pat2.recipe", """
tmux.open @local as w
@w > for i in 1 2 3; do echo "Epoch $i/3 loss=0.$i"; sleep 0.1; done &
wait @w 'Epoch 3/3 loss=\\S+' timeout=10s
@w > echo done-here &
wait @w "never printed" timeout=60s
""")
    # the 60 s wait ends on the command's end (no time-out word), well inside train()'s own 50 s
    p = train("recipe", "run", str(r), "--no-visual", timeout=50)
    assert p.returncode == 1
    assert "Epoch 3/3 loss=0.3" in p.stderr  # the matching line is shown
    assert "ended (exit 0) without printing 'never printed'" in p.stderr


def test_file_wait_takes_paths_that_contain_idle(tmp_path):
    flag = tmp_path / "idle.flag"
    r = write_recipe(tmp_path / "file.recipe", f"""
tmux.open @local as w
@w > sleep 0.3; touch {flag} &
wait @w file={flag} timeout=10s
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert f"file {flag} after" in p.stderr
    assert flag.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_wait_sees_a_server_listening_on_loopback_only(tmp_path):
    port = free_port()
    r = write_recipe(tmp_path / "port.recipe", f"""
tmux.open @local as srv
@srv > sleep 0.3; exec python3 -m http.server {port} --bind 127.0.0.1 &
wait @srv port={port} timeout=10s
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 0, p.stderr
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_port_wait_times_out_when_nothing_listens(tmp_path):
    port = free_port()
    r = write_recipe(tmp_path / "noport.recipe", f"""
tmux.open @local as w
wait @w port={port} timeout=0.5s
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert f"timed out after 0.5s waiting for port {port}" in p.stderr


def test_two_jobs_never_share_a_session(tmp_path):
    r = write_recipe(tmp_path / "same.recipe", """
tmux.open @local as work
@work > echo $$ > pid-$(date +%s%N).txt
""")
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    names = tmux("ls", "-F", "#{session_name}").stdout.split()
    assert len(names) == 2 and all(n.startswith("work-") for n in names)
    pids = {p.read_text() for p in tmp_path.glob("pid-*.txt")}
    assert len(pids) == 2  # two different shells


def test_status_shows_how_to_attach_and_close_ends_the_session(tmp_path):
    r = write_recipe(tmp_path / "keep.recipe", """
tmux.open @local as a
tmux.open @local as b
@a > sleep 30 &
tmux.close @b
""")
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    names = tmux("ls", "-F", "#{session_name}").stdout.split()
    assert len(names) == 1 and names[0].startswith("a-")
    p = train("recipe", "status", "--all")
    assert f"attach -t {names[0]}" in p.stdout


def test_local_transfer_with_delete_and_excludes(tmp_path):
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "keep.txt").write_text("keep")
    (src / "deep" / "model.ckpt").write_text("big")
    dst = tmp_path / "out" / "nested"
    dst.mkdir(parents=True)
    (dst / "stale.txt").write_text("old")
    r = write_recipe(tmp_path / "copy.recipe", """
./src/ -> ./out/nested delete=true exclude=*.ckpt
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (dst / "keep.txt").read_text() == "keep"
    assert not (dst / "stale.txt").exists()
    assert not (dst / "deep" / "model.ckpt").exists()
    assert "copied 1 file" in p.stderr


def test_tmux_config_applies_configured_options(tmp_path):
    from trainsh.settings import paths

    paths.home().mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text('[tmux.options]\n"history-limit" = "12345"\nmouse = "on"\n')
    r = write_recipe(tmp_path / "cfg.recipe", """
tmux.config @local
tmux.open @local as w
""")
    assert train("recipe", "run", str(r), "--no-visual").returncode == 0
    assert tmux("show-options", "-g", "-v", "history-limit").stdout.strip() == "12345"
    assert tmux("show-options", "-g", "-v", "mouse").stdout.strip() == "on"


def test_steps_that_cannot_run_fail_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)  # the key is missing: no request is made
    r = write_recipe(tmp_path / "ssh.recipe", """
host gpu = root@example.invalid -p 2222
storage out = r2:bucket
tmux.open @gpu as w
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert "ssh root@example.invalid -p 2222:" in p.stderr  # one line saying why ssh failed
    assert "Traceback" not in p.stderr
    r2 = write_recipe(tmp_path / "st.recipe", """
storage out = r2:bucket
./a -> @out:/x
""")
    (tmp_path / "a").write_text("x")
    p = train("recipe", "run", str(r2), "--no-visual")
    assert p.returncode == 1
    assert "needs the secret R2_ACCOUNT_ID: train secrets set R2_ACCOUNT_ID" in p.stderr
    r3 = write_recipe(tmp_path / "v.recipe", "host gpu = placeholder\nvast.pick @gpu num_gpus=1\n")
    p = train("recipe", "run", str(r3), "--no-visual")
    assert p.returncode == 1 and "no API key: run `train secrets set VAST_API_KEY`" in p.stderr


def test_missing_secret_is_a_clear_error_before_the_step_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("MY_TOKEN", raising=False)
    r = write_recipe(tmp_path / "sec.recipe", """
tmux.open @local as w
@w > echo ${secret:MY_TOKEN} > leaked.txt
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert "secret MY_TOKEN is not set: run 'train secrets set MY_TOKEN'" in p.stderr
    assert not (tmp_path / "leaked.txt").exists()


def test_closing_a_session_stops_the_commands_running_in_it(tmp_path):
    token = f"trainsh-close-test-{time.time_ns()}"
    r = write_recipe(tmp_path / "close.recipe", f"""
tmux.open @local as w
@w > python3 -c 'import time; time.sleep(300)' {token} &
tmux.close @w
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "stopping the command still running in w" in p.stderr
    # asked to end by tmux.close: the log says stopped, not failed
    logs = train("recipe", "logs", "--last").stdout
    assert "[2] line 2 stopped" in logs and "failed" not in logs, logs

    def gone():
        return subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 1
    end = time.monotonic() + 5
    while not gone() and time.monotonic() < end:
        time.sleep(0.05)
    assert gone(), "the command outlived its session"


def test_transfers_report_progress_while_rsync_runs(tmp_path):
    import os

    from trainsh.transfer.rsync import local_copy

    (tmp_path / "big.bin").write_bytes(os.urandom(20 * 1024 * 1024))
    events = []
    summary = local_copy(str(tmp_path / "big.bin"), str(tmp_path / "out") + "/", progress=events.append)
    assert events, "no progress reported"
    seen = [str(e) for e in events]
    assert all("/s" in s for s in seen)
    assert "20.0 MiB / 20.0 MiB  100%" in seen[-1]
    assert summary.startswith("copied 1 file (20.0 MiB)")
    assert (tmp_path / "out" / "big.bin").stat().st_size == 20 * 1024 * 1024


def test_a_very_long_command_runs_in_the_same_shell(tmp_path):
    body = "\n".join(f"line {i} " + "x" * 60 for i in range(1000))  # ~70 KB: past tmux's limit
    r = write_recipe(tmp_path / "long.recipe", f"""
tmux.open @local as w
@w > cd /tmp && cat > {tmp_path}/big.txt <<'EOF'
{body}
EOF
@w > pwd; wc -l < {tmp_path}/big.txt
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "big.txt").read_text() == body + "\n"
    assert "| /tmp" in p.stderr and "| 1000" in p.stderr  # the cd stayed: same shell


def test_pattern_waits_see_output_that_races_the_end_of_its_command(tmp_path):
    steps = "".join(f'@w > seq 1 2000 > /dev/null; echo DONE{i} &\nwait @w "DONE{i}" timeout=10s\n'
                    for i in range(25))
    r = write_recipe(tmp_path / "race.recipe", "tmux.open @local as w\n" + steps)
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr


def test_a_last_line_without_newline_is_output_too(tmp_path):
    r = write_recipe(tmp_path / "nn.recipe", 'tmux.open @local as w\n@w > printf "RESULT=42"\n')
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "| RESULT=42" in p.stderr
    assert "RESULT=42" in train("recipe", "logs", "--last").stdout


def test_exec_keeps_its_commands_stderr_apart_and_ends_with_its_exit_code(tmp_path):
    p = train("exec", "@local > echo out; echo err >&2; exit 3", "--no-visual")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out\n"  # stdout is the command's stdout alone: pipeable
    assert "err\n" in p.stderr and "command exited with code 3" in p.stderr
    p = train("exec", "@local > echo fine; echo warn >&2", "--no-visual")
    assert p.returncode == 0 and p.stdout == "fine\n" and "warn\n" in p.stderr


def test_exec_with_a_secret_keeps_its_stderr_in_the_masked_pane(tmp_path, monkeypatch):
    """A secret's value must reach no file of the host: a command with one keeps stderr on
    its pane, which MASKER masks, and it comes out masked on stdout."""
    value = "exec-secret-3c9d1e7a"
    monkeypatch.setenv("EXEC_TOKEN", value)
    p = train("exec", "@local > echo out; echo err=${secret:EXEC_TOKEN} >&2; exit 2", "--no-visual",
              "--keep-sessions")
    assert p.returncode == 2 and "err=***" in p.stdout and value not in p.stdout + p.stderr
    from pathlib import Path

    j = Journal()
    try:
        sessions = j.sessions(j.jobs(1)[0].id)
    finally:
        j.close()
    assert sessions  # kept: what the host keeps of the command is there to look at
    for row in sessions:
        for f in Path(row["run_dir"]).rglob("*"):
            if f.is_file():
                assert value.encode() not in f.read_bytes(), f
        tmux("kill-session", "-t", f"={row['real']}:")


def test_a_timed_out_exec_leaves_no_process_behind(tmp_path):
    import uuid

    from helpers import TRAIN, wait_until

    # a sleep this test alone runs: 31 seconds and a unique fraction of one
    token = f"sleep 31.{uuid.uuid4().int % 10**15:015d}"
    exact = "^" + token.replace(".", "\\.") + "$"  # that sleep, not the train naming it
    proc = subprocess.Popen([*TRAIN, "exec", f"@local timeout=1s > {token}; echo never"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: subprocess.run(["pgrep", "-f", exact], capture_output=True).returncode == 0,
                   10, "the command to run")  # it ran: the timeout is what must stop it
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "timed out after 1s" in err
    assert subprocess.run(["pgrep", "-f", exact], capture_output=True).returncode == 1


def test_a_command_queued_behind_a_background_one_is_bounded_by_its_timeout(tmp_path):
    cmd, pattern = _own_sleep()
    r = write_recipe(tmp_path / "q.recipe", f"""
tmux.open @local as w
@w > {cmd} &
@w timeout=1s > echo queued
""")
    try:
        p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
        assert p.returncode == 1
        assert f"was still running '{cmd}' after 1s" in p.stderr and "wait @w idle" in p.stderr
        # the step gave up while the command it queued behind ran on
        assert _running(pattern)
    finally:
        subprocess.run(["pkill", "-f", pattern])


def test_the_live_line_shows_what_the_command_printed_never_the_typed_wrapper(tmp_path):
    import os

    from helpers import wait_until

    from trainsh.remote.shell import LocalShell
    from pathlib import Path

    from trainsh.remote.tmux import Pending, Session, Tmux, end_marker, start_marker

    t = Tmux(LocalShell(), os.environ["TRAINSH_TMUX_SOCKET"])
    s = Session("w", "w-live", "local", str(tmp_path / "run"))
    t.open(s, cwd=str(tmp_path))
    for n, text, shown in ((1, "sleep 1", ""), (2, "echo hello; sleep 1", "hello")):
        p = Pending(f"w-live-c{n}", s.rc_path(n), text, n, time.time())
        s.count, s.current = n, p
        t.send(s, p)
        assert t.was_started(s, p, grace=10)
        log = Path(s.log_path)
        if shown:
            wait_until(lambda: t.last_line(s) == shown, what=f"{shown!r} on the live line")
        else:  # the command has begun, so the shell has echoed the typed text before it
            wait_until(lambda: start_marker(p.channel) in log.read_bytes(), what="the start marker")
            assert t.last_line(s) == "", t.last_line(s)
        t.wait(s, p)
        assert p.rc == 0
        # the next prompt is in the log too
        wait_until(lambda: log.read_bytes().partition(end_marker(p.channel))[2].strip(), what="the next prompt")
        assert t.last_line(s) == shown, t.last_line(s)
        _, s.log_offset = t.output_since(s, p.channel, s.log_offset, ended=True)
    t.close(s)


def test_status_shows_sessions_a_finished_job_left_open_by_default(tmp_path):
    left = write_recipe(tmp_path / "left.recipe", "tmux.open @local as a\n@a > true\n")
    tidy = write_recipe(tmp_path / "tidy.recipe", "tmux.open @local as b\n@b > true\ntmux.close @b\n")
    assert train("recipe", "run", str(left), "--no-visual").returncode == 0
    job, _, _ = last_job()
    assert train("recipe", "run", str(tidy), "--no-visual").returncode == 0
    tidy_job, _, _ = last_job()
    p = train("recipe", "status")
    assert p.returncode == 0
    assert f"attach -t a-{job.id}" in p.stdout and job.id in p.stdout, p.stdout
    assert tidy_job.id not in p.stdout  # finished, nothing left open: only with --all
    tmux("kill-session", "-t", f"a-{job.id}")  # closed by hand: no longer open
    p = train("recipe", "status")
    assert job.id not in p.stdout, p.stdout
