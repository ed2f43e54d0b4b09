"""Machines a job brought up and must not leave billing by accident: rented or started cloud
instances, Slurm allocations. One lifecycle for all of them:

- each is journaled the moment it exists (`Machines.add`), with how the job came by it:
  `rented`/`started`/`allocated` (the job's to release) or `found` (the user's own, running
  before the job: never the job's to stop);
- a failed job releases every machine it brought up, unless `--keep-hosts`, and says what
  each became (`on_failed`);
- an interrupted job (Ctrl-C, SIGTERM, a killed train) leaves them running, so the work goes
  on and `resume` finds them again, and says what still bills and how to stop it
  (`on_interrupted`; `train recipe status` tells the same after a kill -9);
- a job that ends names what is still up (`on_done`).

Before any of these, `look` asks each kind whether its machine still exists: one destroyed
outside the job is said to be gone (nothing bills), never "still running" or "could not be
released", and its sessions and folders are not waited for.

Each kind of host knows how to release, describe and name the command that releases its
machines: its `Kind` in runtime/reach/ (REACH["vast"], REACH["slurm"]).
"""

from __future__ import annotations

from trainsh.runtime.reach import REACH
from trainsh.runtime.reach.base import Kind, Machine
from trainsh.cloud.provider import provider
from trainsh.runtime.feed import MachineState
from trainsh.runtime.holds import Holds

SCHEMA = """
CREATE TABLE IF NOT EXISTS machines (
    job_id TEXT NOT NULL,
    host TEXT NOT NULL,      -- the recipe's host name it backs
    kind TEXT NOT NULL,      -- vast | runpod | slurm ...
    ident TEXT NOT NULL,     -- instance id, Slurm job id
    how TEXT NOT NULL,       -- rented | started | allocated | found
    place TEXT NOT NULL DEFAULT '',  -- where it lives beyond the kind (a login host for Slurm)
    state TEXT NOT NULL DEFAULT '',  -- last known: running, stopped, released ...
    PRIMARY KEY (job_id, host)
);
"""


def kind_of(m: Machine) -> Kind:
    """How machine `m` is released and described (its kind's reach half)."""
    return REACH.get(m.kind) or Kind()


