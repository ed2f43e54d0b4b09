"""SSH destinations and the one place that builds ssh command lines (rsync uses them too).

Every connection goes through the user's OpenSSH client (so ~/.ssh/config, ProxyJump,
IdentityFile and the agent all work) with connection sharing: ControlMaster=auto, a short
ControlPath with %C, ControlPersist, keep-alives, and BatchMode for non-interactive calls.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from trainsh.kinds.ssh import hostname_problem
from trainsh.numbers import digits
from trainsh.settings import config, paths


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class SshSpec:
    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None
    jump: str | None = None
    options: tuple[str, ...] = field(default=())  # "Key=Value"
    askpass: str | None = None  # a program that prints the password (hosts that take no keys)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        parts = [self.destination]
        if self.port:
            parts += ["-p", str(self.port)]
        if self.key:
            parts += ["-i", self.key]
        if self.jump:
            parts += ["-J", self.jump]
        for o in self.options:
            parts += ["-o", o]
        return shlex.join(parts)

    @classmethod
    def parse(cls, spec: str) -> SshSpec:
        """`[user@]host [-p PORT] [-i KEY] [-J JUMP] [-o Opt=Val]...`"""
        try:
            toks = shlex.split(spec)
        except ValueError as e:
            raise SpecError(f"bad ssh spec '{spec}': {e}") from None
        if not toks or toks[0].startswith("-"):
            raise SpecError(f"bad ssh spec '{spec}': start with [user@]host")
        user, at, host = toks[0].rpartition("@")
        if at and not user:
            raise SpecError(f"bad ssh spec '{spec}': no user before '@'")
        problem = hostname_problem(host)
        if problem:
            raise SpecError(f"bad ssh spec '{spec}': {problem}")
        port = key = jump = None
        options: list[str] = []
        i = 1
        while i < len(toks):
            t = toks[i]
            flag, value = t[:2], t[2:]
            if flag in ("-p", "-i", "-J", "-o"):
                if not value:
                    i += 1
                    if i >= len(toks):
                        raise SpecError(f"bad ssh spec '{spec}': {flag} needs a value")
                    value = toks[i]
                if flag == "-p":
                    if not digits(value) or not 0 < int(value) < 65536:
                        raise SpecError(f"bad ssh spec '{spec}': bad port '{value}'")
                    port = int(value)
                elif flag == "-i":
                    key = os.path.expanduser(value)
                elif flag == "-J":
                    jump = value
                else:
                    options.append(value.replace(" ", "=", 1) if "=" not in value else value)
            else:
                raise SpecError(f"bad ssh spec '{spec}': unknown option '{t}'")
            i += 1
        return cls(host, user or None, port, key, jump, tuple(options))


def control_dir() -> str:
    """A short private folder for ControlPath sockets (sun_path is ~108 bytes)."""
    d = os.environ.get("TRAINSH_SSH_CONTROL_DIR") or f"/tmp/trainsh-{os.getuid()}"
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def ssh_options(spec: SshSpec, *, batch: bool = True, persist: str = "300") -> list[str]:
    """Options shared by ssh, rsync's -e and unison's -sshargs."""
    opts = [
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={control_dir()}/%C",
        "-o", f"ControlPersist={persist}",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
        "-o", "ConnectTimeout=10",
    ]
    if batch and not spec.askpass:  # BatchMode would forbid the password
        opts += ["-o", "BatchMode=yes"]
    if spec.port:
        opts += ["-p", str(spec.port)]
    key = spec.key or _default_key()
    if key:
        opts += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if spec.jump:
        opts += ["-J", spec.jump]
    for o in spec.options:
        opts += ["-o", o]
    extra = os.environ.get("TRAINSH_SSH_OPTIONS")  # e.g. a test's -F config
    if extra:
        opts += shlex.split(extra)
    return opts


def _default_key() -> str:
    """config `ssh.key`: the identity for hosts that name none (else ssh's own choice)."""
    try:
        key = config.get("ssh.key")
    except config.ConfigError:
        return ""
    return os.path.expanduser(key) if key else ""


def known_hosts_file() -> str:
    """trainsh's own known_hosts, for rented cloud machines: their addresses and ports pass from
    one renter to the next, so their keys stay out of the user's ~/.ssh/known_hosts."""
    return str(paths.ensure(paths.home()) / "known_hosts")


def cloud_spec(user: str, host: str, port: int, alias: str, key: str | None = None) -> SshSpec:
    """A rented machine. Its host key is accepted on first use and kept in `known_hosts_file()`
    under `alias` (the instance, e.g. `vast-123`), not under host:port: a new machine behind a
    reused proxy port is a new alias, not a changed key. Every new machine is a first
    connection, so ssh's "Permanently added" warning is left out (LogLevel=ERROR)."""
    path = known_hosts_file()
    if " " in path:
        path = f'"{path}"'
    return SshSpec(host, user, port, key, None, (f"UserKnownHostsFile={path}",
                                                 "StrictHostKeyChecking=accept-new",
                                                 f"HostKeyAlias={alias}", "LogLevel=ERROR"))


def ssh_argv(spec: SshSpec, remote: str | None = None, *, tty: bool = False,
             batch: bool = True) -> list[str]:
    argv = [*ssh_program(spec), *ssh_options(spec, batch=batch)]
    if tty:
        argv.append("-t")
    argv.append(spec.destination)
    if remote is not None:
        argv += ["--", remote]
    return argv


def rsync_rsh(spec: SshSpec) -> str:
    """The `-e` value for rsync: the same ssh, options and shared connection."""
    return shlex.join([*ssh_program(spec), *ssh_options(spec)])


def ssh_program(spec: SshSpec) -> list[str]:
    """`ssh`, or for a password host `env SSH_ASKPASS=PROGRAM SSH_ASKPASS_REQUIRE=force ssh`:
    the password then comes from that program, never from an argv or a terminal."""
    if not spec.askpass:
        return ["ssh"]
    return ["env", f"SSH_ASKPASS={spec.askpass}", "SSH_ASKPASS_REQUIRE=force", "ssh"]
