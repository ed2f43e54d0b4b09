"""What a user sees of a job's sessions: the summary the live view leaves on the terminal keeps
the last lines each session printed, and a session's pane (what `train recipe attach` and a
hand-made `tmux attach` show) reads as if the user had typed their commands themselves.

Real parts only: a tmux pane of known size runs `train` (as test_live.py), sessions are real
tmux sessions here or on the loopback sshd."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from helpers import TRAIN, tmux, wait_until, write_recipe

from trainsh.runtime.journal import Journal

SECRET = "tok-9f8e7d6c5b4a"


class Terminal:
    """A tmux pane of a known size (a private tmux server) running one command."""

    def __init__(self, tmp_path, command: str, width: int = 100, height: int = 40, **env: str):
        self.sock = str(tmp_path / "tty.sock")
        keep = {k: os.environ[k] for k in ("HOME", "TRAINSH_HOME", "TRAINSH_TMUX_SOCKET", "PATH",
                                           "TRAINSH_SSH_OPTIONS", "TRAINSH_SSH_CONTROL_DIR")
                if k in os.environ}
        keep.update({"TERM": "xterm-256color", **env})
        line = (f"env -u CI -u COLUMNS -u LINES -u NO_COLOR "
                f"{' '.join(f'{k}={shlex.quote(v)}' for k, v in keep.items())} "
                f"{command}; echo EXITED=$?; sleep 60")
        self.t = ["tmux", "-S", self.sock]
        subprocess.run(self.t + ["new-session", "-d", "-s", "tty", "-x", str(width), "-y", str(height),
                                 line], check=True)

    def screen(self) -> str:
        return subprocess.run(self.t + ["capture-pane", "-p", "-t", "tty"],
                              capture_output=True, text=True).stdout

    def wait_for(self, *words: str, timeout: float = 30) -> str:
        return wait_until(lambda: (lambda s: s if all(w in s for w in words) else None)(self.screen()),
                          timeout, what=f"{words} on the screen")

    def close(self) -> None:
        subprocess.run(self.t + ["kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path):
    made: list[Terminal] = []

    def start(command: str, **kw) -> Terminal:
        made.append(Terminal(tmp_path, command, **kw))
        return made[-1]

    yield start
    for t in made:
        t.close()


def test_the_summary_keeps_the_last_lines_of_each_sessions_last_command(tmp_path, terminal):
    """After a run that went well, what the evaluation printed (its accuracy) is still on the
    screen, with the last lines of every other session's last command; a long output is cut to
    its last lines, and a secret it printed is masked as everywhere else."""
    write_recipe(tmp_path / "eval.recipe", """
tmux.open @local as train
tmux.open @local as side
@side > echo side-token=${secret:PANES_TOKEN}; echo side-says-$((6*7))
@train > for i in $(seq 1 40); do echo epoch-$i; done
@train > for i in $(seq 1 20); do echo eval-batch-$i; done; echo accuracy=$((90+3)).1%
tmux.close @side
tmux.close @train
""")
    term = terminal(shlex.join([*TRAIN, "recipe", "run", "eval.recipe"]), PANES_TOKEN=SECRET)
    screen = term.wait_for("EXITED=0")
    job = Journal().jobs(1)[0].id
    assert f"job {job} done after" in screen, screen
    summary = screen[screen.index(f"job {job} done after"):]
    assert "trainsh job" not in screen  # the live screen is gone, its summary stays
    lines = summary.splitlines()
    # the evaluation's last lines, under its session's name
    at = lines.index("  train: last output")
    assert lines[at + 1:at + 6] == [f"    | eval-batch-{i}" for i in range(17, 21)] + ["    | accuracy=93.1%"], summary
    assert "eval-batch-16" not in summary and "epoch-40" not in summary  # its last command's last lines
    # the other session's last command, its secret masked
    at = lines.index("  side: last output")
    assert lines[at + 1:at + 3] == ["    | side-token=***", "    | side-says-42"], summary
    assert SECRET not in summary


WRAPPER_WORDS = ("printf", "wait-for", "TRAINSH_RUN", "777", ".rc")

PANES = """
host box = {spec}
tmux.open @box as w
@w > echo hello-$((6*7))
@w > cd /tmp && (exit 7) || echo code=$?
@w > cat <<'EOF'
quoted "$NAME"
EOF
@w > PROMPT_COMMAND=; PS1='$ '; PS0=; echo reset-hooks
@w > echo after-reset; (exit 4)
"""


def _pane(sock: str, session: str) -> str:
    return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p", "-t", f"={session}:"],
                          capture_output=True, text=True).stdout


def _run_panes(tmp_path, spec: str) -> str:
    from helpers import train

    write_recipe(tmp_path / "panes.recipe", PANES.format(spec=spec))
    # bounded by the run's own end: a lost hook is noticed at the shell's prompt, not waited out
    p = train("recipe", "run", "panes.recipe", "--no-visual", "--keep-sessions", timeout=60)
    j = Journal()
    try:
        job = j.jobs(1)[0]
        steps = j.steps(job.id)
        real = j.sessions(job.id)[0]["real"]
    finally:
        j.close()
    assert p.returncode == 1 and "command exited with code 4" in p.stderr, p.stderr
    assert [s["exit_code"] for s in steps] == [0, 0, 0, 0, 0, 4], steps

    def out(i: int) -> str:
        with open(steps[i]["log_path"], encoding="utf-8") as f:
            return f.read()

    assert out(1) == "hello-42\n" and out(2) == "code=7\n" and out(3) == 'quoted "$NAME"\n'
    assert out(4) == "reset-hooks\n" and out(5) == "after-reset\n"
    return real


def _shows_the_commands(screen: str) -> None:
    lines = [ln.rstrip() for ln in screen.splitlines() if ln.strip()]
    typed = [ln for ln in lines if ln.endswith(("echo hello-$((6*7))", "cd /tmp && (exit 7) || echo code=$?",
                                                "echo reset-hooks", "echo after-reset; (exit 4)"))]
    assert len(typed) == 4, screen
    assert "hello-42" in lines and "code=7" in lines and "after-reset" in lines, screen
    assert not any(w in screen for w in WRAPPER_WORDS), screen  # not a word of the wrapper


def test_a_pane_shows_the_commands_as_written_and_a_command_that_drops_the_hooks_does_not_hang(tmp_path):
    """The pane reads as if the user had typed each command; a command that clears
    PROMPT_COMMAND, PS0 and PS1 (which carry the exit code) still ends with its exit code, and
    so does the next one (the hooks are back)."""
    real = _run_panes(tmp_path, "local")
    _shows_the_commands(_pane(os.environ["TRAINSH_TMUX_SOCKET"], real))
    tmux("kill-session", "-t", f"={real}:")


def test_the_same_on_an_ssh_host_and_exec_bash_loses_nothing(tmp_path, ssh):
    from helpers import train

    real = _run_panes(tmp_path, ssh.a.spec())
    socks = list(ssh.a.tmux_dir.glob("tmux-*/default"))
    _shows_the_commands(_pane(str(socks[0]), real))
    p = train("exec", f"host me = {ssh.a.spec()}", "tmux.open @me as w", "@w > exec bash",
              "@w > echo in-new-shell; (exit 3)", "--no-visual", timeout=60)
    assert p.returncode == 3 and "in-new-shell" in p.stderr, p.stderr