class Machines:
    """The machines of one job, as journaled."""

    def __init__(self, journal, job_id: str):
        self.journal = journal
        self.job_id = job_id
        self._looked: set[str] = set()  # hosts whose machine `look` asked about
        journal.db.executescript(SCHEMA)

    def add(self, m: Machine) -> None:
        self.journal.db.execute(
            "INSERT OR REPLACE INTO machines (job_id, host, kind, ident, how, place, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.job_id, m.host, m.kind, m.ident, m.how, m.place, m.state))
        self._tell(m)

    def set_state(self, host: str, state: str) -> None:
        self.journal.db.execute("UPDATE machines SET state=? WHERE job_id=? AND host=?",
                                (state, self.job_id, host))
        m = self.get(host)
        if m is not None:
            self._tell(m)

    def _tell(self, m: Machine) -> None:
        """Each machine's state as journaled is told to the job's watchers (the live view's
        machines panel), as the journal tells of steps and sessions."""
        tell = getattr(self.journal, "watch", None)
        if tell is not None and m.state:
            tell(MachineState(m.host, m.kind, m.ident, m.state))

    def get(self, host: str) -> Machine | None:
        row = self.journal.db.execute("SELECT * FROM machines WHERE job_id=? AND host=?",
                                      (self.job_id, host)).fetchone()
        return _machine(row) if row else None

    def all(self) -> list[Machine]:
        rows = self.journal.db.execute("SELECT * FROM machines WHERE job_id=? ORDER BY rowid",
                                       (self.job_id,)).fetchall()
        return [_machine(r) for r in rows]

    def live(self) -> list[Machine]:
        return [m for m in self.all() if m.state not in ("released", "stopped", "gone")]

    # ---- the ends of a job
    def look(self, console) -> list[Machine]:
        """The machines still up, once each kind has said whether each still exists (once per
        machine): one destroyed meanwhile is journaled gone and said so, not called running or
        released (nothing of it bills any more)."""
        for m in self.live():
            if m.host in self._looked:
                continue
            self._looked.add(m.host)
            kind = kind_of(m)
            try:
                gone = kind.gone(m)
            except Exception:  # the cloud cannot tell now: it is taken to be there
                gone = False
            if gone:
                self.set_state(m.host, "gone")
                console.info(f"{kind.describe(m)} is gone (destroyed outside this job): nothing bills")
        return self.live()

    def on_failed(self, console, keep: bool = False) -> None:
        for m in self.look(console):
            kind = kind_of(m)
            if not m.ours:
                console.info(f"{kind.describe(m)} was running before this job: left running")
                continue
            if keep:
                console.info(f"{kind.describe(m)} kept (--keep-hosts); stop it with: {kind.release_hint(m)}")
                continue
            try:
                state = kind.release(m)
            except Exception as e:  # say what is left billing; never hide it behind a traceback
                console.warn(f"{kind.describe(m)} could NOT be released ({e}): it may still "
                             f"bill; stop it with: {kind.release_hint(m)}")
                continue
            self.set_state(m.host, state)
            if state == "gone":  # destroyed just before the job could stop it: nothing bills
                console.info(f"{kind.describe(m)} is gone (destroyed outside this job): nothing bills")
            else:
                console.info(f"{kind.describe(m)}: {state} (the job failed){kind.released_note(m, state)}")

    def on_interrupted(self, console) -> None:
        for m in self.look(console):
            kind = kind_of(m)
            console.warn(f"{kind.describe(m)} is still running and billing (resume goes on "
                         f"there); stop it with: {kind.release_hint(m)}")
        for line in self.rents_in_flight():
            console.warn(line)

    @classmethod
    def reading(cls, journal, job_id: str) -> Machines:
        """The machines of a job, from a journal that may be read-only."""
        self = cls.__new__(cls)
        self.journal, self.job_id = journal, job_id
        return self

    def rents_in_flight(self, look: bool = False) -> list[str]:
        """A line for each rent of the job that was sent but whose machine the job never saw:
        the cloud may have made it (and it bills). With `look`, its label is looked up once
        and what the cloud made is named."""
        lines = []
        for r in Holds(self.journal).of_holder(f"job:{self.job_id}"):
            if r.state != "sending":
                continue
            made = []
            if look:
                try:
                    made = [i for i in provider(r.cloud).find_by_label(r.label) if i.id not in r.before]
                except Exception:  # noqa: BLE001 - cannot look: say what may be there
                    made = []
            if made:
                lines += [f"{r.cloud} {i.id} was rented as the job was cut short (label {r.label}): "
                          f"it bills; train recipe resume {self.job_id} takes it, or end it with: "
                          f"train {r.cloud} destroy {i.id}" for i in made]
            else:
                lines.append(f"a {r.cloud} rent was cut short (label {r.label}): the cloud may have "
                             f"made the machine, and it may bill; train recipe resume {self.job_id} "
                             f"takes it, or find it with: train {r.cloud} list")
        return lines

    def on_done(self, console, release: bool = False, keep: bool = False) -> None:
        """With `release` (`train exec`), what the job rented or started is released unless
        `keep` (--keep-hosts): an exec is over when it ends, and nothing should bill after it."""
        for m in self.look(console):
            kind = kind_of(m)
            if release and m.ours and not keep:
                try:
                    state = kind.release(m)
                except Exception as e:  # noqa: BLE001 - say what is left billing
                    console.warn(f"{kind.describe(m)} could NOT be released ({e}): it may still "
                                 f"bill; stop it with: {kind.release_hint(m)}")
                    continue
                self.set_state(m.host, state)
                if state == "gone":
                    console.info(f"{kind.describe(m)} is gone (destroyed outside this job): nothing bills")
                else:
                    console.info(f"{kind.describe(m)}: {state} (this exec {m.how} it; --keep-hosts keeps "
                                 f"it){kind.released_note(m, state)}")
                continue
            console.info(f"{kind.describe(m)} is still running; stop it with: {kind.release_hint(m)}")


def _machine(row) -> Machine:
    return Machine(row["host"], row["kind"], row["ident"], row["how"], row["place"], row["state"])
