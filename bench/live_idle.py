"""CPU use of the live view during an idle wait. Target: < 2% of a core.

`train recipe run` runs in a real terminal (a tmux pane, 120x40) on a recipe that waits for an
idle session whose command sleeps; the runner's own CPU time (user + system, from /proc) over
the measured stretch, divided by its length, is its share of a core. The same run with
--no-visual is the baseline. BENCH_LIVE_SECONDS sets the stretch (default 30; the target is
stated for a 10-minute wait: 600).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import sandbox  # noqa: E402

SECONDS = float(os.environ.get("BENCH_LIVE_SECONDS", "30"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waiting() -> bool:
    """The job's last step (the wait) has started."""
    from trainsh.runtime.journal import Journal

    j = Journal()
    try:
        jobs = j.jobs(1)
        steps = j.steps(jobs[0].id) if jobs and jobs[0].status == "running" else []
        return len(steps) == 3 and steps[2]["status"] == "running"
    finally:
        j.close()


def measure(d: str, flags: list[str]) -> float:
    recipe = f"{d}/idle.recipe"
    with open(recipe, "w") as f:
        f.write(f"tmux.open @local as w\n@w > sleep {int(SECONDS) + 60} &\n"
                f"wait @w idle timeout={int(SECONDS) + 120}s\n")
    sock = f"{d}/tty{len(flags)}.sock"  # a server each: a killed one may linger a moment
    t = ["tmux", "-S", sock]
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in
                   ("HOME", "TRAINSH_HOME", "TRAINSH_TMUX_SOCKET", "PATH"))
    cmd = shlex.join([sys.executable, "-m", "trainsh", "recipe", "run", recipe, *flags])
    subprocess.run(t + ["new-session", "-d", "-s", "tty", "-x", "120", "-y", "40",
                        f"env -u CI -u COLUMNS -u LINES TERM=xterm-256color {env} {cmd}"], check=True)
    try:
        pid = int(subprocess.run(t + ["display", "-p", "-t", "tty", "#{pane_pid}"],
                                 capture_output=True, text=True).stdout)
        end = time.monotonic() + 30
        while not waiting():
            if time.monotonic() > end:
                raise SystemExit("the recipe did not reach its wait")
            time.sleep(0.2)
        time.sleep(2)  # past the first draws
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(SECONDS)
        return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    finally:
        subprocess.run(t + ["kill-server"], capture_output=True)


def main() -> None:
    with sandbox() as d:
        live = measure(d, [])
        plain = measure(d, ["--no-visual"])
    print(f"idle wait, {SECONDS:.0f} s: live view {live * 100:.2f}% of a core, plain "
          f"{plain * 100:.2f}% (target < 2%) {'OK' if live < 0.02 else 'OVER'}")


if __name__ == "__main__":
    main()
