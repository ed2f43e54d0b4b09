"""A Python recipe as a job: the DSL's Runner, walking a program's calls instead of a parsed
recipe's steps, and replaying them on resume.

Each call of the API (api.py) is one entry of the job's `calls` journal, by its place in the
program's sequence of calls, with a fingerprint of its kind and arguments (a secret by its
name: `${secret:NAME}` is what the step holds). A step call runs as step `idx` of the job,
through the DSL's handler and Runner.execute. On resume the program runs again from the top:
a call that matches a finished step gets that step's journaled result without running
anything, one that matches the step in flight re-enters it with the journal row (the DSL's
resume: a running command is waited for, not sent again), and the first call past the journal
starts new work. A call that does not match stops the resume, naming both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import sys
import traceback

from trainsh import masking
from trainsh.program import api
from trainsh.program.load import Program, ProgramError, load, typed
from trainsh.recipe import model as m
from trainsh.runtime import feed as ev
from trainsh.runtime import recovery
from trainsh.runtime.context import RunOptions, StepFailed, TimedOut
from trainsh.runtime.feed import Console
from trainsh.runtime.journal import Job, Journal
from trainsh.runtime.runner import Runner
from trainsh.visible import visible

# The label of what a program printed, as the live view shows it.
PRINTED = "program:"
# What a replayed step returns, by its journaled status.
FINISHED = ("done", "background", "stopped")


def fingerprint(step: m.Step, extra: tuple = ()) -> str:
    """The call's kind and arguments. Not its place in the file (an edit above it moves it)
    nor its timeout (a longer one is how a resumed job gets more time)."""
    fields = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)
              if f.name not in ("pos", "source", "timeout")}
    data = json.dumps([step.kind, fields, list(extra)], default=str, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class Diverged(BaseException):
    """The program asks for another call than the job journaled at this place. (Not an
    Exception: a program's `except Exception` must not swallow it.)"""


class Lines(io.TextIOBase):
    """A text stream that says each whole line it is given."""

    def __init__(self, say):
        self.say, self.rest = say, ""

    def write(self, text: str) -> int:
        *whole, self.rest = (self.rest + text).split("\n")
        for line in whole:
            self.say(line)
        return len(text)

    def close(self) -> None:
        if self.rest:
            self.say(self.rest)
            self.rest = ""


class ProgramRunner(Runner):
    program: Program | None = None

    def __init__(self, journal: Journal, job: Job, recipe: m.Recipe, console: Console,
                 options: RunOptions):
        super().__init__(journal, job, recipe, console, options)
        ctx = self.ctx
        ctx.variables = {}  # --var values are main()'s arguments; `$X` in a command is the shell's
        ctx.hidden = api.NAMED  # (the same set: a secret named later is hidden from later servers)
        self.at: dict[int, str] = {}  # step idx -> file:line of its call

    # ---- starting and resuming
    @classmethod
    def start_program(cls, journal: Journal, program: Program, console: Console, options: RunOptions,
                      variables: dict[str, str], host_overrides: dict[str, str],
                      storage_overrides: dict[str, str]) -> ProgramRunner:
        recipe = m.Recipe(program.path, program.text)
        runner = cls.start(journal, recipe, console, options, variables, host_overrides, storage_overrides)
        journal.set_job(runner.job.id, options={**runner.job.options, "program": True})
        runner.job = runner.ctx.job = journal.job(runner.job.id)
        runner.program = program
        return runner

    @classmethod
    def recipe_for(cls, journal: Journal, job: Job, console: Console) -> m.Recipe:
        """The steps journaled so far stand for the recipe (what the live view lists first);
        the program itself is loaded from its file as it is now, and checked call by call."""
        steps = [m.Step(m.Pos(r["line"], 1), r["source"]) for r in journal.steps(job.id)]
        # The hosts and storages the program defined, as a recipe's definitions: the runner
        # applies --host/--storage to them and gives a picked placeholder its machine again.
        definitions = {name: m.Definition(what, name, spec, m.Pos(1, 1))
                       for what, named in job.options.get("defined", {}).items()
                       for name, spec in named.items()}
        return m.Recipe(job.recipe_path, job.recipe_text, definitions, steps)

    @classmethod
    def resume_program(cls, journal: Journal, job: Job, console: Console,
                       options: RunOptions) -> ProgramRunner:
        try:
            program = load(job.recipe_path)
            program.values = typed(program, job.variables)
        except ProgramError as e:
            raise StepFailed(str(e)) from None
        runner = cls.resume(journal, job, console, options)
        runner.program = program
        return runner

    # ---- the walk
    def replaying(self) -> None:
        """What the journal holds of the job's calls, for the program's calls to match."""
        job = self.job
        self.recorded = {c["n"]: c for c in self.journal.calls(job.id)}
        self.rows = {r["idx"]: r for r in self.journal.steps(job.id)}
        self.at = {c["step"]: c["at"] for c in self.recorded.values() if c["step"] is not None}
        self.n = 0
        # (a call journaled just before the runner died may have no step row yet: its idx is taken)
        self.next_idx = max([*self.rows, *self.at], default=-1) + 1
        # child jobs of job.parallel calls are numbered on from those already made
        self.last_child = max([(c["value"] or {}).get("first", 1) + (c["value"] or {}).get("count", 0) - 1
                               for c in self.recorded.values() if c["step"] is None
                               and isinstance(c["value"], dict)], default=0)

    def walk(self) -> int | None:
        job = self.job
        self.replaying()
        # On a terminal the live view owns the screen: what the program prints goes through
        # the console (masked, beside the steps) instead of over it. Piped, stdout stays its own.
        printed = Lines(lambda line: self.console.emit(ev.Message("info", visible(line), PRINTED)))
        shown = contextlib.redirect_stdout(printed) \
            if self.console.visual and sys.stdout.isatty() else contextlib.nullcontext()
        try:
            with shown, contextlib.closing(printed):
                self.program.main(api.Job(self), **self.program.values)
            if self.n < len(self.recorded):
                rec = self.recorded[self.n]
                raise Diverged(f"the program now ends where job {job.id} went on with "
                               f"`{rec['source']}` ({rec['at']})")
        except Diverged as e:
            return self.diverged(str(e))
        except api.StepFailed as e:
            failure = getattr(e, "engine", None)
            if failure is None:  # raised by the program itself
                return self.program_failed(e)
            idx, step, err = failure
            call = self.call_of(idx)  # (none: a lost machine's replacement pick, a step of its call)
            if call is not None:
                self.journal.call_made(job.id, *call, value={"raised": type(e).__name__, "ended": True})
            return self.failed(idx, step, err)
        except Exception as e:  # noqa: BLE001 - the program's own error ends the job as a failed step does
            return self.program_failed(e)
        return None

    def call_of(self, idx: int) -> tuple | None:
        c = next((c for c in self.journal.calls(self.job.id) if c["step"] == idx), None)
        return c and (c["n"], c["step"], c["at"], c["fingerprint"], c["source"])

    def where(self, idx: int, step: m.Step) -> str:
        return self.at.get(idx) or super().where(idx, step)

    # ---- what the API asks (api.Engine)
    @property
    def job_id(self) -> str:
        return self.job.id

    def define(self, what: str, name: str, spec: str) -> str:
        """A host or storage the program names; --host/--storage NAME=SPEC take its place.
        Journaled with the job, so a resume reaches the sessions on it before the program runs."""
        defined = self.job.options.get("defined", {})
        mine = defined.get(what, {})
        if mine.get(name, spec) != spec:
            raise ValueError(f"{what} {name} is {mine[name]!r} already; give this one another name=")
        specs = self.ctx.host_specs if what == "host" else self.ctx.storage_specs
        overrides = self.job.host_overrides if what == "host" else \
            self.job.options.get("storage_overrides", {})
        if name not in mine:
            defined = {**defined, what: {**mine, name: spec}}
            self.job.options["defined"] = defined
            self.journal.set_job(self.job.id, options=self.job.options)
        if name not in specs and name not in overrides:  # (on resume: as the runner set it,
            specs[name] = spec                            # a picked placeholder filled)
        return specs.get(name, spec)

    def value(self, kind: str, at: str, source: str, make):
        n = self.n
        self.n += 1
        fp = hashlib.sha256(kind.encode()).hexdigest()[:16]
        rec = self.recorded.get(n)
        if rec is not None:
            self.check(rec, fp, source, at)
            return rec["value"]
        value = make()
        self.journal.call_made(self.job.id, n, None, at, fp, source, value=value)
        return value

    def step(self, step: m.Step, at: str, extra: tuple = ()) -> dict:
        n = self.n
        self.n += 1
        fp = fingerprint(step, extra)
        rec = self.recorded.get(n)
        resume = None
        if rec is not None:
            self.check(rec, fp, step.source, at)
            idx = rec["step"]
            self.keep(idx, step)
            row = self.rows.get(idx)
            if row is not None and row["status"] in FINISHED:
                return row  # its journaled result; nothing runs
            value = rec["value"] or {}
            if row is not None and row["status"] == "failed" and not value.get("ended"):
                self.at[idx] = at
                if value.get("raised") in ("HostLost", None):  # (None: killed before it was told)
                    self.host_lost(n, idx, step, at, fp, self.error(rec, row, step).engine[2], value)
                raise self.error(rec, row, step)  # the program saw this failure and went on
            if row is not None and row["status"] in ("running", "interrupted"):
                resume = row  # in flight when the runner stopped: the handler picks it up
        else:
            idx = self.next_idx
            self.next_idx += 1
            self.journal.call_made(self.job.id, n, idx, at, fp, step.source)
        self.at[idx] = at
        self.keep(idx, step)
        try:
            self.execute(idx, step, resume, 0)
        except StepFailed as e:
            self.host_lost(n, idx, step, at, fp, e)
            self.journal.call_made(self.job.id, n, idx, at, fp, step.source,
                                   value={"raised": "Timeout" if isinstance(e, TimedOut) else "StepFailed"})
            row = self.journal_row(idx)
            err = (api.Timeout if isinstance(e, TimedOut) else api.StepFailed)(
                str(e), e.exit_code, e.output, step.source, at)
            err.duration = api.took(row)
            err.engine = (idx, step, e)
            # (uncaught, the job's failure report follows; caught, this is all the console says)
            self.console.info(f"to the program: {masking.mask(str(e))}")
            raise err from None
        row = self.journal_row(idx)
        self.rows[idx] = row
        return row

    def keep(self, idx: int, step: m.Step) -> None:
        """The call's step at its index of the job's recipe: what recovery reads to find the
        pick that gave a host its machine and the sessions opened on it."""
        steps = self.ctx.recipe.steps
        while len(steps) <= idx:
            steps.append(m.Step(m.Pos(1, 1), ""))
        steps[idx] = step

    def host_lost(self, n: int, idx: int, step: m.Step, at: str, fp: str, e: StepFailed,
                  value: dict | None = None) -> None:
        """When step `idx` failed because a machine it works on was lost and its pick has
        recover=N: the loss as the language's recovery journals it (recovery.lose), the pick
        run again as a step of its own under the next label, and HostLost raised to the program
        with the host on the new machine. With the budget spent, HostLost without one. A
        resume replays this from the call's journaled value: the replacement it names is
        looked up (or picked up where it was), never rented twice. Returns when it was no loss."""
        value = value or {}
        if "replacement" in value or value.get("raised") == "HostLost":
            host, why, spec = value.get("host"), value.get("why", ""), value.get("spec", "")
            message = value.get("message") or str(e)
        else:
            lost = recovery.lost_host(self.ctx, step)
            if lost is None:
                return
            host, why = lost[0], lost[3]
            spec = self.ctx.host_specs.get(host, "")
            mach = self.ctx.machines.get(host)
            try:
                recovery.lose(self.ctx, idx, lost, self.options.keep_hosts)
            except StepFailed as spent:
                message = f"{e}; {spent}"
                self.journal.step_update(self.job.id, idx, detail={"error": message})
                value = {"raised": "HostLost", "host": host, "why": why, "spec": spec, "message": message}
                self.journal.call_made(self.job.id, n, idx, at, fp, step.source, value=value)
            else:
                message = f"{e}; @{host}: {mach.kind} {mach.ident} was lost ({why})"
                value = {"raised": "HostLost", "host": host, "why": why, "spec": spec, "message": message,
                         "replacement": self.next_idx}
                self.next_idx += 1
                self.journal.call_made(self.job.id, n, idx, at, fp, step.source, value=value)
        job = api.Job(self)
        replaced = None
        rid = value.get("replacement")
        if rid is not None:
            pick = self.recipe.steps[recovery.pick_of(self.recipe, host)]
            row = self.rows.get(rid) or self.journal_row(rid)
            if row is None or row["status"] not in FINISHED:
                self.keep(rid, pick)
                self.at[rid] = at
                try:
                    self.execute(rid, pick, row if row and row["status"] in ("running", "interrupted") else None, 0)
                except StepFailed as failed:
                    err = api.StepFailed(f"{message}; its replacement: {failed}", failed.exit_code,
                                         failed.output, pick.source, at)
                    err.engine = (rid, pick, failed)
                    raise err from None
                row = self.journal_row(rid)
            self.rows[rid] = row
            replaced = api.Host(job, host, api.spec_of(row, getattr(pick, "provider", None)))
            message += f"; replaced by {replaced.spec}"
        err = api.HostLost(message, e.exit_code, e.output, step.source, at,
                           host=api.Host(job, host, spec), why=why, replaced_by=replaced)
        err.duration = api.took(self.journal_row(idx) or {})
        err.engine = (idx, step, StepFailed(message, e.exit_code, e.output))
        self.console.info(f"to the program: {masking.mask(message)}")
        raise err from None

    def check(self, rec: dict, fp: str, source: str, at: str) -> None:
        if rec["fingerprint"] != fp:
            raise Diverged(f"call {rec['n'] + 1} of the program is now `{masking.mask(source)}` ({at}), "
                           f"where job {self.job.id} ran `{rec['source']}` ({rec['at']})")

    def error(self, rec: dict, row: dict, step: m.Step) -> api.StepFailed:
        kind = api.Timeout if (rec["value"] or {}).get("raised") == "Timeout" else api.StepFailed
        err = kind(row["detail"].get("error", "failed"), row["exit_code"], self.output(row),
                   step.source, rec["at"])
        err.duration = api.took(row)
        err.engine = (rec["step"], step, StepFailed(err.message, row["exit_code"], err.output))
        return err

    def journal_row(self, idx: int) -> dict:
        return self.journal.step(self.job.id, idx)

    def output(self, row: dict) -> str:
        path = row.get("log_path")
        if not path:
            return ""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return masking.mask(f.read().rstrip("\n"))
        except OSError:
            return ""

    # ---- the ends a program adds
    def diverged(self, why: str) -> int:
        """The job stays as it was (interrupted, resumable once the program matches again)."""
        self.console.live_done()
        line = f"{why}; restore the program, or start over with: train recipe resume {self.job.id} --from-scratch"
        self.journal.set_job(self.job.id, status="interrupted", pid=None, error=f"program changed: {why}")
        self.ctx.events.record("error", line)
        self.console.fail(line, "program changed:")
        return 2

    def program_failed(self, e: BaseException) -> int:
        """An exception of the program's own: one line where it was raised; the whole
        traceback goes to the job's log only."""
        self.console.live_done()
        self.ctx.events.step = None
        where = self.where_raised(e)
        message = masking.mask(f"{type(e).__name__}: {e}" if not isinstance(e, api.StepFailed) else str(e))
        self.journal.set_job(self.job.id, status="failed", pid=None, error=f"{where}: {message}")
        self.ctx.events.record("error", masking.mask("".join(traceback.format_exception(e)).rstrip()))
        self.console.fail(f"{where}: {message}", "program raised:")
        return self.wind_down()

    def where_raised(self, e: BaseException) -> str:
        path = os.path.abspath(self.job.recipe_path)
        line = None
        for frame, lineno in traceback.walk_tb(e.__traceback__):
            if os.path.abspath(frame.f_code.co_filename) == path:
                line = lineno
        return f"{os.path.basename(path)}:{line}" if line else os.path.basename(path)
