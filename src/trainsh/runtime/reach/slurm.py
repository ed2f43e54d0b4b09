"""`slurm:LOGIN?...`, reached: outside a job its login host (train exec, transfer, host);
inside one an allocation (runtime/allocations.py), released by cancelling it."""

from __future__ import annotations

import shlex

from trainsh.cloud import slurm
from trainsh.remote.shell import LocalShell, Shell
from trainsh.runtime.reach import ssh
from trainsh.runtime.reach.base import HostError, Kind, Machine


def login_shell(login: str) -> Shell:
    """The shell of a login host spec (`local`, an ssh spec, a hosts.toml name)."""
    return LocalShell() if login == "local" else ssh.shell(login)


def _what(m: Machine) -> str:
    return f"slurm job {m.ident} on {m.place} (@{m.host})"


class SlurmKind(Kind):
    def shell(self, rest: str, reconnect: float):
        login = rest.rpartition("?")[0] if "?" in rest else rest
        if login.strip() == "local":
            raise HostError("slurm:local? is this machine: use local")
        return ssh.shell(login.strip(), reconnect=reconnect)

    def release(self, m: Machine) -> str:
        slurm.cancel(login_shell(m.place), m.place, m.ident)
        return "released"

    def describe(self, m: Machine) -> str:
        try:
            s = slurm.state(login_shell(m.place), m.place, m.ident)
        except Exception:  # describing must not fail the report it is part of
            return _what(m)
        if s.state == "GONE":
            return f"{_what(m)}, ended"
        bits = [s.state.lower()] + [b for b in (s.nodes and f"nodes {s.nodes}",
                                                s.partition and f"partition {s.partition}",
                                                s.time_left and f"{s.time_left} left") if b]
        return f"{_what(m)}: {', '.join(bits)}"

    def release_hint(self, m: Machine) -> str:
        return f"train slurm cancel {shlex.quote(m.place)} {m.ident}"


KIND = SlurmKind()
