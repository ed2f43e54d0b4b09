"""What a user sees on a terminal: the live view of a running recipe in a real terminal (a tmux
pane of known size on a private tmux server), the plain lines it gives way to, the tmux view
of a job's sessions (`recipe attach`), tables that fit, coloured logs and shell completion."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from helpers import TRAIN, interrupted, tmux, train, wait_until, write_recipe

from trainsh.runtime.journal import Journal


class Terminal:
    """A tmux pane of a known size running one command; `screen()` is what it shows."""

    count = 0

    def __init__(self, tmp_path, command: str, width: int = 100, height: int = 30, **env: str):
        Terminal.count += 1  # a server of its own each: a killed one may linger a moment
        self.sock = str(tmp_path / f"tty{Terminal.count}.sock")
        keep = {k: os.environ[k] for k in ("HOME", "TRAINSH_HOME", "TRAINSH_TMUX_SOCKET", "PATH",
                                           "TRAINSH_SSH_OPTIONS", "TRAINSH_SSH_CONTROL_DIR")
                if k in os.environ}
        keep.update({"TERM": "xterm-256color", **env})
        unset = "-u CI -u COLUMNS -u LINES " + ("-u NO_COLOR " if "NO_COLOR" not in env else "")
        line = (f"env {unset}{' '.join(f'{k}={shlex.quote(v)}' for k, v in keep.items())} "
                f"{command}; echo EXITED=$?; sleep 60")
        self.t = ["tmux", "-S", self.sock]
        subprocess.run(self.t + ["new-session", "-d", "-s", "tty", "-x", str(width), "-y", str(height),
                                 line], check=True)

    def screen(self, *flags: str) -> str:
        return subprocess.run(self.t + ["capture-pane", "-p", *flags, "-t", "tty"],
                              capture_output=True, text=True).stdout

    def wait_for(self, *words: str, timeout: float = 20) -> str:
        return wait_until(lambda: (lambda s: s if all(w in s for w in words) else None)(self.screen()),
                          timeout, what=f"{words} on the screen")

    def resize(self, width: int, height: int) -> None:
        subprocess.run(self.t + ["resize-window", "-t", "tty", "-x", str(width), "-y", str(height)],
                       check=True)

    def close(self) -> None:
        subprocess.run(self.t + ["kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path):
    made = []

    def start(command: str, **kw) -> Terminal:
        made.append(Terminal(tmp_path, command, **kw))
        return made[-1]

    yield start
    for t in made:
        t.close()


def _train_cmd(*args: str) -> str:
    return shlex.join([*TRAIN, *args])


RECIPE = """
tmux.open @local as w
@w > for i in 1 2 3; do echo tick-$i; done; while [ ! -e release ]; do sleep 0.1; done
@w > echo second-$((40+2))
@w > echo failing-output; (exit 3)
@w > echo never
tmux.close @w
"""


def test_the_live_view_lists_steps_marks_the_running_one_shows_output_and_leaves_a_summary(
        tmp_path, terminal):
    write_recipe(tmp_path / "live.recipe", RECIPE)
    term = terminal(_train_cmd("recipe", "run", "live.recipe"), width=100, height=30)
    screen = term.wait_for("tick-3", "▶")
    lines = screen.splitlines()
    job = Journal().jobs(1)[0].id
    assert lines[0].startswith(f"trainsh job {job}  live.recipe  running")
    assert f"train recipe attach {job}" in screen
    for text in ("tmux.open @local as w", "echo second-$((40+2))", "echo never", "tmux.close @w"):
        assert text in screen, screen
    running = [ln for ln in lines if ln.startswith("▶   2")]
    assert running and "for i in 1 2 3" in running[0], screen
    # each step that ended says its result after it (here: how to attach to the session)
    assert re.search(r"^✓   1  tmux\.open @local as w  → session w on local: tmux .*\s+\d+\.\ds$",
                     screen, re.M), screen
    assert re.search(r"^·   3  @w > echo second", screen, re.M), screen
    assert "time left" in screen  # the command's timeout
    assert re.search(r"^  tick-1$", screen, re.M) and re.search(r"^  tick-3$", screen, re.M), screen
    assert "while [ ! -e release ]" not in screen.split("─ w ")[1]  # output, not the typed text

    term.resize(60, 12)  # a smaller terminal: the view is laid out again to fit it
    screen = wait_until(lambda: (lambda s: s if "… " in s and "tick-3" in s else None)(term.screen()),
                        10, what="the view to fit 60x12")
    lines = screen.splitlines()
    assert lines[0].startswith(f"trainsh job {job}"), screen
    assert any(ln.startswith("▶   2") for ln in lines), screen
    assert any(re.match(r"  … \d more steps?", ln) for ln in lines), screen

    term.resize(100, 30)  # tmux resizes the pane a moment later: wait until the view has seen it
    def all_steps_shown():
        s = term.screen()
        return "tmux.close @w" in s and not re.search(r"… \d+ more step", s)
    wait_until(all_steps_shown, 10, what="the view to fit 100x30 again")
    (tmp_path / "release").touch()
    screen = term.wait_for("EXITED=1")
    # the summary stays: every step with its state, exit code and time; the failure and its output
    assert f"job {job} failed after" in screen
    assert re.search(r"✓\s+2\s+done\s+exit 0\s+\d+\.\ds\s+@w > for i in", screen), screen
    assert re.search(r"✗\s+4\s+failed\s+exit 3\s+\d+\.\ds\s+@w > echo failing-output", screen), screen
    assert re.search(r"·\s+5\s+not run\s+@w > echo never", screen), screen
    assert "last output:" in screen and "| failing-output" in screen
    assert f"logs: train recipe logs {job}" in screen
    assert "trainsh job" not in screen  # the live screen itself is gone


def test_the_live_view_shows_a_remote_sessions_output(tmp_path, terminal, ssh):
    home = ssh.a.home
    write_recipe(tmp_path / "far.recipe", f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > echo far-$((6*7)); echo away-$((7*8)); while [ ! -e {home}/release ]; do sleep 0.1; done
""")
    term = terminal(_train_cmd("recipe", "run", "far.recipe"))
    try:
        screen = term.wait_for("▶   2", "far-42", "away-56", timeout=30)
        assert "while [ ! -e" not in screen.split("─ w ")[1]
    finally:
        (home / "release").touch()
    assert "done" in term.wait_for("EXITED=0", timeout=30)


