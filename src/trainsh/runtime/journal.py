"""The job journal: one sqlite file in jobs/, written before and after every step.

It holds what a resume needs (the recipe text as run, variables, host map, sessions, each
step's status and the channel of a command in flight) and what `logs`, `status` and `jobs`
show. Values are masked before they are written: the journal never holds a secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainsh import masking
from trainsh.runtime.feed import SessionClosed, SessionOpened, StepEnded, StepSaid
from trainsh.settings import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    recipe_path TEXT NOT NULL,
    recipe_hash TEXT NOT NULL,
    recipe_text TEXT NOT NULL,
    cwd TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | done | failed | interrupted
    pid INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    variables TEXT NOT NULL,         -- json: --var overrides
    host_overrides TEXT NOT NULL,    -- json: --host overrides
    hosts TEXT NOT NULL DEFAULT '{}',-- json: host name -> resolved spec
    options TEXT NOT NULL DEFAULT '{}',
    error TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | done | failed | background | interrupted
    started REAL,
    ended REAL,
    exit_code INTEGER,
    detail TEXT NOT NULL DEFAULT '{}',
    log_path TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS sessions (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    real TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    status TEXT NOT NULL,            -- open | closed
    state TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, name)
);
-- A Python recipe's calls in the order the program made them (program/): what a resume
-- replays. `step` is the step the call ran as (none for a call that runs nothing, as job.now).
CREATE TABLE IF NOT EXISTS calls (
    job_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    step INTEGER,
    at TEXT NOT NULL,                -- file:line of the call in the program
    fingerprint TEXT NOT NULL,       -- its kind and arguments (a secret by its name)
    source TEXT NOT NULL,
    value TEXT,                      -- json: what it returned, for calls that run no step
    PRIMARY KEY (job_id, n)
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


@dataclass
class Job:
    id: str
    recipe_path: str
    recipe_hash: str
    recipe_text: str
    cwd: str
    status: str
    pid: int | None
    created: float
    updated: float
    variables: dict
    host_overrides: dict
    hosts: dict
    options: dict
    error: str | None

    @property
    def folder(self) -> Path:
        return paths.jobs_dir() / self.id  # (a child job's, JOB/1, inside its parent's)

    @property
    def tag(self) -> str:
        """The id as part of a name (a tmux session's): a child's JOB/1 as JOB-1."""
        return self.id.replace("/", "-")

    @property
    def parent(self) -> str | None:
        """The job whose job.parallel made this one (JOB of JOB/1), or None."""
        return self.id.rpartition("/")[0] or None

    def runner_alive(self) -> bool:
        return process_alive(self.pid, self.options.get("runner_start"))

    @property
    def shown_status(self) -> str:
        """`running` only while its runner lives; a killed runner leaves an interrupted job."""
        if self.status == "running" and not self.runner_alive():
            return "interrupted"
        return self.status


class JobHeld(Exception):
    """Another live process runs the job, or it has finished: it cannot be taken."""

    def __init__(self, job: Job):
        how = "resumed" if job.options.get("runner") == "resume" else "run"
        if job.status == "done":
            super().__init__(f"job {job.id} finished; nothing to resume")
        else:
            super().__init__(f"job {job.id} is being {how} by pid {job.pid}")
        self.job = job


def process_alive(pid: int | None, started: str | None) -> bool:
    """Whether process `pid` still runs, and is the one that started at `started` (a pid can be
    reused; None: not known, the pid alone decides)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return started is None or process_start(pid) == started


def process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from /proc), or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _dumps(value: Any) -> str:
    return masking.mask(json.dumps(value, sort_keys=True))


