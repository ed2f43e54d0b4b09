"""job.parallel (child jobs, each in its own thread) and job.include (a `.recipe` file's steps
as calls of the program).

A child job is a job of its own in the journal, `JOB/1`, `JOB/2`, ...: its calls, steps,
sessions and Context are its own, run by a `Child` (the program's runner, walking one
`fn(child_job, item)` instead of main) in a thread with its own journal connection (a sqlite
connection belongs to the thread that made it). The parallel call itself is one call of the
parent, which records which children it made; on resume, a finished child gives back its
journaled result (or its failure), and every other child is resumed by its own replay.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading

from trainsh import masking
from trainsh.program import api
from trainsh.program.engine import Diverged, ProgramRunner
from trainsh.recipe import model as m
from trainsh.recipe.expand import secret_names
from trainsh.runtime import feed as ev
from trainsh.runtime.context import RunOptions
from trainsh.runtime.journal import Job, Journal
from trainsh.visible import visible


class Cancelled(BaseException):
    """fail_fast: another child failed, so this one stops before its next call."""


class ChildConsole:
    """The parent's console, each line and step labelled with the child's id, and the child's
    session names with it too (each child has its own `train` session)."""

    def __init__(self, parent, label: str):
        self.parent, self.label = parent, label
        self.feed, self.visual = parent.feed, parent.visual

    def _s(self, name: str | None) -> str | None:
        return f"{self.label}:{name}" if name else name

    def emit(self, e) -> None:
        if isinstance(e, (ev.StepEnded, ev.StepSaid)):
            e = dataclasses.replace(e, child=self.label)
        elif isinstance(e, ev.SessionOpened | ev.SessionClosed):
            e = dataclasses.replace(e, name=self._s(e.name))
        elif isinstance(e, ev.Activity):
            e = dataclasses.replace(e, text=f"{self.label}: {e.text}", session=self._s(e.session))
        self.parent.emit(e)

    def step(self, idx: int, total: int, text: str) -> None:
        self.parent.emit(ev.StepStarted(idx - 1, total, visible(f"{self.label}: {text}"), self.label))

    def ok(self, text: str) -> None:
        self.parent.ok(f"{self.label}: {text}")

    def info(self, text: str) -> None:
        self.parent.info(f"{self.label}: {text}")

    def warn(self, text: str) -> None:
        self.parent.warn(f"{self.label}: {text}")

    def fail(self, text: str, label: str = "failed:") -> None:
        self.parent.fail(f"{self.label}: {text}", label)

    def output(self, text: str, indent: str = "  | ") -> None:
        self.parent.output(text, indent)

    def plain(self, text: str) -> None:
        self.parent.plain(f"{self.label}: {text}")

    def progress(self, p, label: str = "") -> None:
        self.parent.progress(p, f"{self.label}: {label}" if label else self.label)

    def live(self, text: str, peek=None, session: str | None = None, **kw) -> None:
        self.parent.live(f"{self.label}: {text}", peek, self._s(session), **kw)

    def live_update(self, text: str) -> None:
        self.parent.live_update(f"{self.label}: {text}")

    def live_done(self) -> None:
        self.parent.live_done()

    def prompting(self):
        return self.parent.prompting()


def failure(job: Job) -> api.ChildFailed:
    """A failed child as the parent sees it, built from the journal alone, so a resume that
    replays it gives the program the same exception as the run that saw it happen."""
    f = job.options.get("failure", {})
    return api.ChildFailed(f"{job.id} failed: {job.error or 'failed'}", f.get("exit_code"),
                           job=job.id, kind=f.get("kind", "StepFailed"))


class Runner(ProgramRunner):
    """The runner of a program's job: the engine's, with job.parallel and job.include."""

    def parallel(self, fn, items: list, max_workers: int, fail_fast: bool, at: str, source: str) -> list:
        return parallel(self, fn, items, max_workers, fail_fast, at, source)

    def include(self, path: str, variables: dict[str, str], at: str) -> None:
        include(self, path, variables, at)


class Child(Runner):
    stop: threading.Event

    def step(self, step: m.Step, at: str, extra: tuple = ()) -> dict:
        if self.stop.is_set():
            raise Cancelled()
        return super().step(step, at, extra)

    def value(self, kind: str, at: str, source: str, make):
        if self.stop.is_set():
            raise Cancelled()
        return super().value(kind, at, source, make)

    def go(self, fn, item):
        """Run fn(child_job, item) as this job: its result, or api.ChildFailed, or Diverged
        (the program changed), or Cancelled."""
        job = self.job
        self.replaying()
        api.CURRENT.engine = self
        self.ctx.events.record("info", f"job {job.id} started: {getattr(fn, '__name__', 'fn')}({item!r})")
        try:
            value = fn(api.Job(self), item)
            if self.n < len(self.recorded):
                rec = self.recorded[self.n]
                raise Diverged(f"the program now ends where job {job.id} went on with "
                               f"`{rec['source']}` ({rec['at']})")
            try:  # as a resume will give it back: what JSON keeps of it
                value = json.loads(json.dumps(value))
            except (TypeError, ValueError):
                raise TypeError(f"{getattr(fn, '__name__', 'fn')} returned a "
                                f"{type(value).__name__}: a child's result is journaled, so it must "
                                "be numbers, text, lists or dicts") from None
        except Diverged as e:
            self.diverged(str(e))
            return e
        except Cancelled as e:
            self.journal.set_job(job.id, status="interrupted", pid=None,
                                 error="stopped: another child failed (fail_fast)")
            return e
        except api.StepFailed as e:
            engine = getattr(e, "engine", None)
            kind = type(e).__name__
            if engine is None:
                self.program_failed(e)
            else:
                idx, step, err = engine
                self.journal.call_made(job.id, *self.call_of(idx), value={"raised": kind, "ended": True})
                self.failed(idx, step, err)
            return self.record_failure(kind, e.exit_code)
        except Exception as e:  # noqa: BLE001 - the child's own error fails the child, not the run
            self.program_failed(e)
            return self.record_failure(type(e).__name__, None)
        finally:
            api.CURRENT.engine = None
            self.remove_secret_files()
        self.journal.set_job(job.id, status="done", pid=None, options={**self.job.options, "result": value})
        self.clean_hosts()
        self.ctx.events.record("info", f"job {job.id} done")
        self.console.ok(f"done ({len(self.journal.steps(job.id))} steps)")
        return value

    def record_failure(self, kind: str, exit_code: int | None) -> api.ChildFailed:
        job = self.journal.job(self.job.id)
        self.journal.set_job(job.id, options={**job.options, "failure": {"kind": kind, "exit_code": exit_code}})
        return failure(self.journal.job(job.id))


def _child(parent: ProgramRunner, k: int, fn, item, stop: threading.Event):
    """Child k of the parent, made or resumed, run in this thread."""
    label = f"{parent.job.id}/{k}"
    journal = Journal(parent.journal.path)
    console = ChildConsole(parent.console, label)
    journal.watch = console.emit
    options = RunOptions(keep_sessions=parent.options.keep_sessions, keep_hosts=parent.options.keep_hosts)
    runner = None
    try:
        job = journal.job(label)
        if job is None:
            p = parent.job
            job = journal.new_job(p.recipe_path, p.recipe_text, p.recipe_hash, {}, p.host_overrides,
                                  {"program": True, "item": masking.mask(repr(item))[:200],
                                   "keep_sessions": options.keep_sessions, "keep_hosts": options.keep_hosts,
                                   **({"storage_overrides": p.options["storage_overrides"]}
                                      if "storage_overrides" in p.options else {})},
                                  job_id=label)
            (job.folder / "output").mkdir(parents=True, exist_ok=True)
            runner = Child(journal, job, m.Recipe(p.recipe_path, p.recipe_text), console, options)
            journal.set_job(job.id, hosts=runner.ctx.host_specs)
        else:
            console.info("resuming")
            runner = Child.resume(journal, job, console, options)
        runner.stop = stop
        return runner.go(fn, item)
    except Exception as e:  # noqa: BLE001 - a host of its sessions out of reach on resume, ...
        journal.set_job(label, status="failed", pid=None, error=masking.mask(str(e)))
        console.fail(masking.mask(str(e)))
        j = journal.job(label)
        journal.set_job(label, options={**j.options, "failure": {"kind": type(e).__name__, "exit_code": None}})
        return failure(journal.job(label))
    finally:
        if runner is not None:
            runner.ctx.events.close()
        journal.close()


def parallel(parent: ProgramRunner, fn, items: list, max_workers: int, fail_fast: bool,
             at: str, source: str) -> list:
    n = parent.n
    parent.n += 1
    shown = [masking.mask(repr(i)) for i in items]
    data = json.dumps(["parallel", getattr(fn, "__qualname__", repr(fn)), shown, bool(fail_fast)])
    fp = hashlib.sha256(data.encode()).hexdigest()[:16]
    rec = parent.recorded.get(n)
    if rec is not None:
        parent.check(rec, fp, source, at)
        first = rec["value"]["first"]
    else:
        first = parent.last_child + 1
        parent.journal.call_made(parent.job.id, n, None, at, fp, source,
                                 value={"first": first, "count": len(items)})
    parent.last_child = max(parent.last_child, first + len(items) - 1)
    numbers = [first + i for i in range(len(items))]
    outcomes: list = [None] * len(items)
    todo = []
    for i, k in enumerate(numbers):
        j = parent.journal.job(f"{parent.job.id}/{k}")
        if j is not None and j.status == "done":
            outcomes[i] = j.options.get("result")
        elif j is not None and j.status == "failed" and not fail_fast:
            outcomes[i] = failure(j)  # (with fail_fast, the failure ended the job: it runs again)
        else:
            todo.append(i)
    first_id, last_id = f"{parent.job.id}/{numbers[0]}" if numbers else "", f"/{numbers[-1]}" if numbers else ""
    if items:
        ran = len(items) - len(todo)
        parent.console.info(f"{len(items)} child jobs {first_id}..{last_id}, {max_workers} at a time"
                            + (f" ({ran} finished before)" if ran else ""))
    stop = threading.Event()
    if todo:
        lock = threading.Lock()
        queue = list(todo)
        left = [min(max_workers, len(todo))]
        finished = threading.Event()

        def worker():
            try:
                while not stop.is_set():
                    with lock:
                        if not queue:
                            break
                        i = queue.pop(0)
                    out = _child(parent, numbers[i], fn, items[i], stop)
                    outcomes[i] = out
                    if fail_fast and isinstance(out, api.ChildFailed) or isinstance(out, Diverged):
                        stop.set()
            finally:
                with lock:
                    left[0] -= 1
                    if left[0] == 0:
                        finished.set()

        for _ in range(left[0]):
            threading.Thread(target=worker, daemon=True).start()
        try:
            finished.wait()
        except BaseException:
            stop.set()  # (Ctrl-C, a signal: the children stop before their next call)
            raise
    for out in outcomes:
        if isinstance(out, Diverged):
            raise out
    if fail_fast:
        for out in outcomes:
            if isinstance(out, api.ChildFailed):
                raise out
    return outcomes


def include(runner: ProgramRunner, path: str, variables: dict[str, str], at: str) -> None:
    """The steps of a `.recipe` file, each a call of the program (journaled and replayed as
    those are), with its `var`s, and `variables` over them, expanded in its steps."""
    base = os.path.dirname(os.path.abspath(runner.job.recipe_path))
    full = os.path.join(base, path)
    recipe = api.parse(full)
    api.NAMED.update(secret_names(recipe.text))
    for what, named in (("host", recipe.hosts), ("storage", recipe.storages)):
        for name, spec in named.items():
            runner.define(what, name, spec)
    given = tuple(sorted(variables.items()))
    ctx = runner.ctx
    saved = ctx.variables
    ctx.variables = {**recipe.variables, **variables}
    try:
        for step in recipe.steps:
            runner.step(step, f"{at} > {os.path.basename(full)}:{step.pos.line}",
                        ("include", os.path.basename(full), given))
    finally:
        ctx.variables = saved
