"""What a job's steps see while it runs (`Context`), and how a job reaches its hosts.

The Runner (runner.py) makes one Context per job and hands it to every step's handler
(steps.py, clouds.py, allocations.py); none of them imports the runner.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from trainsh import masking
from trainsh.recipe.expand import ExpandError, expand, secret_names
from trainsh.recipe.model import Recipe
from trainsh.remote.shell import LocalShell, Shell
from trainsh.remote.sshspec import SpecError, SshSpec, ssh_argv
from trainsh.remote.tmux import Session, Tmux
from trainsh.runtime.events import Events
from trainsh.runtime.feed import Console
from trainsh.runtime.journal import Job, Journal
from trainsh.runtime.machines import Machine, Machines
from trainsh.runtime.reach import HostError, ssh_shell
from trainsh.settings import secrets


class StepFailed(Exception):
    """A step did not do what it should; the job stops here."""

    def __init__(self, message: str, exit_code: int | None = None, output: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.output = output


class TimedOut(StepFailed):
    """A step's timeout ran out (a command, a wait): Python recipes tell it from other failures."""


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop now, keep what runs remotely, leave the job resumable."""


@dataclass
class RunOptions:
    keep_sessions: bool = False
    keep_hosts: bool = False  # a failed job leaves the machines it brought up running
    autostop: float | None = None  # seconds idle before a cloud machine stops itself (0: never)
    recover: int | None = None  # losses of a picked machine a job survives, where a pick says none
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
    hidden: set[str] = field(default_factory=set)  # secrets a program names (not in the recipe text)
    # hosts that are no spec to resolve but a machine the job holds (a Slurm allocation):
    # name -> handle, or None when `name` is not one (the runner gives allocations.host_handle)
    held: Callable[[Context, str], HostHandle | None] = lambda ctx, name: None

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
        return {"TRAINSH_PASSPHRASE", *secret_names(self.recipe.text), *self.hidden}

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
        handle = self.held(self, name) if name != "local" else None  # its spec: the login host's
        if handle is None:
            spec = "local" if name == "local" else self.host_specs.get(name)
            if spec is None:
                raise StepFailed(f"unknown host @{name}")
            spec = self.expand(spec, "a host spec").strip()
            try:
                handle = resolve_host(name, spec, self.job)
            except BaseException as e:  # a machine it started before being cut short is the job's
                started = getattr(e, "started", None)
                if started and self.machines is not None:
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


def resolve_host(name: str, spec: str, job: Job) -> HostHandle:
    """A host spec -> how to reach it: `local`, or what runtime/reach/ makes of it."""
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


def attach_command(handle: HostHandle, real: str) -> str:
    return attach_line(handle.spec, real, handle.tmux.socket)


def attach_line(spec: str, real: str, socket: str | None = None) -> str:
    """How a user attaches to a session: tmux here, or tmux through ssh on a host."""
    if spec == "local":
        sock = f"-S {shlex.quote(socket)} " if socket else ""
        return f"tmux {sock}attach -t {real}"
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
