"""`train recipe status` as a user reads it: on an 80-column terminal, and for machines that
were stopped after their job ended."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from helpers import HOLDS, TRAIN, signalled, started_on, train, wait_until, write_recipe



def _on_a_terminal(argv: list[str], columns: int = 80) -> str:
    """What `argv` prints on a real terminal `columns` wide (a tmux pane of its own)."""
    folder = tempfile.mkdtemp(prefix="tst", dir="/tmp")
    t = ["tmux", "-S", f"{folder}/s", "-f", "/dev/null"]
    done = Path(folder) / "done"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k.startswith(("TRAINSH_", "VAST_", "HOME")))
    try:
        subprocess.run(t + ["new-session", "-d", "-s", "tty", "-x", str(columns), "-y", "50",
                            "sh", "-c", f"env {env} {shlex.join(argv)}; touch {done}; sleep 60"], check=True)
        wait_until(done.exists, timeout=60, what="the command to end")
        return subprocess.run(t + ["capture-pane", "-p", "-t", "tty"], capture_output=True, text=True).stdout
    finally:
        subprocess.run(t + ["kill-server"], capture_output=True)
        subprocess.run(["rm", "-rf", folder])


def test_status_fits_80_columns_and_still_says_how_to_attach(tmp_path, vast):
    r = write_recipe(tmp_path / "a-long-enough-recipe-name.recipe", HOLDS)
    p = signalled([*TRAIN, "recipe", "run", str(r), "--no-visual", "--autostop", "0"], signal.SIGINT,
                  lambda: started_on(vast), timeout=90)
    assert p.returncode == 130, p.stderr
    screen = _on_a_terminal([sys.executable, "-m", "trainsh", "recipe", "status"])
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    job = next(ln for ln in lines if "interrupted" in ln)
    assert "a-long-enough-recipe-name.recipe" in job, screen  # the file's name, not cut
    session = next(ln for ln in lines if ln.lstrip().startswith("session w"))
    assert "train recipe attach" in session and len(session) <= 80, screen
    # piped, the whole ssh line is there to be copied
    piped = train("recipe", "status").stdout
    assert "tmux attach -t w-" in piped, piped


def test_a_finished_jobs_machine_stopped_since_is_not_called_up(tmp_path, vast):
    r = write_recipe(tmp_path / "d.recipe", "host gpu = placeholder\nvast.pick @gpu\ntmux.open @gpu as w\n@w > true\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    ((iid, _),) = vast.state()["instances"].items()
    assert f"machine vast {iid}" in train("recipe", "status", "--all").stdout  # up, and said so
    vast.api("PUT", f"instances/{iid}/", {"state": "stopped"})  # autostop, or the user
    status = train("recipe", "status", "--all").stdout
    assert f"machine vast {iid}" not in status and "up (the job's)" not in status, status
