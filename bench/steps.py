"""Per-step overhead of `@s > true` against the floor: raw tmux send-keys + wait-for in a pane.

Target: ratio <= 1.5. The same steps from the Python API (`s.run("true")` in a loop) against the
recipe's, in the same run: target <= 1.1x. And the time a resume of a finished 1,000-call
prefix takes to replay it (the program run from the top, each call answered from the journal,
nothing sent): target < 1 s. Both run N commands in a session of a private tmux server on this machine,
in the same run, in alternating rounds; the best round of each is kept (the one least disturbed
by the rest of the machine). trainsh's time per step includes everything: journal writes before
and after the step, sending, the exit code, collecting output into the job's log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import run_program, run_recipe, sandbox  # noqa: E402

N = 200
ROUNDS = 5


def floor(sock: str, round_: int) -> float:
    t = ["tmux", "-S", sock]
    name = f"raw{round_}"
    subprocess.run(t + ["new-session", "-d", "-s", name, "-x", "200", "-y", "50"], check=True)
    time.sleep(1.0)  # let the shell finish starting
    start = time.perf_counter()
    for i in range(N):
        subprocess.run(t + ["send-keys", "-t", name, "-l", f"true; tmux wait-for -S {name}-{i}",
                            ";", "send-keys", "-t", name, "Enter"], check=True)
        subprocess.run(t + ["wait-for", f"{name}-{i}"], check=True)
    return (time.perf_counter() - start) / N


def ours() -> float:
    text = "tmux.open @local as s\n@s > sleep 1\n" + "@s > true\n" * N
    code, steps = run_recipe(text)
    assert code == 0, "bench recipe failed"
    cmd = steps[2:]
    return (cmd[-1]["ended"] - cmd[0]["started"]) / N  # wall time from first to last step


PROGRAM = """
def main(job, n: int = 200):
    s = job.host("local").open("s")
    s.run("sleep 1")
    for _ in range(n):
        s.run("true")
"""


def python() -> float:
    code, steps = run_program(PROGRAM, {"n": N})
    assert code == 0, "bench program failed"
    cmd = steps[2:]
    return (cmd[-1]["ended"] - cmd[0]["started"]) / N


def replay(calls: int = 1000) -> float:
    """Seconds to replay `calls` finished calls: the program's job marked interrupted after it
    ran, then resumed; the resume only replays (its last call is the job's last)."""
    code, steps, job_id = run_program(PROGRAM, {"n": calls - 2}, keep=True)
    assert code == 0 and len(steps) == calls, "bench program failed"
    return run_program(None, {}, resume=job_id)


def main() -> None:
    floors, mine, py = [], [], []
    with sandbox():
        sock = os.environ["TRAINSH_TMUX_SOCKET"]
        for i in range(ROUNDS):
            floors.append(floor(sock, i))
            mine.append(ours())
            py.append(python())
        back = min(replay() for _ in range(3))
    f, o, p = min(floors), min(mine), min(py)
    ratio = o / f
    print(f"steps: {N} x '@s > true': trainsh {o * 1000:.2f} ms/step, raw tmux send-keys+wait-for "
          f"{f * 1000:.2f} ms/step, ratio {ratio:.2f} (target <= 1.5) {'OK' if ratio <= 1.5 else 'OVER'}")
    r = p / o
    print(f"python: {N} x s.run('true'): {p * 1000:.2f} ms/step, the recipe's {o * 1000:.2f} ms/step, "
          f"ratio {r:.2f} (target <= 1.1) {'OK' if r <= 1.1 else 'OVER'}")
    print(f"replay: resuming a finished prefix of 1000 calls took {back:.2f} s (target < 1 s) "
          f"{'OK' if back < 1 else 'OVER'}")


if __name__ == "__main__":
    main()
