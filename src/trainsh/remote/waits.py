"""Waits that run on the host itself: a regex in a session's output, a file, a listening port.

Each wait is one process on the host (python3, standard library only) that watches the
condition every 20 ms and exits when it holds, when it never can (the command it reads ended
without printing the pattern), or at its timeout. It prints one JSON line with what happened.
No round trip per check, so a wait on a remote host costs one ssh command.

The checks run in a child of that process; the parent keeps the deadline (it kills the child,
so no pattern, however costly to match, outlasts it) and watches its stdin, which the caller
holds open: an end of file there means the caller is gone (killed, or its ssh session
dropped), and the wait ends with it. A wait may also name a claim file (one per session):
it writes its pid there, and ends when another wait has written its own, so a resumed job's
wait replaces one that a half-open connection left behind.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from trainsh.remote.shell import Shell

WAITER = r'''
import json, os, re, select, socket, sys, time
a = json.loads(sys.stdin.readline())
kind, timeout, tick = a["kind"], a["timeout"], 0.02
end = time.monotonic() + timeout
ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1b.")
def done(ok, **kw):
    kw["ok"] = ok
    print(json.dumps(kw)); sys.stdout.flush(); sys.exit(0 if ok else 1)
def listening(port):
    found = None
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        found = found or False
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                return True
    if found is None:  # no /proc: try to connect on loopback
        for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                with socket.socket(fam) as s:
                    s.settimeout(0.2)
                    if s.connect_ex((addr, port)) == 0:
                        return True
            except OSError:
                pass
    return False
rx = re.compile(a["pattern"]) if kind == "pattern" else None
claim, me = a.get("claim") and os.path.expanduser(a["claim"]), str(os.getpid())
def claimed():
    try:
        with open(claim) as f:
            return f.read() == me
    except OSError:
        return True  # (its folder is gone: nobody else can claim it either)
if claim:
    try:
        with open(claim + "." + me, "w") as f:
            f.write(me)
        os.replace(claim + "." + me, claim)
    except OSError:
        claim = None
alive_r, alive_w = os.pipe()
child = os.fork()
if child:
    os.close(alive_w)
    while True:
        left = end - time.monotonic()
        ready = select.select([0, alive_r], [], [], min(left, 1.0) if claim else left)[0] \
            if left > 0 else []
        if alive_r in ready:  # the child ended, its answer printed
            status = os.waitpid(child, 0)[1]
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
        gone = 0 in ready and not os.read(0, 4096)  # the caller is gone
        replaced = claim and not ready and not claimed()
        if gone or replaced or time.monotonic() >= end:
            os.kill(child, 9)
            os.waitpid(child, 0)
            if gone:
                os._exit(1)
            if replaced:
                done(False, reason="replaced", detail="another wait for this session took over")
            done(False, reason="timeout")
os.close(alive_r)
if kind == "file":
    path = os.path.expanduser(os.path.expandvars(a["path"]))  # $HOME and ~ as on the host
    while True:
        if os.path.exists(path):
            done(True, detail=path)
        time.sleep(tick)
if kind == "port":
    port = int(a["port"])
    while True:
        if listening(port):
            done(True, detail=str(port))
        time.sleep(tick)
if kind == "pattern":
    log, pos = os.path.expanduser(a["log"]), a["offset"]
    marker = b"\x1b]777;" + a["marker"].encode() + b"\x07" if a["marker"] else b""
    endmark = b"\x1b]778;" + a["marker"].encode() + b"\x07" if a["marker"] else b""
    seen, ended_at = b"", None
    rc_path = a.get("rc")
    found_marker = not marker
    buf = b""
    f = None
    while True:
        if ended_at is None and rc_path and os.path.exists(rc_path):
            ended_at = time.monotonic()
        if f is None:
            try:
                f = open(log, "rb"); f.seek(pos)
            except OSError:
                f = None
        chunk = f.read() if f else b""
        if chunk:
            seen = (seen + chunk)[-(len(endmark) + 65536):]
            buf += chunk
            if not found_marker:
                i = buf.find(marker)
                if i < 0:
                    buf = buf[-len(marker):]
                else:
                    buf, found_marker = buf[i + len(marker):], True
            if found_marker:
                *lines, buf = buf.split(b"\n")
                for line in lines + [buf]:
                    text = ANSI.sub(b"", line).decode("utf-8", "replace")
                    for part in text.split("\r"):
                        if rx.search(part):
                            done(True, detail=part.strip()[:500])
                buf = buf[-65536:]
        elif ended_at is not None and (endmark and endmark in seen or time.monotonic() - ended_at > 2):
            # The exit code is written before the output reaches the log; the end marker
            # comes after it. Only then is it sure the pattern never came.
            done(False, reason="ended", rc=open(rc_path).read().strip())
        if not chunk:
            time.sleep(tick)
done(False, reason="bad wait kind " + kind)
'''


@dataclass
class WaitOutcome:
    ok: bool
    reason: str = ""  # timeout | ended | error
    detail: str = ""
    rc: str = ""


def run_wait(shell: Shell, spec: dict, timeout: float) -> WaitOutcome:
    """Run a host-side wait; spec has kind and its arguments (see WAITER)."""
    python = sys.executable if shell.is_local() else "python3"
    args = dict(spec, timeout=timeout)
    # the arguments on stdin: a pattern or path may hold a secret, and argv is public (ps);
    # stdin stays open while we wait, so the waiter ends if we are gone
    r = shell.run([python, "-c", WAITER], input=json.dumps(args) + "\n", timeout=timeout + 30,
                  hold_stdin=True)
    line = (r.stdout.strip().splitlines() or [""])[-1]
    try:
        data = json.loads(line)
    except ValueError:
        err = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        if "python3" in err and ("not found" in err or "No such file" in err):
            err = "python3 is needed on the host for waits"
        return WaitOutcome(False, "error", err)
    return WaitOutcome(bool(data.get("ok")), data.get("reason", ""), data.get("detail", ""),
                       str(data.get("rc", "")))