class Journal:
    # Told of each step's end and each session opened or closed (runtime/feed.py events),
    # after the journal holds it: how the console and the live view learn of them.
    watch = None

    def _tell(self, event) -> None:
        if self.watch is not None:
            self.watch(event)

    def __init__(self, path: Path | None = None):
        self.path = path or paths.ensure(paths.jobs_dir()) / "journal.db"
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    @classmethod
    def reader(cls) -> Journal:
        """The journal for reading (jobs, logs, status), also in a settings folder this user
        cannot write: then it is opened read-only, and a missing one reads as empty."""
        path = paths.jobs_dir() / "journal.db"
        try:
            return cls()
        except (OSError, sqlite3.OperationalError) as e:  # not a damaged file: that is raised
            failure = e
        self = cls.__new__(cls)
        self.path = path
        if path.exists():
            from urllib.parse import quote

            # mode=ro still needs the -shm file, which a read-only folder cannot hold once
            # the last writer removed it; immutable=1 reads the file as it is.
            for flags in ("mode=ro", "immutable=1"):
                try:
                    self.db = sqlite3.connect(f"file:{quote(str(path))}?{flags}", uri=True)
                    self.db.row_factory = sqlite3.Row
                    self.db.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
                    return self
                except sqlite3.Error:
                    continue
            raise failure
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)
        return self

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self, immediate: bool = False):
        """Several writes as one transaction (one commit). `immediate` takes the write lock
        at once: what the transaction reads cannot change before it writes."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ---- jobs
    def new_job(self, recipe_path: str, recipe_text: str, recipe_hash: str, variables: dict,
                host_overrides: dict, options: dict, job_id: str | None = None) -> Job:
        """A new job; `job_id` names a child job (JOB/1), else a fresh id is drawn."""
        now = time.time()
        while job_id is None:
            job_id = secrets.token_hex(4)
            if self.db.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone():
                job_id = None
        self.db.execute(
            "INSERT INTO jobs (id, recipe_path, recipe_hash, recipe_text, cwd, status, pid, created,"
            " updated, variables, host_overrides, options) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (job_id, recipe_path, recipe_hash, masking.mask(recipe_text), os.getcwd(), "running",
             os.getpid(), now, now, _dumps(variables), _dumps(host_overrides),
             _dumps({**options, "runner_start": process_start(os.getpid())})))
        return self.job(job_id)

    def job(self, job_id: str) -> Job | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def find_job(self, prefix: str) -> list[Job]:
        """The jobs whose id starts with `prefix`: a whole id is that job alone, and child
        jobs (JOB/1) only when the prefix names one."""
        exact = self.job(prefix)
        if exact is not None:
            return [exact]
        rows = self.db.execute("SELECT * FROM jobs WHERE id LIKE ? ORDER BY created DESC",
                               (prefix + "%",)).fetchall()
        return [_job(r) for r in rows if "/" in prefix or "/" not in r["id"]]

    def children(self, job_id: str) -> list[Job]:
        """The child jobs job.parallel made for this job, in their order."""
        rows = self.db.execute("SELECT * FROM jobs WHERE id LIKE ?", (job_id + "/%",)).fetchall()
        kids = [_job(r) for r in rows if "/" not in r["id"][len(job_id) + 1:]]
        return sorted(kids, key=lambda j: int(j.id.rpartition("/")[2]))

    def jobs(self, limit: int | None = None) -> list[Job]:
        q = "SELECT * FROM jobs ORDER BY created DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [_job(r) for r in self.db.execute(q).fetchall()]

    def claim(self, job_id: str) -> Job:
        """Make this process the job's runner (for a resume). The check and the take are one
        transaction, so two resumes of one job cannot both run it; a runner that died (its pid
        gone or reused) holds nothing. Raises JobHeld while a live runner has the job."""
        me = os.getpid()
        with self.batch(immediate=True):
            job = self.job(job_id)
            if job is None:
                raise KeyError(job_id)
            if job.status == "running" and job.pid != me and job.runner_alive():
                raise JobHeld(job)
            if job.status == "done":  # (it may have finished since the caller looked)
                raise JobHeld(job)
            self.set_job(job_id, status="running", pid=me, error=None,
                         options={**job.options, "runner": "resume", "runner_start": process_start(me)})
        return self.job(job_id)

    def set_job(self, job_id: str, **fields: Any) -> None:
        cols, values = [], []
        for k, v in fields.items():
            cols.append(f"{k}=?")
            values.append(_dumps(v) if isinstance(v, dict) else (masking.mask(v) if isinstance(v, str) else v))
        cols.append("updated=?")
        values.append(time.time())
        self.db.execute(f"UPDATE jobs SET {', '.join(cols)} WHERE id=?", (*values, job_id))

    # ---- steps
    def step_started(self, job_id: str, idx: int, line: int, kind: str, source: str,
                     detail: dict | None = None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO steps (job_id, idx, line, kind, source, status, started, detail)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (job_id, idx, line, kind, masking.mask(source), "running", time.time(), _dumps(detail or {})))

    def step_update(self, job_id: str, idx: int, **fields: Any) -> None:
        if "detail" in fields and "said" not in fields["detail"]:  # what it said stays said
            row = self.db.execute("SELECT detail FROM steps WHERE job_id=? AND idx=?",
                                  (job_id, idx)).fetchone()
            said = json.loads(row["detail"]).get("said") if row else None
            if said:
                fields["detail"] = {**fields["detail"], "said": said}
        cols, values = [], []
        for k, v in fields.items():
            cols.append(f"{k}=?")
            values.append(_dumps(v) if k == "detail" else v)
        self.db.execute(f"UPDATE steps SET {', '.join(cols)} WHERE job_id=? AND idx=?",
                        (*values, job_id, idx))
        if "status" in fields:
            self._tell(StepEnded(idx, fields["status"], fields.get("exit_code")))

    def step_finished(self, job_id: str, idx: int, status: str, exit_code: int | None = None,
                      **fields: Any) -> None:
        self.step_update(job_id, idx, status=status, exit_code=exit_code, ended=time.time(), **fields)

    def step_said(self, job_id: str, idx: int, level: str, text: str) -> None:
        """Keep a line the step said as its result with it (detail `said`: [level, text]
        pairs), for `recipe logs`; the watchers hear it as a StepSaid."""
        with self.batch():
            row = self.db.execute("SELECT detail FROM steps WHERE job_id=? AND idx=?",
                                  (job_id, idx)).fetchone()
            if row is None:
                return
            detail = json.loads(row["detail"])
            detail["said"] = [*detail.get("said", []), [level, text]]
            self.db.execute("UPDATE steps SET detail=? WHERE job_id=? AND idx=?",
                            (_dumps(detail), job_id, idx))
        self._tell(StepSaid(idx, level, masking.mask(text)))

    def step(self, job_id: str, idx: int) -> dict | None:
        """One step's row (a program reads each call's result: not the whole job's rows)."""
        r = self.db.execute("SELECT * FROM steps WHERE job_id=? AND idx=?", (job_id, idx)).fetchone()
        return dict(r, detail=json.loads(r["detail"])) if r else None

    def steps(self, job_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM steps WHERE job_id=? ORDER BY idx", (job_id,)).fetchall()
        return [dict(r, detail=json.loads(r["detail"])) for r in rows]

    # ---- sessions
    def session_opened(self, job_id: str, name: str, host: str, real: str, run_dir: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO sessions (job_id, name, host, real, run_dir, status)"
                        " VALUES (?,?,?,?,?,?)", (job_id, name, host, real, run_dir, "open"))
        self._tell(SessionOpened(name, host, real))

    def session_state(self, job_id: str, name: str, state: dict) -> None:
        self.db.execute("UPDATE sessions SET state=? WHERE job_id=? AND name=?",
                        (_dumps(state), job_id, name))

    def session_closed(self, job_id: str, name: str, status: str = "closed") -> None:
        """closed: by tmux.close; dropped: by the job's failure (a resume opens it again)."""
        self.db.execute("UPDATE sessions SET status=? WHERE job_id=? AND name=?", (status, job_id, name))
        self._tell(SessionClosed(name))

    def sessions(self, job_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM sessions WHERE job_id=? ORDER BY rowid", (job_id,)).fetchall()
        return [dict(r, state=json.loads(r["state"])) for r in rows]

    # ---- a program's calls
    def call_made(self, job_id: str, n: int, step: int | None, at: str, fingerprint: str,
                  source: str, value: Any = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO calls (job_id, n, step, at, fingerprint, source, value)"
                        " VALUES (?,?,?,?,?,?,?)", (job_id, n, step, at, fingerprint, masking.mask(source),
                                                    None if value is None else _dumps(value)))

    def calls(self, job_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM calls WHERE job_id=? ORDER BY n", (job_id,)).fetchall()
        return [dict(r, value=None if r["value"] is None else json.loads(r["value"])) for r in rows]

    # ---- events
    def event(self, job_id: str, level: str, message: str) -> None:
        self.db.execute("INSERT INTO events (job_id, ts, level, message) VALUES (?,?,?,?)",
                        (job_id, time.time(), level, masking.mask(message)))

    def events(self, job_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM events WHERE job_id=? ORDER BY ts, rowid", (job_id,))
        return [dict(r) for r in rows.fetchall()]


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    for k in ("variables", "host_overrides", "hosts", "options"):
        d[k] = json.loads(d[k])
    return Job(**d)
