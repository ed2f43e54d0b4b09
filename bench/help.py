"""`train --help` start-up time: median of 20 runs. Target: <= 100 ms."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = 20


def main() -> None:
    train = os.path.join(os.path.dirname(sys.executable), "train")
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run([train, "--help"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"train --help: median {med * 1000:.0f} ms over {RUNS} runs (target <= 100 ms) "
          f"{'OK' if med <= 0.1 else 'OVER'}")


if __name__ == "__main__":
    main()
