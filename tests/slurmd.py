"""A real Slurm cluster on this machine for tests and benchmarks: munged, slurmctld and two
slurmd (nodes n1 and n2, both on 127.0.0.1 with their own ports) from a generated slurm.conf in
a temporary folder, plus a login host: an sshd on loopback whose logins see that slurm.conf
(SLURM_CONF through sshd's SetEnv). Idle about a second after start; `stop` ends every daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sshd

NODES = ("n1", "n2")


def available() -> str | None:
    """Why a cluster cannot run here, or None."""
    if os.getuid() != 0:
        return "needs root"
    for tool in ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"):
        if not os.path.exists(tool):
            return "needs slurm-wlm and munge (./dev test installs them)"
    return None


@dataclass
class Cluster:
    base: Path
    conf: Path
    login: sshd.Server | None = None
    pids: list[Path] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        argv = (f"/usr/bin/{argv[0]}", *argv[1:])  # whatever PATH a test has set
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30)

    def jobs(self) -> list[str]:
        return self.run("squeue", "-h", "-o", "%i|%T|%j").stdout.split()

    def cancel_all(self) -> None:
        self.run("scancel", "--user", "root")
        deadline = time.monotonic() + 10
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.1)


def _conf(base: Path, ctld_port: int, node_ports: list[int]) -> str:
    nodes = "\n".join(f"NodeName={n} NodeAddr=127.0.0.1 Port={p} CPUs=2 RealMemory=1000"
                      for n, p in zip(NODES, node_ports))
    return f"""ClusterName=trainsh
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge/sock
CredType=cred/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool/%n
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd-%n.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=30
KillWait=2
{nodes}
PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP
"""


def _daemon(argv: list[str], env: dict | None = None) -> None:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} did not start: {(r.stderr or r.stdout).strip()}")


def start(ssh: sshd.SshEnv | None = None) -> Cluster:
    base = Path(tempfile.mkdtemp(prefix="tslurm", dir="/tmp"))
    for d in ("munge", "state", "spool", "log"):
        (base / d).mkdir()
    os.chmod(base, 0o755)  # munged wants its socket reachable by all, its folder not writable
    os.chmod(base / "munge", 0o755)
    key = base / "munge" / "key"
    key.write_bytes(os.urandom(128))
    os.chmod(key, 0o600)
    conf = base / "slurm.conf"
    conf.write_text(_conf(base, sshd.free_port(), [sshd.free_port() for _ in NODES]))
    cluster = Cluster(base, conf)
    try:
        _daemon(["/usr/sbin/munged", f"--socket={base}/munge/sock", f"--key-file={key}",
                 f"--log-file={base}/munge/log", f"--pid-file={base}/munge/pid",
                 f"--seed-file={base}/munge/seed"])
        cluster.pids.append(base / "munge" / "pid")
        env = cluster.env
        _daemon(["/usr/sbin/slurmctld", "-c", "-i"], env)
        cluster.pids.append(base / "slurmctld.pid")
        for n in NODES:
            _daemon(["/usr/sbin/slurmd", "-N", n], env)
            cluster.pids.append(base / f"slurmd-{n}.pid")
        deadline = time.monotonic() + 30
        while True:  # ready when every node is idle
            r = cluster.run("sinfo", "-h", "-N", "-o", "%N %t")
            states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
            if len(states) == len(NODES) and all(s == "idle" for s in states.values()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm did not come up: {r.stdout} {r.stderr}")
            time.sleep(0.1)
        if ssh is not None:
            cluster.login = _login_server(ssh, base, conf)
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _login_server(ssh: sshd.SshEnv, base: Path, conf: Path) -> sshd.Server:
    """An sshd whose logins find this cluster: the cluster's login host."""
    home, tmux_dir = base / "home", base / "tmux"
    home.mkdir()
    tmux_dir.mkdir()
    os.chmod(tmux_dir, 0o1777)
    port = sshd.free_port()
    cfg = base / "sshd_login"
    cfg.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {ssh.base}/host
PidFile {base}/sshd.pid
AuthorizedKeysFile {ssh.base}/keys/%u
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv HOME={home} TMUX_TMPDIR={tmux_dir} SLURM_CONF={conf}
Subsystem sftp /usr/lib/openssh/sftp-server
""")
    subprocess.run(["/usr/sbin/sshd", "-f", str(cfg), "-E", str(base / "sshd.log")], check=True)
    server = sshd.Server("login", port, home, tmux_dir, base / "sshd.pid")
    deadline = time.monotonic() + 10
    while subprocess.run(["ssh", "-F", str(ssh.config), "-p", str(port), "-o", "BatchMode=yes",
                          "root@127.0.0.1", "true"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the login sshd did not come up")
        time.sleep(0.05)
    return server


def stop(cluster: Cluster) -> None:
    try:
        cluster.cancel_all()
    except Exception:
        pass
    if cluster.login is not None:
        for sock in cluster.login.tmux_dir.glob("tmux-*/*"):
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
        cluster.login.stop()
    for pidfile in reversed(cluster.pids):  # slurmd, slurmctld, then munged
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 15)
        except OSError:
            continue
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.05)
    shutil.rmtree(cluster.base, ignore_errors=True)
