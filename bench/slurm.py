"""From `slurm.alloc` to the first command's exit code in the allocation, vs the raw floor on
the same cluster: `salloc -N1 srun true` (allocate, run one task in it, end). Median of 7 runs
each, taken in turns. Target: <= 1.5x.

The cluster is tests/slurmd.py's (munged, slurmctld, two slurmd on this machine); the login host
is `local`, so both sides pay the same for reaching Slurm. trainsh's time is the journal's:
from the start of `slurm.alloc` to the end of `@w > true` (submit, wait until it runs, open a
session whose shell is an `srun --pty` on the first node, run the command).
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
            ours(cluster)  # warm up both
            floor(cluster)
            a, b = [], []
            for _ in range(RUNS):
                a.append(ours(cluster))
                b.append(floor(cluster))
            t_ours, t_floor = statistics.median(a), statistics.median(b)
            ratio = t_ours / t_floor
            print(f"slurm alloc -> first exit code: trainsh {t_ours * 1000:.0f} ms, raw salloc + srun "
                  f"true {t_floor * 1000:.0f} ms, ratio {ratio:.2f} (target <= 1.5) "
                  f"{'OK' if ratio <= 1.5 else 'OVER'}")
    finally:
        os.environ.pop("SLURM_CONF", None)
        slurmd.stop(cluster)


if __name__ == "__main__":
    main()
