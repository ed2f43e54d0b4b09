"""Slurm clusters: allocations held for a job, reached through the cluster's login host.

An allocation is made by `salloc --no-shell`, run detached on the login host: it returns the
job id at once (so `slurm.alloc` never blocks), and the allocation lasts until it is cancelled
or its time limit ends it.

A session on an allocation is a tmux session on the login host whose shell is
`srun --jobid=ID --overlap -N1 -n1 -w FIRST_NODE --pty bash`, with the allocation's SLURM_*
environment as a batch script would have it (written from `scontrol show job`): commands run on
the first node, and `srun` there spans the allocation. The run folder (exit codes, pane log, the
environment file) lives in the login user's home, which a Slurm cluster shares with its nodes;
waits on files and patterns and transfers go through the login host and see the same files.

Every Slurm command of a step is one ssh round trip to the login host.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from trainsh.kinds.slurm import FLAGS, TRUE, Spec, slurm_time
from trainsh.remote.shell import Shell
from trainsh.settings import hosts

# Allocation options as a recipe or `--host NAME=slurm:LOGIN?...` writes them -> salloc flags.
# `exclusive=true` is a flag alone; `extra="..."` is any other salloc options, split as a shell
# would and passed on as they are (Slurm checks them).
def salloc_args(options: dict[str, str]) -> list[str]:
    """The salloc arguments of checked allocation options."""
    argv = []
    for key, value in options.items():
        if key == "extra":
            argv += shlex.split(value)
        elif key == "exclusive":
            argv += [FLAGS[key]] if value.lower() in TRUE else []
        else:
            argv.append(f"{FLAGS[key]}={slurm_time(value) if key == 'time' else value}")
    return argv


class SlurmError(Exception):
    """Slurm said no, or is not there: one line naming the login host and Slurm's words."""


def _explain(where: str, tool: str, r) -> str:
    text = ((r.stderr or "") + "\n" + (r.stdout or "")).strip()
    if r.returncode == 127 or "command not found" in text or f"execute {tool}: No such file" in text \
            or "not found" in text.split("\n")[-1] and tool in text:
        return f"{where}: {tool} not found (is it a Slurm login host? install Slurm's client tools there)"
    # (a refused option is followed by 'Try "salloc --help" for more information')
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not re.match(r"Try .*--help", ln.strip())]
    errs = [ln for ln in lines if "error" in ln.lower()] or lines[-1:]
    said = []
    for ln in errs:  # each of Slurm's errors, in its order: the last alone can be the vaguer one
        ln = re.sub(r"^(sbatch|salloc|srun|squeue|scancel|sinfo|scontrol): (error: )?", "", ln)
        ln = re.sub(r"^(Batch job submission failed|Job submit/allocate failed): ", "", ln)
        if ln not in said:
            said.append(ln)
    return f"{where}: Slurm: {'; '.join(said) or f'exit {r.returncode}'}"


def run(sh: Shell, where: str, tool: str, argv: list[str], timeout: float = 60):
    r = sh.script(shlex.join(argv), timeout=timeout)  # (through sh: a missing tool is exit 127)
    if not r.ok:
        raise SlurmError(_explain(where, tool, r))
    return r


# ---- allocations ---------------------------------------------------------------------------

def env_file(run_dir: str) -> str:
    return f"{run_dir}/alloc.env"


