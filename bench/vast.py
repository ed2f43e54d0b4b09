"""`train vast list` against the Vast.ai fake vs the floor: a bare `python3 -c` that GETs the
same endpoint with urllib and parses the JSON. Median of 20 runs each, taken in turns. Target: <= 1.5x.

The fake (tests/fakes/vast.py) runs with three instances, so the reply has real rows to parse
and print. trainsh is byte-compiled first, as an installed package is (the standard library the
floor uses is too); without that every run would compile trainsh's sources again.
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
from _common import sandbox  # noqa: E402

RUNS = 20
FLOOR = ("import json, os, urllib.request as u; "
         "r = u.Request(os.environ['VAST_URL'] + '/api/v0/instances/?owner=me', "
         "headers={'Authorization': 'Bearer ' + os.environ['VAST_API_KEY']}); "
         "print(len(json.loads(u.urlopen(r).read())['instances']))")


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def medians(a: list[str], b: list[str]) -> tuple[float, float]:
    """Runs of a and b taken in turns, so that load from elsewhere weighs on both alike."""
    ta, tb = [], []
    for _ in range(RUNS):
        ta.append(timed(a))
        tb.append(timed(b))
    return statistics.median(ta), statistics.median(tb)


def main() -> None:
    if os.getuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        print("vast list: skipped (the fake's machines need root and openssh-server)")
        return
    from fakes.vast import FakeVast

    import trainsh

    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(trainsh.__file__)],
                   stdout=subprocess.DEVNULL, check=True)
    fake = FakeVast(start_delay=0)
    try:
        with sandbox():
            os.environ["VAST_URL"], os.environ["VAST_API_KEY"] = fake.url, fake.key
            for offer in ("1001", "1002", "1004"):
                fake.api("PUT", f"asks/{offer}/", {"client_id": "me", "image": "bench", "disk": 10})
            train = os.path.join(os.path.dirname(sys.executable), "train")
            ours, floor = medians([train, "vast", "list"], [sys.executable, "-c", FLOOR])
            ratio = ours / floor
            print(f"vast list: trainsh {ours * 1000:.0f} ms, bare urllib GET + parse {floor * 1000:.0f} ms, "
                  f"ratio {ratio:.2f} (target <= 1.5) {'OK' if ratio <= 1.5 else 'OVER'}")
    finally:
        for k in ("VAST_URL", "VAST_API_KEY"):
            os.environ.pop(k, None)
        fake.stop()


if __name__ == "__main__":
    main()
