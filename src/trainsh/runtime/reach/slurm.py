"""`slurm:LOGIN?...`, reached: outside a job its login host (train exec, transfer, host);
inside one an allocation (runtime/allocations.py), released by cancelling it."""

from __future__ import annotations

import shlex
import time

from trainsh.cloud import slurm
from trainsh.remote.shell import LocalShell, Shell
from trainsh.runtime.reach import ssh
from trainsh.runtime.reach.base import HostError, Kind, Machine


def login_shell(login: str) -> Shell:
    """The shell of a login host spec (`local`, an ssh spec, a hosts.toml name)."""
    return LocalShell() if login == "local" else ssh.shell(login)


def _what(m: Machine) -> str:
    return f"slurm job {m.ident} on {m.place} (@{m.host})"


# How an allocation that ended while the job needed it ended, in words, for the end states
# that make it lost (Slurm's "Job State Codes", job_state_codes.html, and squeue(1) "JOB STATE
# CODES"): each is the cluster's doing or someone else's, and a new allocation asked for the
# same way may well run to the end. Not lost, and so never replaced: COMPLETED, FAILED and
# OUT_OF_MEMORY (what ran in it ended it: a new one would end the same way), DEADLINE (the
# --deadline given in extra= ends a new one too), REVOKED (a federation runs the job on a
# sibling cluster), SPECIAL_EXIT (a site's epilog held it on purpose). An allocation the job
# released itself is never asked about.
LOST = {"CANCELLED": "cancelled outside the job", "NODE_FAIL": "a node failed",
        "PREEMPTED": "preempted", "BOOT_FAIL": "its nodes failed to boot",
        "TIMEOUT": "its time limit ran out", "GONE": "ended; Slurm no longer knows how"}
SETTLE = 15.0  # how long a COMPLETING allocation is given to say how it ended (KillWait and more)


class SlurmKind(Kind):
    def shell(self, rest: str, reconnect: float):
        login = rest.rpartition("?")[0] if "?" in rest else rest
        if login.strip() == "local":
            raise HostError("slurm:local? is this machine: use local")
        return ssh.shell(login.strip(), reconnect=reconnect)

    def release(self, m: Machine) -> str:
        slurm.cancel(login_shell(m.place), m.place, m.ident)
        return "released"

    def current(self, m: Machine) -> str | None:
        try:
            return slurm.state(login_shell(m.place), m.place, m.ident).state.lower()
        except Exception:  # noqa: BLE001 - cannot tell
            return None

    def gone(self, m: Machine) -> bool:
        # an ended allocation holds nothing: there is nothing left to cancel
        state = self.current(m)
        return state is not None and slurm.State(state.upper()).ended and state != "completing"

    def lost(self, m: Machine) -> tuple[str, str] | None:
        # a cancelled allocation is COMPLETING for a few seconds (its processes are being
        # killed) before Slurm says how it ended: that is waited for
        deadline = time.monotonic() + SETTLE
        state = self.current(m)
        while state == "completing" and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.current(m)
        if state is None or state.upper() not in LOST:
            return None
        return state, LOST[state.upper()]

    def discard(self, m: Machine) -> str:
        if self.gone(m):  # (scancel refuses a job that has ended)
            return "has ended: nothing of it is left to cancel"
        slurm.cancel(login_shell(m.place), m.place, m.ident)
        return "cancelled"

    def describe(self, m: Machine) -> str:
        try:
            s = slurm.state(login_shell(m.place), m.place, m.ident)
        except Exception:  # describing must not fail the report it is part of
            return _what(m)
        if s.ended:
            return f"{_what(m)}, ended" + ("" if s.state == "GONE" else f" ({s.state.lower()})")
        bits = [s.state.lower()] + [b for b in (s.nodes and f"nodes {s.nodes}",
                                                s.partition and f"partition {s.partition}",
                                                s.time_left and f"{s.time_left} left") if b]
        return f"{_what(m)}: {', '.join(bits)}"

    def release_hint(self, m: Machine) -> str:
        return f"train slurm cancel {shlex.quote(m.place)} {m.ident}"


KIND = SlurmKind()