def submit(sh: Shell, where: str, name: str, options: dict[str, str], run_dir: str) -> tuple[str, State]:
    """Ask for an allocation: its Slurm job id, and its state (RUNNING when granted at once;
    when pending, with its reason and what salloc said). Returns as soon as Slurm took the
    request.

    `salloc --no-shell` is scheduled at once when the cluster is free (a batch job waits for
    the scheduler's next pass, about a second), and holds the allocation after it exits. It
    runs detached on the login host; its first line naming the job says granted or pending. A
    granted allocation's sessions are prepared in the same round trip (`prepare_script`); a
    pending one's reason is read in it (Slurm sets it when it takes the request)."""
    q = shlex.quote
    argv = ["salloc", "--no-shell", f"--job-name={name}", *salloc_args(options)]
    out = q(f"{run_dir}/salloc.out")
    # (the loop reads the file with the shell's own `read`: no process per look)
    script = (f"command -v salloc >/dev/null || exit 127\n"
              f"mkdir -p {q(run_dir)} && cd {q(run_dir)} || exit 1\n"
              # (emptied first: the loop below must not read a lost allocation's answer, left
              # there before salloc's own redirection empties the file)
              f": > {out} || exit 1\n"
              f"setsid {shlex.join(argv)} > {out} 2>&1 < /dev/null & pid=$!\n"
              "job=\n"
              "while :; do\n"
              "  while IFS= read -r line; do\n"
              "    case $line in *'job allocation '[0-9]*) job=${line##* }; break 2;; esac\n"
              f"  done < {out}\n"
              f"  kill -0 $pid 2>/dev/null || {{ wait $pid; cat {out}; exit 1; }}\n"
              "  sleep 0.002\n"
              "done\n"
              f"cat {out}\n"
              f"case $line in Granted*|*': Granted'*) (\n{prepare_script('$job', run_dir)}) >&2 || "
              "echo 'trainsh: not prepared' >&2;;\n"
              f"*) echo '--state--'; squeue -h -j \"$job\" -o '{_FORMAT}' 2>&1;; esac\n")
    r = sh.script(script, timeout=60)
    said, _, pending = r.stdout.partition("--state--\n")
    found = re.search(r"job allocation (\d+)", said)
    if not found:
        if r.ok:
            r.returncode = 1
        raise SlurmError(_explain(where, "salloc", r))
    job = found.group(1)
    if "Granted job allocation" in said:
        if "trainsh: not prepared" not in r.stderr:
            _PREPARED.add((sh.name, job, run_dir))
        return job, State("RUNNING")
    lines = [ln.strip() for ln in pending.splitlines() if ln.strip()]
    try:
        st = _parse_state(where, lines[-1] if lines else "")
    except SlurmError:
        st = State("PENDING")
    # (what salloc said before naming the job: "Requested partition configuration not available now")
    before = said[:found.start()]
    before = before[:before.rfind("\n")] if "\n" in before else ""
    notes = [re.sub(r"^salloc: (error: )?", "", ln.strip()) for ln in before.splitlines()]
    st.said = "; ".join(n for n in notes if n)
    return job, st


_PREPARED: set[tuple[str, str, str]] = set()  # (login, job, run folder) whose sessions are ready


def prepared(sh: Shell, job: str, run_dir: str) -> bool:
    """Were this allocation's sessions prepared (by `submit`) in this process?"""
    return (sh.name, job, run_dir) in _PREPARED


@dataclass
class State:
    state: str  # PENDING, RUNNING, ... or GONE when Slurm no longer knows the job
    reason: str = ""
    nodes: str = ""
    partition: str = ""
    time_left: str = ""
    position: int | None = None  # among pending jobs of its partition, 1 = next
    num_nodes: str = ""  # nodes (asked for, while pending)
    num_cpus: str = ""  # CPUs (asked for, while pending)
    said: str = ""  # what salloc said of the request when it was taken, if anything

    @property
    def ended(self) -> bool:
        return self.state not in ("PENDING", "RUNNING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED")

    @property
    def code(self) -> str:
        """The reason's code alone (`ReqNodeNotAvail, UnavailableNodes:n1` -> ReqNodeNotAvail)."""
        return self.reason.split(",")[0].strip()


# squeue's line of one job: parsed by _parse_state
_FORMAT = "%T|%r|%N|%P|%L|%D|%C"


def _parse_state(where: str, line: str) -> State:
    if "Invalid job id" in line or not line:
        return State("GONE")
    if "|" not in line:
        raise SlurmError(f"{where}: Slurm: {line}")
    st, reason, nodes, partition, left, n, cpus = (line.split("|") + [""] * 7)[:7]
    return State(st, "" if reason == "None" else reason, nodes, partition, left, num_nodes=n, num_cpus=cpus)


def state(sh: Shell, where: str, job: str) -> State:
    """Where the allocation is, in one round trip. An ended job is named by how it ended
    (CANCELLED, TIMEOUT, NODE_FAIL ...) while the controller still remembers it (MinJobAge,
    300 s by default), GONE after that: squeue -j leaves out ended jobs, `scontrol show job`
    keeps them."""
    q = shlex.quote
    script = (f"out=$(squeue -h -j {q(job)} -o '{_FORMAT}' 2>&1); printf '%s\\n--\\n' \"$out\"; "
              "squeue -h -t PD -o '%i|%P' --sort=-p,i 2>/dev/null; echo '--'; "
              f"case $out in *'|'*) ;; *) scontrol show job -o {q(job)} 2>/dev/null;; esac")
    r = sh.script(script, timeout=60)
    if r.returncode == 127 or "command not found" in r.stdout + r.stderr:
        raise SlurmError(_explain(where, "squeue", r))
    mine, pending, shown = (r.stdout.split("--\n") + ["", ""])[:3]
    s = _parse_state(where, mine.strip().splitlines()[-1] if mine.strip() else "")
    ended = re.search(r"\bJobState=([A-Z_]+)", shown)
    if s.state == "GONE" and ended:
        s = State(ended.group(1))
    if s.state == "PENDING":
        ids = [ln.split("|")[0] for ln in pending.splitlines() if ln.endswith("|" + s.partition)]
        if job in ids:
            s.position = ids.index(job) + 1
    return s


