"""Running a recipe as a job: one step at a time, each start and end journaled first.

The Runner owns the job's state (variables, hosts, sessions and their commands in flight) and
hands each step to its handler (handlers.py) with the job's Context (context.py). It turns the ways a run can end into job states:
done (exit 0), failed (exit 1, sessions closed unless --keep-sessions), interrupted (Ctrl-C,
SIGTERM or a killed runner: exit 130, sessions kept so `train recipe resume` picks up).
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading

from trainsh import masking
from trainsh.recipe.model import Recipe, Step
from trainsh.recipe.parser import parse
from trainsh.remote.shell import ShellError
from trainsh.remote.tmux import Pending, Session
from trainsh.runtime import allocations, handlers, reach, recovery
from trainsh.runtime.context import (Context, HostHandle, Interrupted, RunOptions, StepFailed,
                                     attach_command)
from trainsh.runtime.events import Events
from trainsh.runtime.feed import Console
from trainsh.runtime.journal import Job, Journal, process_start
from trainsh.runtime.machines import Machines
from trainsh.settings import config


def recipe_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Runner:
    def __init__(self, journal: Journal, job: Job, recipe: Recipe, console: Console,
                 options: RunOptions):
        self.journal = journal
        self.job = job
        self.recipe = recipe
        self.console = console
        self.options = options
        variables = dict(recipe.variables)
        variables.update(job.variables)
        host_specs = dict(recipe.hosts)
        host_specs.update(job.host_overrides)
        storage_specs = {**recipe.storages, **job.options.get("storage_overrides", {})}
        events = Events(journal, job.id, job.folder / "job.log", console)
        self.machines = Machines(journal, job.id)
        lost = {(x["host"], x["ident"]) for x in recovery.losses(job)}
        for mach in self.machines.all():  # a host a step gave a machine to: the same one on resume
            if (mach.host, mach.ident) not in lost and mach.kind in reach.REACH and host_specs.get(mach.host, "").strip() == "placeholder":
                host_specs[mach.host] = f"{mach.kind}:{mach.ident}"
        self.ctx = Context(job, journal, events, console, recipe, variables, host_specs, storage_specs,
                           machines=self.machines, held=allocations.host_handle)

    # ---- entry points
    @classmethod
    def start(cls, journal: Journal, recipe: Recipe, console: Console, options: RunOptions,
              variables: dict[str, str], host_overrides: dict[str, str],
              storage_overrides: dict[str, str] | None = None) -> Runner:
        job_options: dict = {"keep_sessions": options.keep_sessions, "keep_hosts": options.keep_hosts}
        if storage_overrides:
            job_options["storage_overrides"] = storage_overrides
        if options.autostop is not None:
            job_options["autostop"] = options.autostop
        if options.recover:
            job_options["recover"] = options.recover
        if options.picks:
            job_options["picks"] = options.picks
        if options.exec:
            job_options["exec"] = True
        job = journal.new_job(os.path.abspath(recipe.path) if os.path.exists(recipe.path) else recipe.path,
                              recipe.text, recipe_hash(recipe.text), variables, host_overrides,
                              job_options)
        (job.folder / "output").mkdir(parents=True, exist_ok=True)
        runner = cls(journal, job, recipe, console, options)
        journal.set_job(job.id, hosts=runner.ctx.host_specs)
        return runner

    @classmethod
    def resume(cls, journal: Journal, job: Job, console: Console, options: RunOptions) -> Runner:
        """Run the rest of a job this process has claimed (Journal.claim)."""
        recipe = cls.recipe_for(journal, job, console)
        options.keep_sessions = options.keep_sessions or bool(job.options.get("keep_sessions"))
        options.keep_hosts = options.keep_hosts or bool(job.options.get("keep_hosts"))
        journal.set_job(job.id, status="running", pid=os.getpid(), error=None,
                        options={**job.options, "runner_start": process_start(os.getpid())})
        job = journal.job(job.id)
        runner = cls(journal, job, recipe, console, options)
        runner._restore()
        return runner

    @classmethod
    def recipe_for(cls, journal: Journal, job: Job, console: Console) -> Recipe:
        """The recipe a resume runs: the job's, as it was when it started."""
        recipe = parse(job.recipe_text, job.recipe_path,
                       allow_host_commands=bool(job.options.get("exec")))
        try:
            with open(job.recipe_path, encoding="utf-8") as f:
                changed = recipe_hash(f.read()) != job.recipe_hash
        except OSError:
            changed = False
        if changed:
            console.warn(f"{job.recipe_path} changed since job {job.id} started; resuming the "
                         "recipe as it was then")
        return recipe

    def _restore(self) -> None:
        """Rebuild sessions and commands in flight from the journal."""
        ctx = self.ctx
        step_status = {r["idx"]: r["status"] for r in self.journal.steps(self.job.id)}
        for row in self.journal.sessions(self.job.id):
            if row["status"] not in ("open", "dropped"):
                continue  # closed by tmux.close
            st = row["state"]
            s = Session(row["name"], row["real"], row["host"], row["run_dir"],
                        log_offset=st.get("log_offset", 0), cmd_offset=st.get("cmd_offset", 0),
                        marker=st.get("marker", ""), count=st.get("count", 0))
            cur = st.get("current")
            if cur:
                s.current = Pending(**cur)
            ctx.sessions[s.name] = s
            tmux = ctx.host(s.host).tmux
            if not tmux.exists(s):
                ctx.events.warn(f"session {s.name} ({s.real}) no longer exists: opening it again")
                if s.current and not s.current.done:
                    rc = tmux.read_rc(s.current.rc_path)
                    if rc is None and step_status.get(s.current.step) != "background":
                        s.current = None  # the step in flight died with its session: run it again
                    elif rc is None:
                        s.current.done, s.current.note = True, "was lost with its tmux session"
                    else:
                        s.current.rc, s.current.done = rc, True
                tmux.open(s, cwd=self.job.cwd)
                size = len(tmux.shell.read_file(s.log_path) or b"")
                s.log_offset = s.cmd_offset = size  # old output is not the new commands'
                s.marker = ""
                ctx.save_session(s)
            elif (s.current and not s.current.done and step_status.get(s.current.step) == "failed"
                  and not tmux.was_started(s, s.current)):
                # Its step failed before the command was typed (the host went away while it was
                # being sent): nothing of it runs, and the step runs again from the start.
                s.current = None
                ctx.save_session(s)

    current: int | None = None  # the step running now (what an interruption leaves)

    def run(self) -> int:
        ctx, job = self.ctx, self.job
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

        def on_signal(signum, frame):
            raise Interrupted(signal.Signals(signum).name)

        for s in previous:
            signal.signal(s, on_signal)
        watching = threading.Event()  # set: the loss watcher of recover=N machines stops
        try:
            ctx.events.record("info", f"job {job.id} started: {job.recipe_path}")
            recovery.watch(ctx, watching)
            failed = self.walk()
            if failed is not None:
                return failed
            total = len(self.journal.steps(job.id))
            self.journal.set_job(job.id, status="done", pid=None)
            self.machines.look(self.console)  # (a machine destroyed meanwhile: nothing to clean)
            self.clean_hosts()
            ctx.events.record("info", f"job {job.id} done")
            self.console.plain(f"job {job.id} done ({total} steps)")
            for s in list(ctx.sessions.values()):
                m = self.machines.get(s.host)
                if m and m.state in ("stopped", "gone"):  # it went with its machine
                    self.journal.session_closed(job.id, s.name, status="gone")
                    continue
                self.console.info(f"session {s.name} left open: {self.attach_hint(s)}")
            self.machines.on_done(self.console, release=bool(job.options.get("exec")),
                                  keep=self.options.keep_hosts)
            return 0
        except (KeyboardInterrupt, Interrupted) as e:
            self.console.live_done()
            why = "Ctrl-C" if isinstance(e, KeyboardInterrupt) else str(e) or "signal"
            at = "" if self.current is None else f" at step {self.current + 1}"
            if self.current is not None:
                self.journal.step_update(job.id, self.current, status="interrupted")
            self.journal.set_job(job.id, status="interrupted", pid=None, error=f"interrupted ({why})")
            ctx.events.record("warning", f"job interrupted ({why}){at}")
            self.console.fail(f"({why}){at}; commands keep running in their tmux "
                              f"sessions. Resume with: train recipe resume {job.id}", "interrupted")
            self.machines.on_interrupted(self.console)
            return 130
        finally:
            watching.set()
            for s, h in previous.items():
                signal.signal(s, h)
            self.remove_secret_files()
            ctx.events.close()

    def walk(self) -> int | None:
        """Run the recipe's steps in order, skipping what a resumed job finished: None when
        all are done, else the job's exit code (its failure is reported)."""
        done = {r["idx"]: r for r in self.journal.steps(self.job.id)}
        total = len(self.recipe.steps)
        idx = -1
        while idx + 1 < total:
            idx += 1
            step = self.recipe.steps[idx]
            row = done.get(idx)
            if row and (row["status"] in ("done", "background", "stopped")
                        or row["status"] == "failed" and row["detail"].get("background")):
                continue  # (a background command that failed was reported; the job went on)
            resuming = row is not None and row["status"] in ("running", "interrupted")
            try:
                self.execute(idx, step, row if resuming else None, total)
            except StepFailed as e:
                try:
                    lost = recovery.lost_host(self.ctx, step)
                    if lost is not None:  # its machine went: a new one, and its steps again
                        idx = recovery.recover(self.ctx, idx, lost, self.options.keep_hosts) - 1
                        done = {r["idx"]: r for r in self.journal.steps(self.job.id)}
                        continue
                except StepFailed as spent:
                    e = StepFailed(f"{e}; {spent}", e.exit_code, e.output)
                    self.journal.step_update(self.job.id, idx, detail={"error": str(e)})
                return self.failed(idx, step, e)
        return None

    def execute(self, idx: int, step: Step, resume: dict | None, total: int) -> None:
        """Run one step through its handler, as step `idx` of the job (`total`: how many the
        recipe has, 0 when not known ahead). A failure is journaled and raised as StepFailed;
        the caller decides what it means for the job."""
        ctx, job = self.ctx, self.job
        self.current = idx
        self.console.step(idx + 1, total, _describe(step))
        of = f"/{total}" if total else ""
        ctx.events.record("info", f"step {idx + 1}{of} line {step.pos.line}: {step.source}")
        handler = handlers.handler_for(step)
        ctx.events.step = idx  # what is said meanwhile is this step's result
        try:
            handler(ctx, idx, step, resume=resume)
        except StepFailed as e:
            self.current = None
            self.console.live_done()
            self.journal.step_finished(job.id, idx, "failed", e.exit_code,
                                       detail={**{k: v for k, v in (resume or {}).get("detail", {}).items()
                                                  if k != "said"}, "error": str(e)})
            raise
        except (ShellError, config.ConfigError) as e:
            self.current = None
            self.console.live_done()
            self.journal.step_finished(job.id, idx, "failed", None, detail={"error": str(e)})
            raise StepFailed(str(e)) from None
        except Exception as e:  # a bug or an odd case: the step fails, the job ends clean
            self.current = None
            self.console.live_done()
            why = f"{type(e).__name__}: {e}"
            self.journal.step_finished(job.id, idx, "failed", None, detail={"error": why})
            if os.environ.get("TRAINSH_DEBUG"):
                raise
            raise StepFailed(why) from None
        finally:
            ctx.events.step = None
        self.current = None

    def remove_secret_files(self) -> None:
        """A command removes its secrets files as it starts; files of one that never started
        (a failed send, a closed session, an interrupted runner) must not stay behind."""
        keep = set()
        for s in self.ctx.sessions.values():  # sent and maybe not started yet: it removes its own
            cur = s.current
            if cur is not None and cur.secrets and not cur.done:
                keep.add(f"{s.rc_dir}/s{cur.n}.env")
        by_host: dict[str, list[str]] = {}
        for host, path in self.ctx.secret_files:
            if path not in keep:
                by_host.setdefault(host, []).append(path)
        for host, files in by_host.items():
            try:
                self.ctx.host(host).shell.run(["rm", "-f", *files], timeout=30)
            except (ShellError, StepFailed):
                pass
        self.ctx.secret_files = [(h, p) for h, p in self.ctx.secret_files if p in keep]

    def failed(self, idx: int, step: Step, e: StepFailed) -> int:
        """End the job on step `idx`'s failure: report it, close or keep what it opened."""
        ctx, job = self.ctx, self.job
        ctx.events.step = None  # what follows is the job's end, not the step's result
        where = self.where(idx, step)
        message = masking.mask(str(e))
        self.journal.set_job(job.id, status="failed", pid=None, error=f"step {idx + 1} ({where}): {message}")
        ctx.events.record("error", f"step {idx + 1} ({where}) failed: {message}")
        self.console.fail(f"step {idx + 1} ({where}) {step.source}")
        self.console.plain(f"  {message}")
        if e.output:
            tail = e.output.splitlines()[-15:]
            self.console.plain("  last output:")
            self.console.output("\n".join(tail))
        return self.wind_down()

    def where(self, idx: int, step: Step) -> str:
        """file:line of step `idx`, as errors name it."""
        return f"{os.path.basename(self.job.recipe_path)}:{step.pos.line}"

    def wind_down(self) -> int:
        """A failed job, once it said why: its sessions closed (or kept), its hosts cleaned,
        its machines released (or kept). Exit code 1."""
        ctx, job = self.ctx, self.job
        self.machines.look(self.console)  # (a machine destroyed meanwhile: not waited for below)
        if self.options.keep_sessions:
            for s in ctx.sessions.values():
                if self._gone(s.host):
                    continue
                self.console.info(f"session {s.name} kept: {self.attach_hint(s)}")
        else:
            self.close_sessions()
        self.clean_hosts()
        self.machines.on_failed(self.console, keep=self.options.keep_hosts)
        self.console.plain(f"job {job.id} failed; logs: train recipe logs {job.id}")
        return 1

    def close_sessions(self) -> None:
        """Close the job's sessions after a failure; a resume opens them again. On a host
        that cannot be reached, say what stays open there (and `status` keeps showing it)."""
        ctx = self.ctx
        for name in list(ctx.sessions):
            s = ctx.sessions.pop(name)
            m = self.machines.get(s.host)
            handle = ctx.hosts.get(s.host)
            lost = getattr(handle.shell, "lost_as", None) if handle is not None else None
            if m and lost:  # stopped or destroyed from outside: nothing of it runs or bills
                self.machines.set_state(s.host, lost[1])
                m.state = lost[1]
            if m and m.state in ("stopped", "gone"):  # a stopped machine took its sessions along
                self.journal.session_closed(self.job.id, name, status="dropped")
                continue
            if self._gone(s.host):  # and a destroyed one for good
                self.journal.session_closed(self.job.id, name, status="gone")
                continue
            why = self._unreachable(ctx.hosts.get(s.host))
            if why is None:
                try:
                    ctx.host(s.host).tmux.close(s)
                except (ShellError, StepFailed) as e:
                    why = str(e)
            handle = ctx.hosts.get(s.host)
            if why is not None and handle is not None and not handle.shell.is_local():
                ctx.events.warn(f"could not close session {name} on @{s.host} ({why}): it may "
                                f"still run there; {attach_command(handle, s.real)}")
                continue  # still open as far as anyone knows
            self.journal.session_closed(self.job.id, name, status="dropped")

    def clean_hosts(self) -> None:
        """Remove the job's run folder (exit codes, pane logs) from each remote host where no
        session of the job stays open; what the job needs is in its local folder already."""
        busy = {s.host for s in self.ctx.sessions.values()}
        for name, h in self.ctx.hosts.items():
            m = self.machines.get(name)
            if name in busy or h.shell.is_local() or (m and m.state in ("stopped", "gone")):
                continue
            why = self._unreachable(h)
            if why is None:
                try:
                    h.shell.run(["rm", "-rf", h.run_dir], timeout=60)
                    continue
                except ShellError as e:
                    why = str(e)
            self.ctx.events.warn(f"could not remove {h.run_dir} on @{name} ({why}): left behind")

    def _gone(self, host: str) -> bool:
        m = self.machines.get(host)
        return bool(m and m.state == "gone")

    _down: dict[str, str] | None = None  # remote hosts that did not answer at cleanup, and why

    def _unreachable(self, handle: HostHandle | None) -> str | None:
        """Why cleanup leaves a host alone, or None. Each remote host gets one quick try (no
        reconnect window) when cleanup starts: a host the failed step already waited a whole
        window for would otherwise cost that window again for every session to close and
        every folder to remove. One that answers gets the usual retries."""
        if handle is None or handle.shell.is_local():
            return None
        if self._down is None:
            self._down = {}
        if handle.name not in self._down:
            shell = handle.shell
            saved = getattr(shell, "reconnect", None)
            if saved is not None:
                shell.reconnect = 0
            try:
                r = shell.run(["true"], timeout=15)
                self._down[handle.name] = "" if r.ok else "it did not answer"
            except ShellError as e:
                self._down[handle.name] = str(e)
            finally:
                if saved is not None:
                    shell.reconnect = saved
        return self._down[handle.name] or None

    def attach_hint(self, s: Session) -> str:
        return attach_command(self.ctx.host(s.host), s.real)


def _describe(step: Step) -> str:
    text = step.source.strip()
    return text if len(text) <= 100 else text[:97] + "..."
