"""Steps and transfers on an ssh host (a real sshd on loopback), against the raw tools.

- 200 x `@s > true` on the ssh host against the floor: ssh over the same ControlMaster
  connection running the same tmux commands (send-keys + wait-for in one call). Target <= 1.5.
- rsync of a 5,000-file tree to the host against raw rsync over the same connection.
  Target <= 1.2.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

here = os.path.dirname(__file__)
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests"))
import sshd  # noqa: E402
from _common import run_recipe, sandbox  # noqa: E402

N = 200
ROUNDS = 3
FILES = 5000


def main() -> None:
    with sshd.running() as env, sandbox() as d:
        from trainsh.remote.sshspec import SshSpec, rsync_rsh, ssh_argv

        spec = SshSpec.parse(env.a.spec())
        ssh = ssh_argv(spec)
        subprocess.run(ssh + ["--", "true"], check=True)  # the shared connection
        floors, mine = [], []
        for r in range(ROUNDS):
            floors.append(floor(ssh, r))
            mine.append(ours(env.a.spec()))
        f, o = min(floors), min(mine)
        print(f"ssh steps: {N} x '@s > true': trainsh {o * 1000:.2f} ms/step, raw ssh+tmux "
              f"{f * 1000:.2f} ms/step, ratio {o / f:.2f} (target <= 1.5) {'OK' if o / f <= 1.5 else 'OVER'}")
        tree = os.path.join(d, "tree")
        for i in range(FILES):
            sub = os.path.join(tree, f"d{i % 50}")
            os.makedirs(sub, exist_ok=True)
            with open(os.path.join(sub, f"f{i}"), "wb") as fh:
                fh.write(os.urandom(512))
        raw, tool = [], []
        for r in range(ROUNDS):
            dest = f"{env.a.home}/raw{r}/"
            t = time.perf_counter()
            subprocess.run(["rsync", "-a", "-e", rsync_rsh(spec), tree + "/",
                            f"{spec.destination}:{dest}"], check=True)
            raw.append(time.perf_counter() - t)
            code, steps = run_recipe(f"host h = {env.a.spec()}\n./tree/ -> @h:{env.a.home}/ours{r}/\n")
            assert code == 0
            tool.append(steps[0]["ended"] - steps[0]["started"])
        ratio = min(tool) / min(raw)
        print(f"ssh rsync: {FILES} files: trainsh {min(tool):.2f} s, raw rsync {min(raw):.2f} s, "
              f"ratio {ratio:.2f} (target <= 1.2) {'OK' if ratio <= 1.2 else 'OVER'}")


def floor(ssh: list[str], r: int) -> float:
    name = f"raw{r}"
    subprocess.run(ssh + ["--", f"tmux new-session -d -s {name} -x 200 -y 50"], check=True)
    time.sleep(1)
    t = time.perf_counter()
    for i in range(N):
        keys = shlex.quote(f"true; tmux wait-for -S {name}-{i}")
        subprocess.run(ssh + ["--", f"tmux send-keys -t {name} -l {keys} \\; send-keys -t {name} Enter"
                              f" \\; wait-for {name}-{i}"], check=True)
    return (time.perf_counter() - t) / N


def ours(spec: str) -> float:
    text = f"host h = {spec}\ntmux.open @h as s\n@s > sleep 1\n" + "@s > true\n" * N
    code, steps = run_recipe(text)
    assert code == 0, "bench recipe failed"
    cmd = steps[2:]
    return (cmd[-1]["ended"] - cmd[0]["started"]) / N


if __name__ == "__main__":
    main()