# Pending reasons that never clear by themselves: only a changed request (or an administrator
# changing the cluster) lets such a job start, so waiting for it is waiting for its time-out.
# Settled from Slurm's "Job Reason Codes" page (job_reason_codes.html; squeue(1) "JOB REASON
# CODES"): see ARCHITECTURE.md. Each names what to change. Reasons not here may clear (Resources,
# Priority, Dependency, BeginTime, ReqNodeNotAvail and NodeDown while nodes are down, PartitionDown,
# held jobs, Assoc/QOS Grp* and per-user limits that other jobs ending frees) and are waited for.
NEVER = {
    "PartitionConfig": "{asked}does not fit partition {partition}'s nodes or limits: ask for fewer nodes, "
                       "tasks, CPUs, memory or GPUs, or another partition= (train slurm info shows them)",
    "PartitionTimeLimit": "time= is over partition {partition}'s time limit: ask for less, or another "
                          "partition= (train slurm info shows the limits)",
    "BadConstraints": "no node can meet the request: change constraint=, gres= or the options in extra=",
    "InvalidAccount": "the account is not valid here: change account=",
    "InvalidQOS": "the QOS is not valid here: change qos=",
    "AccountNotAllowed": "the account may not use partition {partition}: change account= or partition=",
    "QOSNotAllowed": "the QOS is not allowed for the account or partition {partition}: change qos= or "
                     "partition=",
    "DependencyNeverSatisfied": "the job it depends on ended so that it never will: change --dependency "
                                "in extra=",
    "ReservationDeleted": "the reservation it asked for is gone: change --reservation in extra=",
    "MaxMemPerLimit": "mem= is over the cluster's most memory per CPU or per node: ask for less",
}
# A request over a per-job or per-node limit of its account (association) or QOS, or under a
# QOS's minimum: e.g. AssocMaxNodePerJobLimit, QOSMaxWallDurationPerJobLimit, QOSMinGRES.
_NEVER_LIMIT = re.compile(r"(Assoc|QOS)Max\w*Per(Job|Node)(Limit)?|QOSMin\w+")


def never_starts(sh: Shell, where: str, s: State) -> str | None:
    """What to change, when a pending job's reason can never clear by itself; else None."""
    if s.state != "PENDING" or not s.code:
        return None
    asked = ", ".join(b for b in (s.num_nodes and f"{s.num_nodes} node{'s' * (s.num_nodes != '1')}",
                                  s.num_cpus and f"{s.num_cpus} CPU{'s' * (s.num_cpus != '1')}") if b)
    fill = {"partition": s.partition or "?", "asked": f"the request ({asked}) " if asked else "the request "}
    if s.code in NEVER:
        return NEVER[s.code].format(**fill)
    if _NEVER_LIMIT.fullmatch(s.code):
        what = "under a minimum" if s.code.startswith("QOSMin") else "over a per-job or per-node limit"
        return (f"the request is {what} of its {'QOS' if s.code.startswith('QOS') else 'account'}: change it "
                "(sacctmgr show qos / sacctmgr show assoc list the limits)")
    if s.code == "PartitionNodeLimit" and s.partition and s.num_nodes.isdigit():
        # over the partition's MaxNodes or all its nodes: never; else its nodes are down or
        # drained, and may come back
        r = sh.script(f"scontrol show partition -o {shlex.quote(s.partition)}", timeout=60)
        info = dict(kv.split("=", 1) for kv in r.stdout.split() if "=" in kv)
        for key in ("MaxNodes", "TotalNodes"):
            if info.get(key, "").isdigit() and int(s.num_nodes) > int(info[key]):
                what = "the most nodes a job may have" if key == "MaxNodes" else "all its nodes"
                return (f"{s.num_nodes} nodes is more than partition {s.partition} has for a job ({what}: "
                        f"{info[key]}): ask for fewer nodes, or another partition=")
    return None


