"""Two-way sync with unison over an ssh host (a real sshd on loopback), against raw unison.

- Initial sync of 5,000 small files: trainsh (prepare + sync) against raw unison with the same
  options over the same shared connection. Target <= 1.3.
- Live sync: a local edit seen on the host, median of 20 edits. Target < 1 s (a 2 s poll
  would average about 1 s plus the sync).
- `ow exec --existing ID --no-sync true` on a Vast fake machine against a raw `ssh` login
  running `true` on the same machine, median of 20 runs each, in turns. Target <= 1.5. Both
  ways ow is used are printed against it: successive calls (ow keeps its ssh connection for 5
  minutes, so only the first logs in) and a fresh connection every call (ow's connection
  closed before each run: a login each, as the raw ssh makes). The warm-up call leaves ow's
  remembered login for the machine (ow-endpoints.json), as any earlier call on it would.
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
import sshd  # noqa: E402
from _common import sandbox  # noqa: E402

FILES = 5000
ROUNDS = 4
EDITS = 20


def tree(root: str) -> None:
    for i in range(FILES):
        sub = os.path.join(root, f"d{i % 50}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i}.py"), "wb") as fh:
            fh.write(os.urandom(256))


def main() -> None:
    with sshd.running() as env, sandbox() as d:
        from trainsh.remote.shell import SshShell
        from trainsh.transfer.unison import LiveSync, Unison

        shell = SshShell(env.a.spec())
        shell.run(["true"], check=True)  # the shared connection
        src = os.path.join(d, "src")
        tree(src)
        raw, ours = [], []
        for r in range(ROUNDS):  # alternate which goes first: a warm cache favours neither
            for kind in (("raw", "ours") if r % 2 else ("ours", "raw")):
                u = Unison(src, shell, f"{env.a.home}/{kind}{r}")
                if kind == "raw":  # the same unison command line, its own fresh archives
                    u.prepare()
                    t = time.perf_counter()
                    subprocess.run(u.argv(), check=True, capture_output=True,
                                   env={**os.environ, "UNISON": os.path.join(d, f"rawarch{r}")})
                    raw.append(time.perf_counter() - t)
                else:
                    t = time.perf_counter()
                    u.prepare()
                    res = u.sync()
                    ours.append(time.perf_counter() - t)
                    assert res.transferred >= 50 and not res.failures, res  # 50 new folders
                u.close()
        ratio = min(ours) / min(raw)
        print(f"sync initial: {FILES} files: trainsh {min(ours):.2f} s, raw unison {min(raw):.2f} s, "
              f"ratio {ratio:.2f} (target <= 1.3) {'OK' if ratio <= 1.3 else 'OVER'}")

        u = Unison(src, shell, f"{env.a.home}/ours0")
        u.prepare()
        live = LiveSync(u)
        live.start()
        target = os.path.join(env.a.home, "ours0", "d0", "f0.py")
        lags = []
        try:
            for i in range(EDITS):
                body = f"edit {i}\n".encode()
                t = time.perf_counter()
                with open(os.path.join(src, "d0", "f0.py"), "wb") as fh:
                    fh.write(body)
                while True:
                    try:
                        with open(target, "rb") as fh:
                            if fh.read() == body:
                                break
                    except OSError:
                        pass
                    if time.perf_counter() - t > 10:
                        raise SystemExit(f"edit {i} not seen on the host within 10 s: {live.errors}")
                    time.sleep(0.002)
                lags.append(time.perf_counter() - t)
                time.sleep(0.1)
        finally:
            live.stop(final=False)
            u.close()
        med = statistics.median(lags)
        print(f"sync live: local edit seen on the host: median {med * 1000:.0f} ms, max "
              f"{max(lags) * 1000:.0f} ms over {EDITS} edits (target < 1000 ms) "
              f"{'OK' if med < 1 else 'OVER'}")


def ow_exec() -> None:
    """`ow exec --existing ID --no-sync true` vs a raw ssh login running `true`."""
    import glob

    from fakes.vast import FakeVast

    import trainsh

    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.dirname(trainsh.__file__)],
                   stdout=subprocess.DEVNULL, check=True)
    fake = FakeVast(start_delay=0)
    try:
        with sandbox() as d:
            from trainsh.settings import config

            os.environ["VAST_URL"], os.environ["VAST_API_KEY"] = fake.url, fake.key
            os.environ["TRAINSH_SSH_CONTROL_DIR"] = control = f"{d}/ctl"
            key = f"{d}/id"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
            fake.api("POST", "ssh/", {"ssh_key": open(key + ".pub").read()})
            config.set_value("ssh.key", key)
            iid = fake.rent("1002")
            port = fake.state()["instances"][iid]["direct_port"]
            raw = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                   "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={d}/kh", "-o",
                   "LogLevel=ERROR", "root@127.0.0.1", "true"]
            ow = [os.path.join(os.path.dirname(sys.executable), "ow"), "exec", "--provider", "vast",
                  "--existing", iid, "--no-sync", "true"]

            def close_masters():
                for sock in glob.glob(f"{control}/*"):
                    subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                                   capture_output=True)

            def timed(argv, cold):
                if cold:
                    close_masters()
                t = time.perf_counter()
                p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                if p.returncode:
                    raise SystemExit(f"{argv[0]} failed: {p.stderr.decode()[-300:]}")
                return time.perf_counter() - t

            timed(ow, True)  # the host key, tmux's first server start
            ours, warm, floor = [], [], []
            for _ in range(EDITS):
                ours.append(timed(ow, True))
                floor.append(timed(raw, False))
                warm.append(timed(ow, False))
            close_masters()
            o, w, f = (statistics.median(x) for x in (ours, warm, floor))
            for what, t in (("successive calls", w), ("a login each call", o)):
                ratio = t / f
                print(f"ow exec --existing --no-sync true, {what}: {t * 1000:.0f} ms; raw ssh login "
                      f"running true {f * 1000:.0f} ms; ratio {ratio:.2f} (target <= 1.5) "
                      f"{'OK' if ratio <= 1.5 else 'OVER'}")
    finally:
        for k in ("VAST_URL", "VAST_API_KEY", "TRAINSH_SSH_CONTROL_DIR"):
            os.environ.pop(k, None)
        fake.stop()


if __name__ == "__main__":
    main()
    ow_exec()
