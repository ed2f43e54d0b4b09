"""`train recipe attach`: a local tmux session with one pane per session of a job.

Each pane runs a tmux client of that session: `tmux attach` here for local sessions, and
`ssh -t HOST tmux attach` over the shared connection for ssh and cloud hosts. Clients are
read-only (and do not resize the job's windows) unless asked for `rw`. Run again, it re-uses
the view and adds panes for sessions opened since.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from trainsh.runtime.context import local_tmux_socket
from trainsh.remote.sshspec import ssh_argv
from trainsh.runtime.feed import SessionOpened
from trainsh.runtime.reach import ssh_shell


def view_name(job_id: str) -> str:
    return f"trainsh-view-{job_id}"


def _tmux(*args: str) -> list[str]:
    sock = local_tmux_socket()
    return ["tmux", *(["-S", sock] if sock else []), *args]


def client_command(spec: str, real: str, rw: bool = False) -> str:
    """The shell command of one pane: a client of session `real` on the host `spec`."""
    flags = [] if rw else ["-f", "read-only,ignore-size"]
    if spec == "local":
        return "env -u TMUX " + shlex.join(_tmux("attach", *flags, "-t", real))
    remote = shlex.join(["tmux", "attach", *flags, "-t", real])
    return shlex.join(ssh_argv(ssh_shell(spec).spec, remote, tty=True, batch=False))


def open_sessions(journal, job) -> list[tuple[str, str, str]]:
    """(name, host spec, real tmux name) of the job's sessions that are open."""
    out = []
    for s in journal.sessions(job.id):
        if s["status"] != "open":
            continue
        spec = "local" if s["host"] == "local" else job.hosts.get(s["host"], "local")
        out.append((s["name"], spec, s["real"]))
    return out


def ensure_view(journal, job, rw: bool = False) -> tuple[str, int]:
    """Create or complete the view session of `job`; returns its name and how many panes it
    gained. Each pane's title (and option @trainsh_session) is its session's name."""
    name = view_name(job.id)
    sessions = open_sessions(journal, job)
    have = subprocess.run(_tmux("has-session", "-t", f"={name}"), capture_output=True).returncode == 0
    shown: set[str] = set()
    if have:
        r = subprocess.run(_tmux("list-panes", "-s", "-t", f"={name}", "-F", "#{@trainsh_session}"),
                           capture_output=True, text=True)
        shown = set(r.stdout.split())
    added = 0
    for sname, spec, real in sessions:
        if sname in shown:
            continue
        cmd = client_command(spec, real, rw)
        if not have:
            r = subprocess.run(_tmux("new-session", "-d", "-s", name, "-x", "200", "-y", "50",
                                     "-P", "-F", "#{pane_id}", cmd), capture_output=True, text=True)
            have = True
            subprocess.run(_tmux("set-option", "-t", f"={name}", "pane-border-status", "top"),
                           capture_output=True)
        else:
            r = subprocess.run(_tmux("split-window", "-d", "-t", f"={name}:", "-P", "-F",
                                     "#{pane_id}", cmd), capture_output=True, text=True)
            subprocess.run(_tmux("select-layout", "-t", f"={name}:", "tiled"), capture_output=True)
        if r.returncode != 0:
            raise OSError(r.stderr.strip() or "tmux could not open the view")
        pane = r.stdout.strip()
        subprocess.run(_tmux("set-option", "-p", "-t", pane, "@trainsh_session", sname), capture_output=True)
        subprocess.run(_tmux("select-pane", "-t", pane, "-T", sname), capture_output=True)
        added += 1
    return name, added


def attach_line(name: str) -> str:
    return shlex.join(_tmux("attach", "-t", name))


def go(name: str) -> int:
    """Put this terminal on the view: switch to it inside the same tmux, else attach."""
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    inside = os.environ.get("TMUX", "").split(",")[0]
    sock = local_tmux_socket()
    if inside and (sock is None or os.path.realpath(inside) == os.path.realpath(sock)):
        return subprocess.call(_tmux("switch-client", "-t", name))
    return subprocess.call(_tmux("attach", "-t", name), env=env)


def follower(journal, job, console):
    """A feed subscriber for `recipe run --attach`: the view gains a pane as each session opens;
    the first time, it opens in a new window of the tmux this run is in, or says how to."""
    state = {"told": False}

    def hear(e) -> None:
        if not isinstance(e, SessionOpened):
            return
        fresh = journal.job(job.id)
        name, _ = ensure_view(journal, fresh)
        if state["told"]:
            return
        state["told"] = True
        if os.environ.get("TMUX"):
            subprocess.run(["tmux", "new-window", "-d", "-n", f"trainsh-{job.id}",
                            "env -u TMUX " + attach_line(name)], capture_output=True)
            console.info(f"sessions of job {job.id}: tmux window trainsh-{job.id}")
        else:
            console.info(f"watch the sessions: {attach_line(name)}")

    return hear