def live_named(sh: Shell, where: str, name: str) -> list[str]:
    """The ids of the login user's jobs named `name` that have not ended, oldest first."""
    r = run(sh, where, "squeue", ["squeue", "-h", "-n", name, "-o", "%i|%T", "--sort=i"])
    found = [ln.split("|") for ln in r.stdout.split() if "|" in ln]
    return [i for i, st in found if not State(st).ended]


def cancel(sh: Shell, where: str, job: str) -> bool:
    """scancel the job; False when Slurm does not know it (ended long ago, or never was):
    scancel itself says nothing then."""
    q = shlex.quote(job)
    r = sh.script(f"known=$(squeue -h -j {q} -o %T 2>&1); scancel {q} || exit $?; echo \"$known\"",
                  timeout=60)
    if not r.ok:
        raise SlurmError(_explain(where, "scancel", r))
    return "Invalid job id" not in r.stdout and bool(r.stdout.strip())


def host_spec(spec: str) -> str | None:
    """The `slurm:LOGIN?...` spec a host spec stands for: itself, or a hosts.toml entry of
    kind slurm (its ssh fields reach the login host, `slurm = "nodes=2&time=4h"` the options);
    None for any other host."""
    spec = spec.strip()
    if spec.startswith("slurm:"):
        return spec
    if not spec or spec == "local" or " " in spec or "@" in spec or ":" in spec:
        return None
    entry = hosts.get(spec)
    if not entry or entry.get("kind") != "slurm":
        return None
    options = entry.get("slurm") or ""
    return f"slurm:{hosts.spec_text(entry)}" + (f"?{options}" if options else "")


def login_of(host: str) -> str:
    """The login host of a `train slurm HOST` argument."""
    spec = host_spec(host)
    return Spec.parse(spec[len("slurm:"):]).login if spec else host


# The pane log is written on the login host (pipe-pane), but a command's end is signalled
# (`tmux wait-for -S CHANNEL`) by the shell on the node, which cannot reach the login host's
# tmux. So in an allocation's shell that signal is a no-op, and the pane log's writer on the
# login host signals instead when the end marker (ESC ] 778 ; CHANNEL BEL) goes by.
# It starts beside the session's `srun`, and must be up before that shell's first command
# ends: so only `os` and `sys` (python -I -S starts in about 10 ms; with `re` and `subprocess`
# and a site folder, several times that).
RELAY = r"""
import os, sys
log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
tmux = sys.argv[2:] or ["tmux"]
head, ok = b"\x1b]778;", set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
carry = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    view = memoryview(chunk)
    while view:
        view = view[os.write(log, view):]
    data, pos, last = carry + chunk, 0, 0
    while True:
        i = data.find(head, pos)
        j = data.find(b"\x07", i + len(head)) if i >= 0 else -1
        if j < 0:
            break
        channel, pos = data[i + len(head):j], i + 1
        if 0 < len(channel) <= 200 and set(channel) <= ok:
            pid = os.fork()  # (not posix_spawnp: login hosts with python 3.6 are common)
            if pid == 0:
                try:
                    os.execvp(tmux[0], tmux + ["wait-for", "-S", channel.decode()])
                finally:
                    os._exit(127)
            os.waitpid(pid, 0)
            pos = last = j + 1
    carry = data[max(last, len(data) - 256):]
"""

# The login host's own python for the relay: a python3 found first on PATH may be a version
# manager's shim (pyenv's costs some 60 ms before python even starts).
PYTHON = "p=/usr/bin/python3; [ -x $p ] || p=python3; exec $p -I -S -u"


# What an allocation's shell keeps of the SLURM_* variables its srun step gives it; the rest
# describe that one-node, one-task step and would confine a nested srun to it.
KEEP = ("SLURM_CONF", "SLURM_CLUSTER_NAME", "SLURM_WORKING_CLUSTER", "SLURM_JOB_UID", "SLURM_JOB_GID",
        "SLURM_JOB_USER", "SLURM_CPUS_ON_NODE", "SLURM_TOPOLOGY_ADDR", "SLURM_TOPOLOGY_ADDR_PATTERN",
        "SLURM_SUBMIT_DIR", "SLURM_SUBMIT_HOST", "SLURM_PRIO_PROCESS")


