"""Handlers of `train slurm`: a cluster's partitions and nodes, your jobs on it (with the
trainsh job that made each allocation), and cancelling one. HOST is the cluster's login host:
`local`, an ssh spec or alias, a hosts.toml name (of kind slurm too)."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import re

from trainsh.cli.common import UserError
from trainsh.numbers import digits


def dispatch(args) -> int:
    from trainsh.cloud.slurm import SlurmError
    from trainsh.remote.shell import ShellError
    from trainsh.runtime.reach import HostError
    from trainsh.settings.hosts import HostsError

    try:
        return HANDLERS[args.cmd](args)
    except (HostError, HostsError) as e:
        raise UserError(str(e)) from None
    except (SlurmError, ShellError) as e:
        raise UserError(str(e), 1) from None


def _login(host: str):
    from trainsh.cloud import slurm
    from trainsh.kinds import spec_problem

    login = slurm.login_of(host)
    problem = None if login == "local" else spec_problem(login)
    if problem:
        raise UserError(f"host {host}: {problem[1]}")
    from trainsh.runtime.reach.slurm import login_shell

    sh = login_shell(login)
    return login, sh, (login if sh.is_local() else sh.name)


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def info(args) -> int:
    from trainsh.cloud import slurm

    _, sh, where = _login(args.host)
    r = slurm.run(sh, where, "sinfo", ["sinfo", "-h", "-o", "%P|%a|%l|%F|%G"])
    rows = [["PARTITION", "STATE", "TIME LIMIT", "NODES", "ALLOCATED", "IDLE", "OTHER", "GPUS/NODE"]]
    for line in r.stdout.splitlines():
        part, avail, limit, counts, gres = (line.split("|") + [""] * 5)[:5]
        a, i, o, t = (counts.split("/") + ["?"] * 4)[:4]
        gpus = ",".join(m.group(1) for m in re.finditer(r"gpu(?::[^:,(]+)?:(\d+)", gres)) or "-"
        rows.append([part, avail, limit, t, a, i, o, gpus])
    _table(rows)
    return 0


def _made_by() -> dict[str, str]:
    """Slurm job id -> the trainsh job and host that allocated it (from the journal)."""
    from trainsh.runtime.journal import Journal

    j = Journal()
    try:
        from trainsh.runtime.machines import SCHEMA

        j.db.executescript(SCHEMA)
        rows = j.db.execute("SELECT job_id, host, ident FROM machines WHERE kind='slurm'").fetchall()
        return {r["ident"]: f"{r['job_id']} @{r['host']}" for r in rows}
    finally:
        j.close()


def queue(args) -> int:
    from trainsh.cloud import slurm

    _, sh, where = _login(args.host)
    r = slurm.run(sh, where, "squeue", ["squeue", "-h", "--me", "-o", "%i|%j|%T|%M|%L|%D|%R"])
    made = _made_by()
    rows = [["JOBID", "NAME", "STATE", "TIME", "LEFT", "NODES", "NODELIST(REASON)", "TRAINSH JOB"]]
    for line in r.stdout.splitlines():
        cols = (line.split("|") + [""] * 7)[:7]
        by = made.get(cols[0])
        if by is None:
            m = re.fullmatch(r"trainsh-([0-9a-f]+)-(.+)", cols[1])
            by = f"{m.group(1)} @{m.group(2)}" if m else "-"
        rows.append([*cols, by])
    if len(rows) == 1:
        print(f"no jobs of yours on {where}")
        return 0
    _table(rows)
    return 0


def cancel(args) -> int:
    from trainsh.cloud import slurm

    if not digits(args.jobid):
        raise UserError(f"bad Slurm job id '{args.jobid}' (a number: train slurm queue shows them)")
    login, sh, where = _login(args.host)
    if not slurm.cancel(sh, where, args.jobid):
        raise UserError(f"{where}: Slurm knows no job {args.jobid} (it ended, or never was; "
                        f"train slurm queue {args.host} lists yours)", 1)
    from trainsh.runtime.journal import Journal

    j = Journal()
    try:
        from trainsh.runtime.machines import SCHEMA

        j.db.executescript(SCHEMA)
        j.db.execute("UPDATE machines SET state='released' WHERE kind='slurm' AND ident=?",
                     (args.jobid,))
    finally:
        j.close()
    print(f"slurm job {args.jobid} on {where}: cancelled")
    return 0


HANDLERS = {"info": info, "queue": queue, "cancel": cancel}
