"""Host kinds, the reach half: from a host spec to an ssh shell that reaches it, and how a
machine of each kind that a job brought up is released and described (base.Kind).

REACH lists the kinds by scheme, each one module beside this one; an ssh destination, alias
or hosts.toml name (no scheme) is ssh.py. The spec half (what a spec looks like, checked with
no side effects) is trainsh/kinds/ under the same names. Recipes, `train exec`, `train
transfer` and `train host` all reach hosts through `ssh_shell`, so a kind added here works
everywhere at once.
"""

from __future__ import annotations

from trainsh.kinds import KINDS, scheme_of, title
from trainsh.remote.shell import SshShell
from trainsh.runtime.reach import cloud, colab, slurm, ssh
from trainsh.runtime.reach.base import HostError, Kind

REACH: dict[str, Kind] = {**cloud.KINDS, "colab": colab.KIND, "slurm": slurm.KIND}

__all__ = ["REACH", "HostError", "Kind", "scheme_of", "ssh_shell", "unsupported"]


def unsupported(name: str, spec: str) -> str | None:
    """Why this version cannot reach host `name` = `spec`, or None."""
    scheme, _ = scheme_of(spec)
    if scheme in KINDS and scheme not in REACH:
        return f"host @{name} = {spec}: {title(scheme)} hosts are not supported yet in this version"
    return None


def ssh_shell(spec: str, *, reconnect: float = 60.0) -> SshShell:
    scheme, rest = scheme_of(spec)
    if scheme in REACH:
        return REACH[scheme].shell(rest, reconnect)
    if scheme:
        problem = unsupported("host", spec)
        raise HostError(problem.split(": ", 1)[1] if problem else
                        f"{spec}: unknown kind of host '{scheme}:' (known: "
                        + ", ".join(f"{s}:" for s in REACH) + ", an ssh spec, a hosts.toml name)")
    return ssh.shell(spec, reconnect)
