"""Recovery from a lost machine (recover=N) against the Vast fake, measured in the same run.

1. Replacement time. A recipe picks an interruptible machine, waits for it, opens a session,
   copies a script to it and starts training; the fake then outbids the machine (POST
   /_fake/preempt). From that call to the replacement's replayed training command running
   (the script writes the time it starts), against the time the same pick, wait and steps
   took the first time in the same job (pick started -> training running): the ratio of the
   two, detection (the call -> the job journaling the loss) apart. Target: <= 1.3x, plus
   <= 30 s of detection. 3 jobs; medians.
2. What examples/spot.recipe would cost (20 epochs of 30 s) on demand vs interruptible with one
   preemption, from the fake's prices for the pick's offer and the times measured in 1: the
   interruptible run pays the lost machine up to its loss, the replacement's set-up and the
   epoch the loss cut short (half of one on average).

The fake's machines take 1 s to boot (start_delay), as in bench/vast.py.
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
from _common import sandbox, vast_login  # noqa: E402
from helpers import wait_until  # noqa: E402

JOBS = 3
SCRIPT = """\
import os, sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"{time.time()} {os.environ.get('CONTAINER_ID')}\\n")
time.sleep(600)
"""
RECIPE = """\
host gpu = placeholder
vast.pick @gpu gpu=RTX_4090 interruptible=true recover=1
vast.wait poll=0.2s
tmux.open @gpu as work
{dir}/train.py -> @gpu:/workspace/train.py
@work > python3 /workspace/train.py {dir}/starts
"""
EPOCHS, EPOCH_S = 20, 30.0  # examples/spot.recipe's


def starts(d: str) -> list[tuple[float, str]]:
    try:
        with open(f"{d}/starts") as f:
            return [(float(t), who) for t, who in (ln.split() for ln in f if ln.strip())]
    except FileNotFoundError:
        return []


def one_job(fake, train: str) -> dict:
    from trainsh.runtime.journal import Journal

    p = subprocess.Popen([train, "recipe", "run", "spot.recipe", "--no-visual"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = wait_until(lambda: starts("."), timeout=120, what="training")[0]
    journal = Journal()
    job = journal.jobs(1)[0]
    pick_started = journal.steps(job.id)[0]["started"]  # (read now: the replay starts it again)
    price = fake.api("GET", f"instances/{first[1]}/?owner=me")["instances"]["dph_total"]
    t0 = time.time()  # the provider reports the loss from here on
    fake.preempt(first[1])
    second = wait_until(lambda: starts(".")[1:], timeout=120, what="the replacement's training")[0]
    lost = journal.job(job.id).options["lost"][0]
    journal.close()
    p.terminate()  # training sleeps on: the job is interrupted, its machine destroyed here
    p.communicate(timeout=60)
    fake.api("DELETE", f"instances/{second[1]}/", {})
    return {"fresh": first[0] - pick_started, "detect": lost["at"] - t0,
            "replace": second[0] - lost["at"], "price": price}


def main() -> None:
    if os.getuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        print("recovery: skipped (the fake's machines need root and openssh-server)")
        return
    from fakes.vast import FakeVast

    from trainsh.cloud.vast import VastProvider

    fake = FakeVast(start_delay=1.0)
    try:
        with sandbox() as d:
            os.environ["VAST_URL"], os.environ["VAST_API_KEY"] = fake.url, fake.key
            train = os.path.join(os.path.dirname(sys.executable), "train")
            vast_login(fake, train)
            with open("train.py", "w") as f:
                f.write(SCRIPT)
            with open("spot.recipe", "w") as f:
                f.write(RECIPE.format(dir=d))
            runs = []
            for _ in range(JOBS):
                if os.path.exists("starts"):
                    os.remove("starts")
                runs.append(one_job(fake, train))
            fresh = statistics.median(r["fresh"] for r in runs)
            detect = statistics.median(r["detect"] for r in runs)
            replace = statistics.median(r["replace"] for r in runs)
            ratio = replace / fresh
            ok = ratio <= 1.3 and detect <= 30
            print(f"recovery: loss reported -> replayed training running {detect + replace:.2f} s "
                  f"(detection {detect:.2f} s + replacement {replace:.2f} s); the same pick, wait and "
                  f"steps in the first pass {fresh:.2f} s; ratio {ratio:.2f} (target <= 1.3, detection "
                  f"<= 30 s) {'OK' if ok else 'OVER'}")
            offers = VastProvider().search(gpu="RTX_4090")
            demand = offers[0].price_per_hour
            bid = runs[0]["price"]
            hours = EPOCHS * EPOCH_S / 3600
            setup = fresh / 3600
            lost_work = EPOCH_S / 2 / 3600 + (detect + replace) / 3600
            on_demand = demand * (setup + hours)
            spot = bid * (setup + hours + lost_work)
            print(f"examples/spot.recipe ({EPOCHS} epochs of {EPOCH_S:.0f} s), the fake's prices: on demand "
                  f"${demand:.3f}/h -> ${on_demand:.4f}; interruptible at ${bid:.3f}/h with one preemption "
                  f"-> ${spot:.4f} ({spot / on_demand:.2f}x the on-demand cost)")
    finally:
        for k in ("VAST_URL", "VAST_API_KEY"):
            os.environ.pop(k, None)
        fake.stop()


if __name__ == "__main__":
    main()