def prepare_script(job: str, run_dir: str) -> str:
    """Writes what an allocation's sessions need, in one round trip: the allocation's
    environment as a batch script would have it (from `scontrol show job`), the shell's rc
    file that puts it in place, and the log relay. `job` is a job id or a shell word for one
    (`$job`). One Slurm call; the rest is the shell's own."""
    q = shlex.quote
    f = env_file(run_dir)
    keep = "|".join(KEEP)
    rcfile = ("for v in $(compgen -e); do case $v in " + keep + ") ;; SLURM_*) unset $v;; esac; done\n"
              f". {q(f)}\n"
              "[ -f ~/.bashrc ] && . ~/.bashrc\n"
              'tmux() { if [ "$1" = wait-for ]; then return 0; fi; command tmux "$@"; }\n')
    jid = job if job.startswith("$") else q(job)
    env = (f"info=$(scontrol show job -o {jid}) || exit 1\n"
           "set -f; nodes= n= cpt= tpn= part= nt= ntpn=\n"  # (a node list like n[1-2] is no glob)
           "for kv in $info; do case $kv in NodeList=*) nodes=${kv#*=};; NumNodes=*) n=${kv#*=};; "
           "CPUs/Task=*) cpt=${kv#*=};; TresPerNode=*) tpn=${kv#*=};; Partition=*) part=${kv#*=};; "
           "NumTasks=*) nt=${kv#*=};; NtasksPerN:*) ntpn=${kv#*=}; ntpn=${ntpn%%:*};; "
           "esac; done; set +f; n=${n%%-*}\n"
           'case $nodes in *[[,]*) first=$(scontrol show hostnames "$nodes" | head -n 1);; '
           "*) first=$nodes;; esac\n"
           f"{{ echo \"export SLURM_JOB_ID={jid} SLURM_JOBID={jid} SLURM_JOB_NODELIST='$nodes' "
           "SLURM_NODELIST='$nodes' SLURM_JOB_NUM_NODES=$n SLURM_NNODES=$n "
           "SLURM_JOB_PARTITION='$part' TRAINSH_FIRST_NODE='$first'\"\n"
           "  [ \"${cpt:-1}\" -gt 1 ] 2>/dev/null && echo \"export SLURM_CPUS_PER_TASK=$cpt\"\n"
           # (tasks asked for, as a batch script has them: a plain `srun` starts that many; Slurm
           # counts one a node when none were asked for, which is srun's own default)
           "  [ \"${nt:-1}\" -gt \"${n:-1}\" ] 2>/dev/null && echo \"export SLURM_NTASKS=$nt SLURM_NPROCS=$nt\"\n"
           "  [ \"${ntpn:-0}\" -gt 0 ] 2>/dev/null && echo \"export SLURM_NTASKS_PER_NODE=$ntpn\"\n"
           "  case $tpn in *gpu:*) echo \"export SLURM_GPUS_PER_NODE=${tpn##*:}\";; esac\n"
           f"}} > {q(f)}.tmp && mv {q(f)}.tmp {q(f)}\n")
    return (f"mkdir -p {q(run_dir)} || exit 1\n{env}"
            f"printf %s {q(rcfile)} > {q(run_dir + '/alloc.bashrc')} && "
            f"cat > {q(run_dir + '/relay.py')} <<'TRAINSH_EOF'\n{RELAY}\nTRAINSH_EOF\n")


def log_command(run_dir: str, socket: str | None) -> str:
    """pipe-pane's writer of an allocation session's log: see RELAY."""
    tmux = ["tmux", "-S", socket] if socket else []
    return f"{PYTHON} {shlex.quote(run_dir + '/relay.py')} {{log}} {shlex.join(tmux)}".rstrip()


def pane_command(job: str, run_dir: str) -> str:
    """The shell of a session in the allocation: on its first node, with its environment."""
    q = shlex.quote
    return (f". {q(env_file(run_dir))}; exec srun --jobid={q(job)} --overlap -N1 -n1 "
            f"-w \"$TRAINSH_FIRST_NODE\" --pty bash --rcfile {q(run_dir + '/alloc.bashrc')} -i")


class NodeShell:
    """The login host's shell, running each command on the allocation's first node (one srun
    step): where a port wait must look. Enough of a Shell for remote/waits.py."""

    def __init__(self, login: Shell, run_dir: str):
        self.login = login
        self.env_file = env_file(run_dir)
        self.name = login.name

    def is_local(self) -> bool:
        return False  # another machine: its python is `python3`, not ours

    def run(self, argv: list[str], **kw):
        node = ('. "$1"; shift; exec srun --jobid="$SLURM_JOB_ID" --overlap -N1 -n1 '
                '-w "$TRAINSH_FIRST_NODE" --quiet "$@"')
        return self.login.run(["sh", "-c", node, "sh", self.env_file, *argv], **kw)
