"""The autostop watcher: a small program left on a rented machine that ends the machine through
the cloud's API once nothing is using it, so a machine whose owner went away (train or ow
killed, a laptop asleep, a lost network) does not bill on.

"Using it" is a heartbeat file that the running train or ow touches (a thread here), and the
tmux sessions of the job (a session whose name has JOB among its `-`-separated words) with a
command still running. A job's machines are stopped (their disk stays); ow's are destroyed
(they are disposable). The machine calls the API with its own key, which the cloud gives it
and which may act on that machine only (Vast's CONTAINER_API_KEY, RunPod's pod-scoped
RUNPOD_API_KEY), read from PID 1's environment (where the cloud puts it) else its own: the
user's key never goes to the machine.

Used by runtime/clouds.py (jobs) and runtime/ow.py; speaks only the `Provider` interface
(`self_stop`, `self_destroy`).
"""

from __future__ import annotations

import json
import shlex
import threading
from trainsh.remote.shell import ShellError, SshShell

FOLDER = ".cache/trainsh/autostop"  # under the machine's $HOME

# Runs on the instance with python3 and the standard library. Arguments: JOB IDLE METHOD URL
# BODY KEY_NAMES ALIVE [VERB [SESSIONS]]; SESSIONS "all": every tmux session counts, not only
# the job's.
WATCHER = r'''
import json, os, subprocess, sys, time, urllib.request
job, idle, method, url, body, names, alive = sys.argv[1:8]
verb = sys.argv[8] if len(sys.argv) > 8 else "stopping"
every = len(sys.argv) > 9 and sys.argv[9] == "all"
idle, names = float(idle), names.split(",")

def key():
    env = {}
    try:
        for item in open("/proc/1/environ", "rb").read().decode(errors="replace").split("\0"):
            k, _, v = item.partition("=")
            env[k] = v
    except OSError:
        pass
    for source in (env, os.environ):
        for k in names:
            if source.get(k):
                return source[k]
    return None

def busy():
    r = subprocess.run(["tmux", "list-panes", "-a", "-F", "#{session_name} #{pane_pid}"],
                       capture_output=True, text=True)
    panes = set()
    for line in r.stdout.splitlines():
        session, _, pid = line.rpartition(" ")
        if (every or job in session.split("-")) and pid.isdigit():
            panes.add(int(pid))
    for d in os.listdir("/proc") if panes else ():
        try:
            if d.isdigit() and int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) in panes:
                return True
        except (OSError, IndexError, ValueError):
            pass
    return False

poll = max(0.5, min(idle / 4, 30.0))
last = time.time()
while True:
    time.sleep(poll)
    now = time.time()
    if busy():
        last = now
    try:
        last = max(last, os.path.getmtime(alive))
    except OSError:
        pass
    if now - last < idle:
        continue
    k = key()
    if not k:
        print("no instance key (" + ",".join(names) + "): cannot end this machine", flush=True)
        sys.exit(1)
    req = urllib.request.Request(url, data=body.encode(), method=method,
                                 headers={"Authorization": "Bearer " + k,
                                          "Content-Type": "application/json"})
    print(time.strftime("%F %T") + f" idle for {idle:.0f}s: {verb}", flush=True)
    try:
        reply = urllib.request.urlopen(req, timeout=30).read()
        if b'"errors"' in reply:  # a GraphQL API answers 200 with its errors
            print(time.strftime("%F %T") + " refused: " + reply.decode(errors="replace")[:300], flush=True)
    except Exception as e:
        print(time.strftime("%F %T") + f" {verb} failed: {e}", flush=True)
    last = time.time()  # ending the machine ends this process; if not, try again a period later
'''


def leave(shell, provider, iid: str, job: str, idle: float, destroy: bool = False,
          all_sessions: bool = False) -> str | None:
    """Start the watcher for `job` on the instance (once: a watcher of the job already running
    is kept) and touch its heartbeat. `all_sessions`: a command running in any tmux session
    keeps the machine (the whole machine is the job's). None when it watches, else why not."""
    how = getattr(provider, "self_destroy" if destroy else "self_stop", None)
    if how is None:
        return "is not available for this cloud"
    method, url, body, key_names = how(iid)
    alive = f"{shell.home()}/{FOLDER}/{job}.alive"
    args = shlex.join([job, str(idle), method, url, json.dumps(body), ",".join(key_names), alive,
                       "destroying" if destroy else "stopping", "all" if all_sessions else "job"])
    folder = f"$HOME/{FOLDER}"
    script = (f'command -v python3 >/dev/null || exit 7; mkdir -p {folder} && cd {folder} && '
              f'cat > watch.py && touch {job}.alive && '
              f'if [ -f {job}.pid ] && kill -0 "$(cat {job}.pid)" 2>/dev/null; then exit 0; fi; '
              f'nohup setsid python3 watch.py {args} >> {job}.log 2>&1 < /dev/null & '
              f'echo $! > {job}.pid')
    try:
        # never waits a minute on a machine that went away meanwhile
        r = SshShell(shell.spec, reconnect=0).run(["sh", "-c", script], input=WATCHER, timeout=60)
    except ShellError as e:
        return f"could not be set up: {e}"
    if r.returncode != 0:
        return "could not be set up (" + ("no python3 there" if r.returncode == 7 else
                                          (r.stderr.strip() or f"exit {r.returncode}")) + ")"
    return None


def alive_path(shell, job: str) -> str:
    return f"{shell.home()}/{FOLDER}/{job}.alive"


def heartbeat(shell, job: str, idle: float, name: str = "") -> threading.Event:
    """Touch the job's heartbeat file on the machine while this process runs (a thread); set
    the event it returns to stop. A dead process stops touching it by itself."""
    stop = threading.Event()
    path = alive_path(shell, job)
    quiet = SshShell(shell.spec, reconnect=0)  # rides on the shared connection; never waits on a dead one
    every = max(0.5, min(idle / 3, 60.0))

    def beat():
        while not stop.wait(every):
            try:
                quiet.run(["touch", path], timeout=20)
            except (ShellError, OSError):
                pass

    threading.Thread(target=beat, daemon=True, name=f"heartbeat-{name or job}").start()
    return stop


def remove(shell, job: str) -> bool:
    """End the job's watcher on the machine (a machine the user keeps); whether that worked."""
    folder = f"$HOME/{FOLDER}"
    script = (f'cd {folder} 2>/dev/null || exit 0; [ -f {job}.pid ] || exit 0; '
              f'kill "$(cat {job}.pid)" 2>/dev/null; rm -f {job}.pid {job}.alive')
    try:
        return SshShell(shell.spec, reconnect=0).run(["sh", "-c", script], timeout=30).returncode == 0
    except ShellError:
        return False
