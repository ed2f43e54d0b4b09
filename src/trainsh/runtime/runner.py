"""Running a recipe as a job: one step at a time, each start and end journaled first.

The Runner owns the job's state (variables, hosts, sessions and their commands in flight) and
hands each step to its handler in steps.py. It turns the ways a run can end into job states:
done (exit 0), failed (exit 1, sessions closed unless --keep-sessions), interrupted (Ctrl-C,
SIGTERM or a killed runner: exit 130, sessions kept so `train recipe resume` picks up).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
from dataclasses import asdict, dataclass, field

from trainsh import masking
from trainsh.recipe.expand import ExpandError, expand
from trainsh.recipe.model import Recipe, Step
from trainsh.recipe.parser import parse
from trainsh.remote.shell import LocalShell, Shell, ShellError
from trainsh.remote.tmux import Pending, Session, Tmux
from trainsh.runtime.events import Events
from trainsh.runtime.journal import Job, Journal
from trainsh.runtime.machines import Machines
from trainsh.settings import config
from trainsh.ui.console import Console


class StepFailed(Exception):
    """A step did not do what it should; the job stops here."""

    def __init__(self, message: str, exit_code: int | None = None, output: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.output = output


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop now, keep what runs remotely, leave the job resumable."""


@dataclass
class RunOptions:
    keep_sessions: bool = False
    keep_hosts: bool = False  # a failed job leaves the machines it brought up running
    autostop: float | None = None  # seconds idle before a cloud machine stops itself (0: never)
    picks: dict | None = None  # host -> machine chosen before the run (--pick-host)
    exec: bool = False  # `train exec`: what it rented or started is released when it ends


@dataclass
class HostHandle:
    name: str
    spec: str
    shell: Shell
    tmux: Tmux
    run_dir: str  # per-job folder on the host
    node_shell: Shell | None = None  # where port waits look, when not `shell` (an allocation's node)


@dataclass
class Context:
    """What the step handlers see."""

    job: Job
    journal: Journal
    events: Events
    console: Console
    recipe: Recipe
    variables: dict[str, str]
    host_specs: dict[str, str]
    storage_specs: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, HostHandle] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    secret_files: list[tuple[str, str]] = field(default_factory=list)  # (host, path) written
    machines: Machines | None = None  # what the job rented, started or allocated
    warned: set[str] = field(default_factory=set)  # secrets already said to be too short

    def expand(self, text: str, where: str | None = None) -> str:
        """Expand variables and secrets. With `where`, the text ends up in a process's
        arguments (visible to `ps`), so a secret there is refused instead."""
        def refuse(name: str) -> str:
            raise ExpandError(f"${{secret:{name}}} cannot be used in {where}: it would show in "
                              "process lists; use it in a command, where it stays out of sight")

        try:
            return expand(text, self.variables, refuse if where else self.secret)
        except ExpandError as e:
            raise StepFailed(str(e)) from None

    def hidden_env(self) -> set[str]:
        """What a tmux server started by trainsh must not inherit: the passphrase, and every
        ${secret:NAME} of the recipe (those reach only the commands that name them). Other
        variables the user exported stay, as in any tmux they would start."""
        from trainsh.recipe.expand import secret_names

        return {"TRAINSH_PASSPHRASE", *secret_names(self.recipe.text)}

    def expand_command(self, text: str) -> tuple[str, dict[str, str]]:
        """A command's text with each `${secret:NAME}` replaced by a reference to the variable
        TRAINSH_SECRET_NAME, and the values those variables must hold. The values never
        become part of the typed text. A missing secret fails here, before anything runs."""
        values: dict[str, str] = {}

        def ref(name: str) -> str:
            var = f"TRAINSH_SECRET_{name}"
            values[var] = self.secret(name)
            return "${" + var + "}"

        try:
            return expand(text, self.variables, ref), values
        except ExpandError as e:
            raise StepFailed(str(e)) from None

    def secret(self, name: str) -> str:
        from trainsh.settings import secrets

        try:
            if secrets.will_ask(name):  # the passphrase, on the terminal the live view holds
                with self.console.prompting():
                    value = secrets.lookup(name)
            else:
                value = secrets.lookup(name)
        except secrets.SecretError as e:
            raise ExpandError(f"secret {name}: {e}") from None
        if value is None:
            raise ExpandError(f"secret {name} is not set: run 'train secrets set {name}' "
                              f"or export {name}")
        masking.register(value)
        short = masking.too_short(name, value)
        if short and name not in self.warned:
            self.warned.add(name)
            self.events.warn(short)
        return value

    def host(self, name: str) -> HostHandle:
        if name in self.hosts:
            return self.hosts[name]
        from trainsh.runtime import allocations

        if name != "local" and allocations.is_allocation(self, name):
            handle = allocations.host_handle(self, name)  # its spec: the login host's
        else:
            spec = "local" if name == "local" else self.host_specs.get(name)
            if spec is None:
                raise StepFailed(f"unknown host @{name}")
            spec = self.expand(spec, "a host spec").strip()
            try:
                handle = resolve_host(name, spec, self.job)
            except BaseException as e:  # a machine it started before being cut short is the job's
                started = getattr(e, "started", None)
                if started and self.machines is not None:
                    from trainsh.runtime.machines import Machine

                    self.machines.add(Machine(name, started[0], started[1], "started", state="starting"))
                raise
        handle.tmux.hidden = self.hidden_env()
        self.hosts[name] = handle
        record = getattr(handle.shell, "machine", None)  # a cloud instance: journal it
        if record is not None and self.machines is not None:
            record(self, name)
        resolved = {**self.journal.job(self.job.id).hosts, name: handle.spec}
        self.journal.set_job(self.job.id, hosts=resolved)  # as reached, for status and attach
        return handle

    def session(self, name: str) -> tuple[Session, Tmux]:
        s = self.sessions.get(name)
        if s is None:
            raise StepFailed(f"session '{name}' is not open")
        return s, self.host(s.host).tmux

    def save_session(self, s: Session) -> None:
        cur = s.current
        pending = None if cur is None else {k: v for k, v in asdict(cur).items() if k != "output"}
        state = {"count": s.count, "log_offset": s.log_offset, "cmd_offset": s.cmd_offset,
                 "marker": s.marker, "current": pending}
        self.journal.session_state(self.job.id, s.name, state)


