"""What every kind of host's reach half is: how a spec of it becomes a shell (`Kind.shell`),
and how a machine of it that a job brought up is released and described (the rest of `Kind`,
used by runtime/machines.py). The kinds themselves are the modules beside this one."""

from __future__ import annotations

from dataclasses import dataclass

OURS = ("rented", "started", "allocated")


class HostError(Exception):
    """A spec that names no reachable host; one line."""


@dataclass
class Machine:
    host: str
    kind: str
    ident: str
    how: str
    place: str = ""
    state: str = ""

    @property
    def ours(self) -> bool:
        return self.how in OURS


class Kind:
    """How one kind of host is reached, and its machines released and described."""

    def shell(self, rest: str, reconnect: float):
        """`SCHEME:REST` -> an ssh shell on it (remote/shell.py's SshShell)."""
        raise HostError(f"this kind of host cannot be reached from here ({rest})")

    def release(self, m: Machine) -> str:
        """End what bills (stop an instance, cancel an allocation); returns its state after."""
        raise NotImplementedError

    def describe(self, m: Machine) -> str:
        """One line: what it is and what it costs, e.g. `vast 123 (RTX 4090, $0.40/h)`."""
        return f"{m.kind} {m.ident}"

    def current(self, m: Machine) -> str | None:
        """What it is now, asked of its provider: running, stopped, gone ... (None: cannot tell)."""
        return None

    def lost(self, m: Machine) -> tuple[str, str] | None:
        """(its state, why in words) when `m` no longer runs for the job by no doing of the
        job's (outbid, preempted, cancelled from outside ...), so that a job with recover= may
        replace it; None while it runs, or when that cannot be told."""
        return None

    def discard(self, m: Machine) -> str:
        """End what is left of a lost machine for good; returns what was done ("destroyed")."""
        return self.release(m)

    def spent(self, m: Machine) -> float:
        """USD spent on it so far, as far as is known (0 where nothing is priced)."""
        return 0.0

    def gone(self, m: Machine) -> bool:
        """Whether it no longer exists (destroyed by hand or by its cloud): nothing of it bills.
        When that cannot be known, it is taken to be there."""
        return self.current(m) == "gone"

    def release_hint(self, m: Machine) -> str:
        """The command a user runs to release it by hand."""
        return f"train {m.kind} stop {m.ident}"

    def released_note(self, m: Machine, state: str) -> str:
        """What still bills once it is released as `state`, and how to end that ("" if nothing)."""
        return ""
