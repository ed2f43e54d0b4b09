"""From `slurm.alloc` to the first command's exit code in the allocation, vs the raw floor on
the same cluster: `salloc -N1 srun true` (allocate, run one task in it, end). Median of 7 runs
each, taken in turns. Target: <= 1.5x.

The cluster is tests/slurmd.py's (munged, slurmctld, two slurmd on this machine); the login host
is `local`, so both sides pay the same for reaching Slurm. trainsh's time is the journal's:
from the start of `slurm.alloc` to the end of `@w > true` (submit, wait until it runs, open a
session whose shell is an `srun --pty` on the first node, run the command).

Where the time goes (this machine, quiet): the step's start to Slurm's grant seen by the login
shell, with the allocation's environment written in the same round trip, ~20-28 ms (salloc
itself ~7); tmux.open ~15 ms; then the session's own `srun --pty bash` ~25-30 ms until bash
runs on the node, bash's rc file and the typed command ~5 ms, and the end marker through srun,
the relay and `tmux wait-for` back to the runner ~6 ms. In most runs the end marker then waits
~40 ms more inside Slurm: slurmstepd's I/O connection to srun has Nagle's algorithm on (no
TCP_NODELAY), and srun, having just sent typed input after receiving output, delays its ACKs
(Linux's interactive mode, 40 ms at least), so the shell's second small message waits for the
first one's ACK. Any command typed into a fresh `srun --pty` shell pays it, trainsh's or a
person's (the second line prints that floor); `srun true` types nothing. Neither socket is
trainsh's to set options on; srun without --pty (`-u`, a pty made on the node) stalls the same.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

here = os.path.dirname(__file__)
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests"))
from _common import run_recipe, sandbox  # noqa: E402

RUNS = 7
RECIPE = """host login = local
slurm.alloc @login as a
tmux.open @a as w
@w > true
"""


def ours(cluster) -> float:
    code, steps = run_recipe(RECIPE)
    if code != 0:
        raise SystemExit(f"slurm bench: the recipe failed: {[dict(s) for s in steps]}")
    took = steps[-1]["ended"] - steps[0]["started"]
    cluster.cancel_all()
    return took


def floor(cluster) -> float:
    t = time.perf_counter()
    subprocess.run(["salloc", "-Q", "-N1", "srun", "true"], env=cluster.env, check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - t
    cluster.cancel_all()
    return took


def pty_floor(cluster) -> float:
    """The same path by hand: allocate, start `srun --pty bash` in a tmux pane (as a session in
    the allocation is), type `true` at once and see its end go by in the pane's output. It pays
    what any command typed into a fresh `srun --pty` shell pays (see the module's end)."""
    sock = os.environ["TRAINSH_TMUX_SOCKET"]
    log = os.path.abspath("pty.log")
    open(log, "wb").close()
    end = b"\x1b]778;raw\x07"
    t = time.perf_counter()
    out = subprocess.run(["salloc", "--no-shell", "-N1"], env=cluster.env, check=True, text=True,
                         stdin=subprocess.DEVNULL, capture_output=True).stderr
    job = out.split("job allocation ")[1].split()[0]
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-s", "raw", "-x", "200", "-y", "50",
                    f"exec srun --jobid={job} --overlap -N1 -n1 --pty bash --norc -i",
                    ";", "pipe-pane", "-t", "=raw:", "-o", f"exec cat >> {log}",
                    ";", "send-keys", "-t", "=raw:", "-l", " true; printf '\\33]778;raw\\7'",
                    ";", "send-keys", "-t", "=raw:", "Enter"], env=cluster.env, check=True)
    with open(log, "rb") as f:
        while end not in f.read():  # (reads on from where it was)
            if time.perf_counter() - t > 30:
                raise SystemExit("slurm bench: the typed command never ended")
            time.sleep(0.0005)
    took = time.perf_counter() - t
    subprocess.run(["tmux", "-S", sock, "kill-session", "-t", "=raw"], capture_output=True)
    cluster.cancel_all()
    return took


def main() -> None:
    import slurmd

    why = slurmd.available()
    if why:
        print(f"slurm: skipped ({why})")
        return
    cluster = slurmd.start()
    try:
        with sandbox():
            os.environ["SLURM_CONF"] = str(cluster.conf)
            ours(cluster)  # warm up all three
            floor(cluster)
            pty_floor(cluster)
            a, b, c = [], [], []
            for _ in range(RUNS):
                a.append(ours(cluster))
                b.append(floor(cluster))
                c.append(pty_floor(cluster))
            t_ours, t_floor, t_pty = statistics.median(a), statistics.median(b), statistics.median(c)
            ratio = t_ours / t_floor
            print(f"slurm alloc -> first exit code: trainsh {t_ours * 1000:.0f} ms, raw salloc + srun "
                  f"true {t_floor * 1000:.0f} ms, ratio {ratio:.2f} (target <= 1.5) "
                  f"{'OK' if ratio <= 1.5 else 'OVER'}")
            print(f"  (not the target) vs salloc + srun --pty bash with `true` typed in: "
                  f"{t_pty * 1000:.0f} ms, ratio {t_ours / t_pty:.2f}; each run, ms: trainsh "
                  f"{' '.join(f'{x * 1000:.0f}' for x in a)} | srun --pty {' '.join(f'{x * 1000:.0f}' for x in c)}")
    finally:
        os.environ.pop("SLURM_CONF", None)
        slurmd.stop(cluster)


if __name__ == "__main__":
    main()