def local_tmux_socket() -> str | None:
    return os.environ.get("TRAINSH_TMUX_SOCKET") or None


PROVIDER_NAMES = {"vast": "Vast.ai", "runpod": "RunPod", "colab": "Colab", "slurm": "Slurm"}


def resolve_host(name: str, spec: str, job: Job) -> HostHandle:
    """A host spec -> how to reach it: `local`, or what runtime/reach.py makes of it."""
    from trainsh.runtime.reach import HostError, ssh_shell

    if spec == "local":
        shell = LocalShell()
        return HostHandle(name, spec, shell, Tmux(shell, local_tmux_socket()), str(job.folder / "run"))
    if spec == "placeholder":
        raise StepFailed(f"host @{name} is a placeholder: give it a machine with "
                         f"--host {name}=SPEC (or vast.pick)")
    try:
        shell = ssh_shell(spec)
    except HostError as e:
        failed = StepFailed(f"host @{name}: {e}")
        failed.started = getattr(e, "started", None)  # a machine it started all the same
        raise failed from None
    run_dir = f"{shell.home()}/.cache/trainsh/run/{job.id}"
    return HostHandle(name, str(shell.spec), shell, Tmux(shell), run_dir)


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
        from trainsh.runtime.reach import SCHEMES

        for mach in self.machines.all():  # a host a step gave a machine to: the same one on resume
            if mach.kind in SCHEMES and host_specs.get(mach.host, "").strip() == "placeholder":
                host_specs[mach.host] = f"{mach.kind}:{mach.ident}"
        self.ctx = Context(job, journal, events, console, recipe, variables, host_specs, storage_specs,
                           machines=self.machines)

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
        options.keep_sessions = options.keep_sessions or bool(job.options.get("keep_sessions"))
        options.keep_hosts = options.keep_hosts or bool(job.options.get("keep_hosts"))
        from trainsh.runtime.journal import process_start

        journal.set_job(job.id, status="running", pid=os.getpid(), error=None,
                        options={**job.options, "runner_start": process_start(os.getpid())})
        job = journal.job(job.id)
        runner = cls(journal, job, recipe, console, options)
        runner._restore()
        return runner

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

    def run(self) -> int:
        from trainsh.runtime import steps as handlers

        ctx, job = self.ctx, self.job
        done = {r["idx"]: r for r in self.journal.steps(job.id)}
        total = len(self.recipe.steps)
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

        def on_signal(signum, frame):
            raise Interrupted(signal.Signals(signum).name)

        for s in previous:
            signal.signal(s, on_signal)
        idx = 0
        try:
            ctx.events.record("info", f"job {job.id} started: {job.recipe_path}")
            for idx, step in enumerate(self.recipe.steps):
                row = done.get(idx)
                if row and (row["status"] in ("done", "background", "stopped")
                            or row["status"] == "failed" and row["detail"].get("background")):
                    continue  # (a background command that failed was reported; the job went on)
                resuming = row is not None and row["status"] in ("running", "interrupted")
                self.console.step(idx + 1, total, _describe(step))
                ctx.events.record("info", f"step {idx + 1}/{total} line {step.pos.line}: {step.source}")
                handler = handlers.handler_for(step)
                ctx.events.step = idx  # what is said meanwhile is this step's result
                try:
                    handler(ctx, idx, step, resume=row if resuming else None)
                except StepFailed as e:
                    self.console.live_done()
                    self.journal.step_finished(job.id, idx, "failed", e.exit_code,
                                               detail={**{k: v for k, v in (row or {}).get("detail", {}).items()
                                                          if k != "said"}, "error": str(e)})
                    return self._failed(idx, step, e)
                except (ShellError, config.ConfigError) as e:
                    self.console.live_done()
                    self.journal.step_finished(job.id, idx, "failed", None, detail={"error": str(e)})
                    return self._failed(idx, step, StepFailed(str(e)))
                except Exception as e:  # a bug or an odd case: the step fails, the job ends clean
                    self.console.live_done()
                    why = f"{type(e).__name__}: {e}"
                    self.journal.step_finished(job.id, idx, "failed", None, detail={"error": why})
                    if os.environ.get("TRAINSH_DEBUG"):
                        raise
                    return self._failed(idx, step, StepFailed(why))
                finally:
                    ctx.events.step = None
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
            self.journal.step_update(job.id, idx, status="interrupted")
            self.journal.set_job(job.id, status="interrupted", pid=None, error=f"interrupted ({why})")
            ctx.events.record("warning", f"job interrupted ({why}) at step {idx + 1}")
            self.console.fail(f"({why}) at step {idx + 1}; commands keep running in their tmux "
                              f"sessions. Resume with: train recipe resume {job.id}", "interrupted")
            self.machines.on_interrupted(self.console)
            return 130
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.remove_secret_files()
            ctx.events.close()

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

    def _failed(self, idx: int, step: Step, e: StepFailed) -> int:
        ctx, job = self.ctx, self.job
        ctx.events.step = None  # what follows is the job's end, not the step's result
        where = f"{os.path.basename(job.recipe_path)}:{step.pos.line}"
        message = masking.mask(str(e))
        self.journal.set_job(job.id, status="failed", pid=None, error=f"step {idx + 1} ({where}): {message}")
        ctx.events.record("error", f"step {idx + 1} ({where}) failed: {message}")
        self.console.fail(f"step {idx + 1} ({where}) {step.source}")
        self.console.plain(f"  {message}")
        if e.output:
            tail = e.output.splitlines()[-15:]
            self.console.plain("  last output:")
            self.console.output("\n".join(tail))
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


