"""Real sshd servers on loopback for tests: keys, a client config, users, cleanup.

Two servers (A and B) on free ports. Logins get HOME and TMUX_TMPDIR inside the test folder
(sshd's SetEnv), so nothing lands in a real home folder and remote tmux servers are private.
B also admits a non-root user. The client config (ssh -F) keeps known_hosts in the test folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A token of this run (the pytest process and a random part): the system users the tests make
# are this run's alone, so two runs at once (of one checkout or two) never re-point or kill each
# other's. Each run creates its users and removes them when it ends.
RUN_TOKEN = f"{os.getpid()}-{secrets.token_hex(2)}"
_USER_RE = re.compile(r"^trainsh-[a-z]+-(\d+)-[0-9a-f]{4}$")


def run_user(kind: str) -> str:
    """The name of this run's system user for `kind` (at most 32 characters)."""
    return f"trainsh-{kind}-{RUN_TOKEN}"


def make_user(name: str, home: Path, password: str | None = None) -> None:
    """Create this run's user `name` with HOME `home` (made by the caller), after removing the
    users a run that died without cleaning up left behind (their run's process is gone)."""
    for entry in pwd.getpwall():
        m = _USER_RE.match(entry.pw_name)
        if m and entry.pw_name != name and not _alive(int(m.group(1))):
            remove_user(entry.pw_name)
    try:
        pwd.getpwnam(name)  # made by an earlier start in this run: this run's own to re-point
        subprocess.run(["usermod", "-d", str(home), name], check=True, capture_output=True)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/bash", "-p", "*", name],
                       check=True, capture_output=True)
    if password is not None:
        subprocess.run(["chpasswd"], input=f"{name}:{password}", text=True, check=True)


def remove_user(name: str) -> None:
    """Stop every process of `name` (a user of one run only) and delete the user."""
    if not _USER_RE.match(name):
        raise ValueError(f"not a test user: {name}")
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    for _ in range(100):
        if subprocess.run(["userdel", name], capture_output=True).returncode in (0, 6):
            return  # (6: no such user)
        time.sleep(0.05)  # a process of the user still ending


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


USER = run_user("test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKSPACE = "/workspace"


def with_own_workspace(argv: list[str], folder: Path | str) -> list[str]:
    """`argv` (a machine's sshd) in a mount namespace of its own where `folder` is bound at
    /workspace, so a fake machine's /workspace is its own, as a cloud machine's is: what its
    logins write there lands in `folder`, and neither this machine's real /workspace (if any)
    nor another machine's is seen. The namespace's mounts are private (nothing propagates
    back); it goes when its last process (sshd, logins, what they started) does. `exec` keeps
    the pid: it is sshd's own. The mount point is made if this machine has none (an empty
    folder, left in place: another run's machines may be using it)."""
    os.makedirs(WORKSPACE, exist_ok=True)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount --bind "$0" {WORKSPACE} && exec "$@"', str(folder), *argv]


def in_machine(pid: int, argv: list[str]) -> list[str]:
    """`argv` run in the mount namespace of a fake machine's sshd `pid` (its /workspace)."""
    return ["nsenter", f"--target={pid}", "--mount", "--", *argv]


@dataclass
class Server:
    name: str
    port: int
    home: Path
    tmux_dir: Path
    pidfile: Path

    def spec(self, user: str = "root") -> str:
        return f"{user}@127.0.0.1 -p {self.port}"

    def stop(self) -> None:
        try:
            os.kill(int(self.pidfile.read_text()), 15)
        except (OSError, ValueError):
            pass


@dataclass
class SshEnv:
    base: Path
    config: Path
    a: Server
    b: Server

    def kill_remote_tmux(self) -> None:
        for server in (self.a, self.b):
            for sock in server.tmux_dir.glob("tmux-*/*"):
                subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)


def config_text(port: int, host_key: Path | str, authorized_keys: str, env: dict,
                pidfile: Path | str | None = None) -> str:
    """An sshd_config for a key-only server on loopback; `env` is set in every login (SetEnv)."""
    setenv = " ".join(f"{k}={v}" for k, v in env.items())
    return f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
{f"PidFile {pidfile}" if pidfile else "PidFile none"}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv LANG
SetEnv {setenv}
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def start(base: Path | None = None) -> SshEnv:
    base = base or Path(tempfile.mkdtemp(prefix="tssh", dir="/tmp"))
    keys = base / "keys"
    keys.mkdir(parents=True)
    os.makedirs("/run/sshd", exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "client")], check=True)
    pub = (base / "client.pub").read_text()
    for user in ("root", USER):
        (keys / user).write_text(pub)
    config = base / "ssh_config"
    config.write_text(f"""Host *
  UserKnownHostsFile {base}/known_hosts
  StrictHostKeyChecking accept-new
  IdentityFile {base}/client
  IdentitiesOnly yes
  LogLevel ERROR
""")
    servers = []
    for name in ("a", "b"):
        home = base / f"home-{name}"
        tmux_dir = base / f"tmux-{name}"
        home.mkdir()
        tmux_dir.mkdir(mode=0o1777)
        os.chmod(tmux_dir, 0o1777)
        port = free_port()
        cfg = base / f"sshd_{name}"
        cfg.write_text(config_text(port, base / "host", f"{keys}/%u", {"HOME": home, "TMUX_TMPDIR": tmux_dir},
                                   pidfile=base / f"sshd_{name}.pid"))
        subprocess.run(["/usr/sbin/sshd", "-f", str(cfg), "-E", str(base / f"sshd_{name}.log")], check=True)
        servers.append(Server(name, port, home, tmux_dir, base / f"sshd_{name}.pid"))
    make_user(USER, servers[1].home)
    shutil.chown(servers[1].home, USER)
    os.chmod(base, 0o755)
    env = SshEnv(base, config, servers[0], servers[1])
    for server in servers:  # ready when a login works
        deadline = time.monotonic() + 10
        while True:
            r = subprocess.run(["ssh", "-F", str(config), "-p", str(server.port), "-o", "BatchMode=yes",
                                "root@127.0.0.1", "true"], capture_output=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd {server.name} did not come up: {r.stderr.decode()}")
            time.sleep(0.05)
    return env


def stop(env: SshEnv) -> None:
    env.kill_remote_tmux()
    for server in (env.a, env.b):
        server.stop()
    remove_user(USER)
    shutil.rmtree(env.base, ignore_errors=True)


def close_masters(control: Path | str) -> None:
    """End the ssh connection masters whose sockets are in `control`, and the folder."""
    control = Path(control)
    if control.is_dir():
        for sock in control.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
    shutil.rmtree(control, ignore_errors=True)


@contextlib.contextmanager
def running():
    """Start the servers and point this process's ssh at them (its own client config and
    connection folder); stop everything on the way out, whatever happens."""
    env = start()
    control = tempfile.mkdtemp(prefix="tsbc", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("TRAINSH_SSH_OPTIONS", "TRAINSH_SSH_CONTROL_DIR")}
    os.environ["TRAINSH_SSH_OPTIONS"] = f"-F {env.config}"
    os.environ["TRAINSH_SSH_CONTROL_DIR"] = control
    try:
        yield env
    finally:
        close_masters(control)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop(env)
