"""Two ratios against the Vast.ai fake, each a median of runs taken in turns. Target: <= 1.5x.

1. `train vast list` vs the floor: a bare `python3 -c` that GETs the same endpoint with urllib
   and parses the JSON (20 runs each).
2. A new machine: from the fake reporting `running` to the first command's exit code there,
   in a recipe that rents it and waits for it, vs a raw `ssh` login + `tmux new-session` + the
   command, its exit code read back, on the same fake's sshd (5 machines each).

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
from _common import sandbox, vast_login  # noqa: E402

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
            first_command(fake, train)
    finally:
        for k in ("VAST_URL", "VAST_API_KEY"):
            os.environ.pop(k, None)
        fake.stop()


MACHINES = 5
FIRST = """\
host gpu = placeholder
vast.pick @gpu
vast.wait poll=0.05s
tmux.open @gpu as w
@w > true
"""


def first_command(fake, train: str) -> None:
    """From the moment the fake reports a new machine `running` to the first command's exit
    code there: a recipe that rents it (vast.pick), waits for it (vast.wait, polling every
    50 ms: the poll interval is the user's choice, not trainsh's cost), opens a session and
    runs `true`; the end is the step's end in the journal. The floor: a raw ssh login +
    tmux new-session + the command, its exit code read back, on another new machine of the
    same fake. The two go in turns."""
    from trainsh.runtime.journal import Journal

    key = vast_login(fake, train)
    with open("first.recipe", "w") as f:
        f.write(FIRST)
    fake.control(start_delay=1.0)
    for iid in fake.state()["instances"]:  # else the pick takes one of these (the user's own)
        fake.api("DELETE", f"instances/{iid}/", {})
    ours, raw = [], []
    for _ in range(MACHINES):
        before = set(fake.state()["instances"])
        r = subprocess.run([train, "recipe", "run", "first.recipe", "--no-visual"], timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit(f"the recipe failed: {r.stderr.strip()}")
        iid = (set(fake.state()["instances"]) - before).pop()
        up = fake.api("GET", f"instances/{iid}/?owner=me")["instances"]["uptime_mins"] * 60
        running_since = time.time() - up
        journal = Journal()
        job = journal.jobs(1)[0]
        ended = journal.steps(job.id)[-1]["ended"]
        journal.close()
        ours.append(ended - running_since)
        fake.api("DELETE", f"instances/{iid}/", {})

        iid = str(fake.api("PUT", "asks/1001/", {"client_id": "me", "image": "bench", "disk": 10})["new_contract"])
        while fake.state()["instances"][iid]["actual_status"] != "running":
            time.sleep(0.002)
        t = time.perf_counter()  # the fake reports running from here on
        port = fake.state()["instances"][iid]["direct_port"]
        # one tmux client: the session, the command typed into its shell, the wait for it
        remote = (f"tmux new-session -d -s b \\; send-keys -t b 'true; echo $? > /tmp/tsb-rc-{iid}; "
                  f"tmux wait-for -S b-done' Enter \\; wait-for b-done && cat /tmp/tsb-rc-{iid}")
        r = subprocess.run(["ssh", "-p", str(port), "-i", key, "-o", "IdentitiesOnly=yes",
                            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                            "root@127.0.0.1", remote], capture_output=True, text=True, timeout=60)
        raw.append(time.perf_counter() - t)
        if r.returncode != 0 or r.stdout.strip() != "0":
            raise SystemExit(f"raw ssh + tmux on {iid} failed: {r.stderr.strip()}")
        fake.api("DELETE", f"instances/{iid}/", {})
    a, b = statistics.median(ours), statistics.median(raw)
    ratio = a / b
    print(f"new machine, running -> first exit code: trainsh {a * 1000:.0f} ms, raw ssh + tmux "
          f"{b * 1000:.0f} ms, ratio {ratio:.2f} (target <= 1.5) {'OK' if ratio <= 1.5 else 'OVER'}")


if __name__ == "__main__":
    main()