def attach_command(handle: HostHandle, real: str) -> str:
    return attach_line(handle.spec, real, handle.tmux.socket)


def attach_line(spec: str, real: str, socket: str | None = None) -> str:
    """How a user attaches to a session: tmux here, or tmux through ssh on a host."""
    if spec == "local":
        sock = f"-S {shlex.quote(socket)} " if socket else ""
        return f"tmux {sock}attach -t {real}"
    from trainsh.remote.sshspec import SpecError, SshSpec, ssh_argv

    try:
        argv = ssh_argv(SshSpec.parse(spec), f"tmux attach -t {real}", tty=True, batch=False)
    except SpecError:
        return f"ssh -t {spec} tmux attach -t {real}"
    # the options a user needs, not the connection-sharing ones
    keep, i = [], 1
    while i < len(argv):
        if argv[i] == "-o" and argv[i + 1].split("=")[0] in (
                "ControlMaster", "ControlPath", "ControlPersist", "ServerAliveInterval",
                "ServerAliveCountMax", "ConnectTimeout", "BatchMode"):
            i += 2
            continue
        keep.append(argv[i])
        i += 1
    return shlex.join(["ssh", *keep])


def _describe(step: Step) -> str:
    text = step.source.strip()
    return text if len(text) <= 100 else text[:97] + "..."