def test_plain_lines_on_a_terminal_with_no_visual_and_under_ci(tmp_path, terminal):
    write_recipe(tmp_path / "plain.recipe", "tmux.open @local as w\n@w > echo plain-$((1+1))\n")
    for args, env in ((["--no-visual"], {}), ([], {"CI": "1"}), ([], {"TERM": "dumb"})):
        term = terminal(_train_cmd("recipe", "run", "plain.recipe", *args), **env)
        screen = term.wait_for("EXITED=0")
        term.close()
        assert "[1/2] tmux.open @local as w" in screen, (env, screen)
        assert "[2/2] @w > echo plain-$((1+1))" in screen and "| plain-2" in screen, screen
        assert "trainsh job" not in screen and "▶" not in screen and "✓" not in screen, screen


def test_recipe_attach_shows_each_session_in_a_pane(tmp_path):
    write_recipe(tmp_path / "two.recipe", """
tmux.open @local as alpha
tmux.open @local as beta
@alpha > echo alpha-says-$((6*7)); while [ ! -e release ]; do sleep 0.1; done &
@beta > echo beta-says-$((6*9))
@alpha > echo done
""")
    proc = subprocess.Popen([*TRAIN, "recipe", "run", "two.recipe", "--attach"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def both_open():
            j = Journal()
            try:
                jobs = j.jobs(1)
                return jobs and len([s for s in j.sessions(jobs[0].id) if s["status"] == "open"]) == 2 \
                    and jobs[0]
            finally:
                j.close()
        job = wait_until(both_open, 20, what="two sessions open")
        view = f"trainsh-view-{job.id}"
        wait_until(lambda: tmux("list-panes", "-t", view, "-F", "#{@trainsh_session}").stdout.split()
                   == ["alpha", "beta"], 20, what="--attach to give each session a pane")

        p = train("recipe", "attach", job.id[:6])  # again: re-uses the view, adds nothing
        assert p.returncode == 0, p.stderr
        sock = os.environ["TRAINSH_TMUX_SOCKET"]
        assert p.stdout.strip() == f"view of job {job.id}: tmux -S {sock} attach -t {view}"
        panes = tmux("list-panes", "-t", view, "-F", "#{pane_id} #{@trainsh_session}").stdout.split("\n")
        panes = dict(reversed(ln.split()) for ln in panes if ln.strip())
        assert sorted(panes) == ["alpha", "beta"]
        for name, says in (("alpha", "alpha-says-42"), ("beta", "beta-says-54")):
            wait_until(lambda: says in tmux("capture-pane", "-p", "-t", panes[name]).stdout, 20,
                       what=f"{says} in the {name} pane")
        # read-only: keys typed into a pane do not reach the session
        tmux("send-keys", "-t", panes["beta"], "echo typed-$((1+1))", "Enter")
        real = f"beta-{job.id}"
        # then a line typed into the session itself: once the view pane shows it, the view has
        # had the keys above in hand (they were sent first) and had time to pass them on
        tmux("send-keys", "-t", real, "echo synced-$((4+4))", "Enter")
        wait_until(lambda: "synced-8" in tmux("capture-pane", "-p", "-t", panes["beta"]).stdout, 20,
                   what="the session's own line in the view")
        session = tmux("capture-pane", "-p", "-t", real).stdout
        assert "synced-8" in session and "typed" not in session, session
    finally:
        (tmp_path / "release").touch()
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert f"watch the sessions: tmux -S {os.environ['TRAINSH_TMUX_SOCKET']} attach -t {view}" in err


def test_run_attach_inside_tmux_opens_the_view_in_a_new_window(tmp_path, terminal):
    write_recipe(tmp_path / "in.recipe", """
tmux.open @local as solo
@solo > echo solo-says-$((5*5)); while [ ! -e release ]; do sleep 0.1; done
""")
    term = terminal(_train_cmd("recipe", "run", "in.recipe", "--attach"))
    try:
        job = wait_until(lambda: (Journal().jobs(1) or [None])[0], 20, what="the job")
        window = f"trainsh-{job.id}"
        names = lambda: subprocess.run(term.t + ["list-windows", "-t", "tty", "-F", "#{window_name}"],  # noqa: E731
                                       capture_output=True, text=True).stdout.split()
        wait_until(lambda: window in names(), 20, what="the view's window in this tmux")
        wait_until(lambda: "solo-says-25" in subprocess.run(
            term.t + ["capture-pane", "-p", "-t", f"tty:{window}"], capture_output=True, text=True).stdout,
            20, what="the session's output in the new window")
        assert term.screen().startswith(f"trainsh job {job.id}")  # the live view stays where it was
    finally:
        (tmp_path / "release").touch()
    term.wait_for("EXITED=0", timeout=30)


def test_attach_without_open_sessions_is_one_line(tmp_path):
    write_recipe(tmp_path / "done.recipe", "tmux.open @local as w\ntmux.close @w\n")
    assert train("recipe", "run", "done.recipe", "--no-visual").returncode == 0
    p = train("recipe", "attach", Journal().jobs(1)[0].id)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no open tmux session" in p.stderr
    p = train("recipe", "attach")
    assert p.returncode == 2 and "no running job" in p.stderr


def test_jobs_and_status_fit_the_terminal_and_logs_colour_failed_steps(tmp_path, terminal):
    deep = tmp_path / ("a-rather-long-folder-name-" * 3)
    deep.mkdir()
    write_recipe(deep / "fails.recipe", "tmux.open @local as w\n@w > echo oops-$((2+3)); (exit 4)\n")
    assert train("recipe", "run", str(deep / "fails.recipe"), "--no-visual", "--keep-sessions").returncode == 1
    job = Journal().jobs(1)[0].id

    term = terminal(_train_cmd("recipe", "jobs"), width=60)
    screen = term.wait_for("EXITED=0")
    rows = [ln for ln in screen.splitlines() if ln.strip() and not ln.startswith("EXITED")]
    assert rows[0].split() == ["JOB", "STATUS", "STARTED", "TOOK", "RECIPE"]
    # the recipe's long path is cut at its front to fit: "…" and the path's end
    shown = rows[1].split()[-1]
    assert rows[1].startswith(f"{job}  failed") and shown.startswith("…"), rows
    assert shown.endswith("/fails.recipe") and str(deep / "fails.recipe").endswith(shown[1:]), rows
    assert all(len(ln) <= 60 for ln in rows), rows
    assert str(deep) in train("recipe", "jobs").stdout  # into a pipe: whole rows

    term = terminal(_train_cmd("recipe", "status", "--all"), width=60)
    term.wait_for("EXITED=0")
    screen = term.screen("-J")
    rows = [ln for ln in screen.splitlines() if ln.strip() and not ln.startswith("EXITED")
            and not ln.startswith("    session ")]  # an attach line stays whole, to be copied
    assert rows[0].split() == ["JOB", "STATUS", "STARTED", "RECIPE", "STEP"], rows
    assert rows[1].startswith(f"{job}  failed"), rows
    assert all(len(ln) <= 60 for ln in rows), rows
    assert f"train recipe attach {job}" in screen  # its session was kept

    term = terminal(_train_cmd("recipe", "logs", "--last"), width=100)
    screen = term.wait_for("EXITED=0")
    coloured = term.screen("-e")
    step = next(ln for ln in coloured.splitlines() if "line 2 failed exit 4" in ln)
    assert "\x1b[1m" in step and "31m" in step, repr(step)  # bold red
    codes = re.findall(r"\x1b\[[0-9;]*m", coloured[:coloured.index("| oops-5")])
    assert "31" in codes[-1], codes  # the failed step's output is red too
    ok = next(ln for ln in coloured.splitlines() if "line 1 done" in ln)
    assert "31m" not in ok, repr(ok)
    assert "\x1b[" not in train("recipe", "logs", "--last").stdout  # no colour into a pipe


def test_bash_completion_loads_and_completes_names(tmp_path):
    recipes = tmp_path / "trainsh" / "recipes"
    recipes.mkdir(parents=True)
    write_recipe(recipes / "finetune-llama.recipe", "tmux.open @local as w\n")
    (tmp_path / "trainsh" / "hosts.toml").write_text('[gpu-box]\nhost = "10.0.0.9"\nuser = "root"\n')
    p = train("completion", "bash")
    assert p.returncode == 0
    script = tmp_path / "train.bash"
    script.write_text(p.stdout)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}

    def complete(*words: str) -> list[str]:
        arr = " ".join(shlex.quote(w) for w in words)
        r = subprocess.run(["bash", "--norc", "-c",
                            f'source {script}; complete -p train; COMP_WORDS=({arr}); '
                            f'COMP_CWORD={len(words) - 1}; _train_complete; printf "%s\\n" "${{COMPREPLY[@]}}"'],
                           capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 0, r.stderr
        first, *rest = r.stdout.splitlines()
        assert first.startswith("complete ") and first.endswith(" train")
        return [x for x in rest if x]

    assert complete("train", "recipe", "run", "fine") == ["finetune-llama"]
    assert "attach" in complete("train", "recipe", "")
    assert complete("train", "recipe", "run", "x", "--no-") == ["--no-visual"]
    assert complete("train", "host", "test", "gpu") == ["gpu-box"]
    assert complete("train", "completion", "") == ["bash", "fish", "zsh"]
    os.environ["HF_TOKEN"] = "hf-secret-value-123"
    try:
        names = complete("train", "secrets", "get", "HF")
    finally:
        del os.environ["HF_TOKEN"]
    assert names == ["HF_TOKEN"]
    assert "hf-secret-value" not in " ".join(names)


def test_fish_completes_and_zsh_loads_the_script(tmp_path):
    assert shutil.which("fish") and shutil.which("zsh"), "needs fish and zsh (./dev test installs them)"
    recipes = tmp_path / "trainsh" / "recipes"
    recipes.mkdir(parents=True)
    write_recipe(recipes / "finetune-llama.recipe", "tmux.open @local as w\n")
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    r = subprocess.run(["fish", "--no-config", "-c", 'train completion fish | source; '
                        'complete -C"train recipe run fine"; complete -C"train recipe st"'],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.stdout.split() == ["finetune-llama", "status"], (r.stdout, r.stderr)
    r = subprocess.run(["zsh", "-f", "-c", "autoload -U compinit; compinit -u -D; "
                        "source <(train completion zsh); print -r -- $_comps[train]"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "_train" and not r.stderr, (r.stdout, r.stderr)


def test_completion_scripts_for_zsh_and_fish_and_a_bad_shell():
    for shell, words in (("zsh", ["compdef _train train", "__complete"]),
                         ("fish", ["complete -c train", "__complete"])):
        p = train("completion", shell)
        assert p.returncode == 0 and all(w in p.stdout for w in words), p.stdout
    p = train("completion", "tcsh")
    assert p.returncode == 2 and "bash, zsh or fish" in p.stderr


def test_the_live_view_gives_the_screen_back_while_the_passphrase_is_asked(tmp_path, terminal,
                                                                           monkeypatch):
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "correct horse battery")
    assert train("secrets", "set", "API_TOKEN", input="tok-1234567890\n").returncode == 0
    monkeypatch.delenv("TRAINSH_PASSPHRASE")  # the run asks for it, mid-run, on its terminal
    write_recipe(tmp_path / "ask.recipe", """
tmux.open @local as w
@w > echo before-the-secret
@w > echo length-$(printf %s "${secret:API_TOKEN}" | wc -c)
tmux.close @w
""")
    term = terminal(_train_cmd("recipe", "run", "ask.recipe"), width=100, height=30)
    term.wait_for("trainsh secrets passphrase:")
    # for longer than the view's redraw period, every look at the screen: the view must never
    # draw over the question (an absence has no event to wait for: this one is watched)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        screen = term.screen()
        assert "trainsh secrets passphrase:" in screen and "trainsh job" not in screen, screen
        time.sleep(0.05)
    subprocess.run(term.t + ["send-keys", "-t", "tty", "-l", "correct horse battery"], check=True)
    subprocess.run(term.t + ["send-keys", "-t", "tty", "Enter"], check=True)
    screen = term.wait_for("EXITED=0", timeout=30)
    assert re.search(r"✓\s+3\s+done\s+exit 0", screen), screen
    assert "correct horse" not in screen
    job = Journal().jobs(1)[0].id
    assert "length-14" in train("recipe", "logs", job).stdout


def test_after_a_resume_the_view_shows_how_long_the_earlier_steps_took(tmp_path, terminal):
    write_recipe(tmp_path / "again.recipe", """
tmux.open @local as w
@w > sleep 1.3
@w > touch started; while [ ! -e release ]; do sleep 0.05; done
@w > echo after
""")
    p = interrupted("recipe", "run", "again.recipe", "--no-visual", once=tmp_path / "started")
    assert p.returncode == 130, p.stderr
    j = Journal()
    step = j.steps(j.jobs(1)[0].id)[1]
    j.close()
    took = step["ended"] - step["started"]  # as long as a loaded machine made it: 1.3 s or more
    assert took >= 1.3, step
    (tmp_path / "release").touch()
    term = terminal(_train_cmd("recipe", "resume"), width=100, height=30)
    screen = term.wait_for("EXITED=0", timeout=30)
    assert re.search(rf"✓\s+2\s+done\s+exit 0\s+{took:.1f}s\s+@w > sleep 1\.3", screen), screen
    # and what they said before the runner stopped (here: how to attach to the session)
    assert re.search(r"✓\s+1\s+done .* tmux\.open @local as w\n\s+session w on local: tmux ", screen), screen


def test_the_live_view_shows_the_rented_machine_in_a_panel_and_each_steps_result(tmp_path, terminal, vast):
    """A run on a Vast machine (the fake: real HTTP, a real sshd) in a terminal: the machines
    panel names the instance the pick rented with its state, $/h and cost so far; each step's
    result line (the machine taken, the cost, notify's text, the stop's hint) is on the screen
    and in the summary; nothing claims the stopped machine still runs or its session is open."""
    release = tmp_path / "release"
    write_recipe(tmp_path / "cloud.recipe", f"""
var WHAT = llama
host gpu = placeholder
vast.pick @gpu
vast.wait timeout=1m poll=1s
tmux.open @gpu as w
@w > echo on-$CONTAINER_ID; while [ ! -e {release} ]; do sleep 0.1; done
vast.cost
notify trained $WHAT
vast.stop
""")
    term = terminal(_train_cmd("recipe", "run", "cloud.recipe", "--autostop", "0"), width=120, height=30,
                    VAST_URL=os.environ["VAST_URL"], VAST_API_KEY=os.environ["VAST_API_KEY"])
    try:
        term.wait_for("vast: choose a machine", "number [1-", timeout=60)  # on a terminal, the user picks
        subprocess.run(term.t + ["send-keys", "-t", "tty", "Enter"], check=True)  # 1: the cheapest
        iid = wait_until(lambda: next(iter(vast.state()["instances"]), None), 60, what="a rented machine")
        screen = term.wait_for(f"on-{iid}", "cost so far", timeout=60)
        assert re.search(r"^machine\s+provider\s+id\s+state\s+\$/h\s+cost so far", screen, re.M), screen
        assert re.search(rf"^gpu\s+vast\s+{iid}\s+running\s+\$0\.23/h\s+\$0\.\d\d\s*$", screen, re.M), screen
        assert re.search(rf"^✓   1  vast\.pick @gpu  → @gpu = vast {iid}: 1x RTX 3090, \$0\.23/h \(rented\)",
                         screen, re.M), screen
    finally:
        release.touch()
    screen = term.wait_for("EXITED=0", timeout=60)
    summary = screen[screen.index(" done after "):]
    assert re.search(rf"vast {iid}: \$0\.23/h, running, up \d+s, \$0\.\d\d so far", summary), summary
    assert ">> trained llama" in summary, summary
    assert f"vast {iid}: stopped (its disk stays and bills storage; train vast destroy {iid} ends that)" \
        in summary.replace("\n", ""), summary  # (whole, though longer than a line)
    assert re.search(rf"^    gpu\s+vast\s+{iid}\s+stopped\s+\$0\.23/h\s+\$0\.\d\d\s*$", summary, re.M), summary
    assert "still running" not in summary and "left open" not in summary, summary
    assert vast.state()["instances"][iid]["intended_status"] == "stopped"


def test_the_machines_panel_shows_a_slurm_allocation_as_it_goes(tmp_path, terminal, slurm):
    """Every kind of machine is in the panel, as the journal has it: a Slurm allocation (a
    real cluster) shows running while its command runs, and released when the job ends."""
    release = tmp_path / "release"
    write_recipe(tmp_path / "alloc.recipe", f"""
host login = local
slurm.alloc @login as gpu
tmux.open @gpu as w
@w > echo job-$SLURM_JOB_ID; while [ ! -e {release} ]; do sleep 0.1; done
slurm.release @gpu
""")
    term = terminal(_train_cmd("recipe", "run", "alloc.recipe"), width=100, height=30,
                    SLURM_CONF=os.environ["SLURM_CONF"])
    try:
        ident = wait_until(lambda: (lambda m: m and m.group(1))(re.search(r"^  job-(\d+)$", term.screen(), re.M)),
                           60, what="the command's output")
        screen = term.wait_for("cost so far")
        assert re.search(rf"^gpu\s+slurm\s+{ident}\s+running\s*$", screen, re.M), screen
    finally:
        release.touch()
    screen = term.wait_for("EXITED=0", timeout=60)
    assert re.search(rf"^    gpu\s+slurm\s+{ident}\s+released\s*$", screen, re.M), screen


def test_a_slow_cloud_calls_notice_is_a_line_of_the_live_view(tmp_path, terminal, vast):
    """The notice a cloud call gives after 3 s on a terminal would be drawn over by the next
    redraw: while the view is up it is a line of the view, gone once the call has answered."""
    write_recipe(tmp_path / "slow.recipe", "vast.cost 4242\n")  # one call, an id of no machine
    vast.control(delay=4)
    term = terminal(_train_cmd("recipe", "run", "slow.recipe"), width=120, height=30,
                    VAST_URL=os.environ["VAST_URL"], VAST_API_KEY=os.environ["VAST_API_KEY"])
    screen = term.wait_for("Vast.ai: still waiting for", timeout=15)
    assert screen.splitlines()[0].startswith("trainsh job"), screen  # a line of the view
    assert re.search(r"^… Vast\.ai: still waiting for GET instances/4242/ \(3 s; cloud\.api_timeout "
                     r"is \d+ s\)", screen, re.M), screen
    screen = term.wait_for("EXITED=1", timeout=30)  # (no such machine: the step fails)
    assert "4242" in screen and "still waiting" not in screen, screen  # the summary, without it
