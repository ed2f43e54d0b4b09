"""Who holds which cloud machine, and rents that may have made one nobody knows of yet.

trainsh rents for three kinds of holder: a job (its pick steps), `ow`, and `train CLOUD
create`. Each rent is written down here *before* the request is sent (the `rents` table of the
job journal, keyed by the rent's label), and what it made is added once the cloud answers. So
after any failure or signal once a request may have reached the cloud, the label is looked up
again (`settle`) and what the cloud made is found, then destroyed or named by the caller; and
after a kill -9, `train recipe status` still names the rent.

A machine is *held* (`Holds.holder`) by
- a job that journaled it (its `machines` rows) while the job runs or can be resumed;
- a rent of a job that runs or can be resumed, found by its label (`trainsh-JOB-HOST`);
- an `ow` run while it lives, and a machine `ow` was told to keep (labels `ow-...`);
- a `train CLOUD create` while it runs.
A held machine is never picked, reused or stopped by another job.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from trainsh.cloud.provider import NoCapacity, ProviderError, Unavailable
from trainsh.runtime.journal import process_alive, process_start

SCHEMA = """
CREATE TABLE IF NOT EXISTS rents (
    label TEXT PRIMARY KEY,  -- unique per rent: how the machine is found when the answer is lost
    cloud TEXT NOT NULL,
    holder TEXT NOT NULL,    -- job:ID | ow | create
    pid INTEGER,             -- the process that sent it, and when that process started
    pid_start TEXT,
    ident TEXT NOT NULL DEFAULT '',   -- the instance it made, once known
    state TEXT NOT NULL,     -- sending | rented | none | destroyed | kept | ended
    before TEXT NOT NULL DEFAULT '[]',-- ids that carried the label before (a user's own label)
    created REAL NOT NULL
);
"""

LIVE_JOB = ("running", "interrupted")
# Machine states a job's row can have once nothing of it bills any more (or is the job's).
DONE_STATES = ("released", "gone")
# How long a lost answer's label is looked up: the cloud's list lags its creates by seconds.
SETTLE_SECONDS = 20.0


@dataclass
class Rent:
    label: str
    cloud: str
    holder: str
    pid: int | None
    pid_start: str | None
    ident: str
    state: str
    before: list
    created: float

    def alive(self) -> bool:
        """Whether the process that sent it still runs (the same process, not a reused pid)."""
        return process_alive(self.pid, self.pid_start)


class Holds:
    """The rents ledger and the question "whose is this machine?", over one journal."""

    def __init__(self, journal):
        self.journal = journal
        self.db = journal.db
        try:
            self.db.executescript(SCHEMA)
        except Exception:  # noqa: BLE001 - a read-only journal: it reads as it is
            pass

    # ---- the ledger
    def begin(self, cloud: str, label: str, holder: str, before=()) -> None:
        """A rent is about to be sent (journaled first, so no signal can lose it)."""
        self.db.execute(
            "INSERT OR REPLACE INTO rents (label, cloud, holder, pid, pid_start, ident, state, before,"
            " created) VALUES (?,?,?,?,?,?,?,?,?)",
            (label, cloud, holder, os.getpid(), process_start(os.getpid()), "", "sending",
             json.dumps(sorted(before)), time.time()))

    def set(self, label: str, *, state: str, ident: str | None = None) -> None:
        if ident is None:
            self.db.execute("UPDATE rents SET state=? WHERE label=?", (state, label))
        else:
            self.db.execute("UPDATE rents SET state=?, ident=? WHERE label=?", (state, ident, label))

    def rent(self, label: str) -> Rent | None:
        row = self._rows("WHERE label=?", (label,))
        return row[0] if row else None

    def of_cloud(self, cloud: str) -> list[Rent]:
        return self._rows("WHERE cloud=? ORDER BY created", (cloud,))

    def of_holder(self, holder: str) -> list[Rent]:
        return self._rows("WHERE holder=? ORDER BY created", (holder,))

    def _rows(self, where: str, args: tuple) -> list[Rent]:
        try:
            rows = self.db.execute(f"SELECT * FROM rents {where}", args).fetchall()
        except Exception:  # noqa: BLE001 - a journal from before rents were kept
            return []
        return [Rent(r["label"], r["cloud"], r["holder"], r["pid"], r["pid_start"], r["ident"],
                     r["state"], json.loads(r["before"] or "[]"), r["created"]) for r in rows]

    def orphans(self, cloud: str) -> list[Rent]:
        """Rents of `ow` or `train CLOUD create` whose process was killed before it could end
        them or hear back: what they made bills and nobody holds it (an ow run that ended,
        kept or was told of its machine has moved its row on)."""
        rows = self._rows("WHERE cloud=? AND holder IN ('ow', 'create') AND state IN ('sending', 'rented')"
                          " ORDER BY created", (cloud,))
        return [r for r in rows if (r.state == "sending" or r.holder == "ow") and not r.alive()]

    def made_by(self, p, rent: Rent, insts=None) -> list:
        """The instances `rent` made: by id once known, else by its label (one lookup)."""
        insts = p.list() if insts is None else insts
        if rent.ident:
            return [i for i in insts if i.id == rent.ident]
        return [i for i in insts if i.label == rent.label and i.id not in rent.before]

    # ---- whose is it?
    def holders(self, cloud: str, me: str | None = None) -> dict[str, str]:
        """Every machine of `cloud` someone other than holder `me` holds: {key: who}, where a
        key is an instance id or `label:LABEL` (a rent whose id is not known yet)."""
        jobs = {}

        def job_live(job_id: str) -> bool:
            if job_id not in jobs:
                job = self.journal.job(job_id)
                jobs[job_id] = bool(job and job.shown_status in LIVE_JOB)
            return jobs[job_id]

        held: dict[str, str] = {}
        try:
            rows = self.db.execute("SELECT job_id, ident, state FROM machines WHERE kind=?",
                                   (cloud,)).fetchall()
        except Exception:  # noqa: BLE001 - no machines table yet
            rows = []
        for r in rows:
            if f"job:{r['job_id']}" != me and r["state"] not in DONE_STATES and job_live(r["job_id"]):
                held[r["ident"]] = f"job {r['job_id']}"
        for rent in self._rows("WHERE cloud=? AND state IN ('sending', 'rented', 'kept')", (cloud,)):
            if rent.holder == me:
                continue
            if rent.holder.startswith("job:"):
                live = job_live(rent.holder[4:])
                who = f"job {rent.holder[4:]}"
            elif rent.holder.startswith("ow"):
                live = rent.state == "kept" or rent.alive()
                who = "ow (kept with --no-terminate)" if rent.state == "kept" else f"ow (pid {rent.pid})"
            else:
                live = rent.state == "sending" and rent.alive()
                who = f"train {cloud} create (pid {rent.pid})"
            if live:
                held[rent.ident or f"label:{rent.label}"] = who
        return held

    def holder(self, inst, me: str | None = None, held: dict[str, str] | None = None) -> str | None:
        """Who other than `me` holds instance `inst` (an Instance), or None."""
        if held is None:
            held = self.holders(inst.provider, me)
        who = held.get(inst.id) or (held.get(f"label:{inst.label}") if inst.label else None)
        if who:
            return who
        label = inst.label or ""
        if label.startswith("ow-"):
            return "ow"
        if label.startswith("trainsh-"):  # a job's rent from before the ledger, or not yet in it
            job_id = label.split("-")[1] if label.count("-") >= 2 else ""
            job = self.journal.job(job_id) if job_id else None
            if job and f"job:{job.id}" != me and job.shown_status in LIVE_JOB:
                return f"job {job.id}"
        return None


# ---- rents cut short ----------------------------------------------------------------------------

def settle(p, label: str, before=(), seconds: float = SETTLE_SECONDS, say=None) -> list:
    """The instances a rent under `label` made (not those that had the label `before`), looked
    up for up to `seconds` while the cloud has none yet: its list lags its creates. A lookup
    that fails is tried again until then; [] when nothing turned up."""
    deadline = time.monotonic() + seconds
    delay, told = 0.5, False
    while True:
        try:
            made = [i for i in p.find_by_label(label) if i.id not in set(before)]
        except Exception:  # noqa: BLE001 - the API is down too: try again until the deadline
            made = []
        if made or time.monotonic() + delay > deadline:
            return made
        if say and not told:
            say(f"looking for the {p.noun} the cut-short rent may have made (label {label})")
            told = True
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def unique_label(prefix: str) -> str:
    """A label no other rent has: `PREFIX-<random>`."""
    return f"{prefix}-{os.urandom(3).hex()}"


def rent(holds: Holds, p, offer_id: str, request, holder: str, say=None):
    """Rent a machine from `offer_id` for `holder`, journaled before the request is sent.

    A rent whose answer is lost or damaged (the provider's own lookup found nothing yet) is
    settled: what the cloud made under the label is the answer. A rent cut short by a signal
    (KeyboardInterrupt, or a BaseException such as the runner's Interrupted) is settled too and
    the signal raised again with `.made` (the instances found) for the caller to destroy or
    name; every error it raises carries `.made` once it has been settled ([] when nothing was
    made). A label the user chose may be on older machines: those are never the answer."""
    label = request.label
    if not request.existing and not label.startswith(("trainsh-", "ow-")):
        request.existing = tuple(i.id for i in p.find_by_label(label))
    holds.begin(p.name, label, holder, request.existing)
    try:
        inst = p.create(offer_id, request)
    except BaseException as e:
        if isinstance(e, (NoCapacity,)) or (isinstance(e, ProviderError)
                                            and not isinstance(e, Unavailable)):
            holds.set(label, state="none")  # refused: nothing was made
            e.made = []
            raise
        # (only a signal's wait is told: a failure's one line comes after it)
        made = settle(p, label, request.existing, say=None if isinstance(e, Exception) else say)
        if not made:
            holds.set(label, state="none" if isinstance(e, Exception) else "sending")
            e.made = []  # looked for, none (yet)
            raise
        holds.set(label, state="rented", ident=made[0].id)
        if isinstance(e, Exception):  # the answer was lost, the machine was made: it is the answer
            if say:
                say(f"the cloud's answer was lost ({e}), but it made {p.name} {made[0].id}: using it")
            return made[0]
        e.made = made
        raise
    holds.set(label, state="rented", ident=inst.id)
    return inst
