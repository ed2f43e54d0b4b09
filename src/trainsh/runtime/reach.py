"""From a host spec to an ssh shell that reaches it: the one place that knows every kind of
host that is not `local` (ssh specs and aliases, hosts.toml names, `colab:NAME`; clouds add
their `SCHEME:ID` here). Recipes, `train exec`, `train transfer` and `train host` all come
through it, so a kind of host added here works everywhere at once.
"""

from __future__ import annotations

from trainsh.remote.shell import SshShell


class HostError(Exception):
    """A spec that names no reachable kind of host; one line."""


def scheme_of(spec: str) -> tuple[str, str]:
    """`colab:c1` -> ("colab", "c1"); an ssh spec or a name -> ("", spec)."""
    first = spec.split()[0] if spec.split() else ""
    if ":" in first and "@" not in first.partition(":")[0]:
        head, _, rest = first.partition(":")
        if head.isalpha():
            return head, rest
    return "", spec


# `SCHEME:REST` hosts this version can reach: scheme -> (REST, reconnect) -> SshShell. A
# provider that gains support adds its entry (`preflight` refuses the others before a run).
SCHEMES: dict = {}


def unsupported(name: str, spec: str) -> str | None:
    """Why this version cannot reach host `name` = `spec`, or None."""
    from trainsh.recipe.parser import HOST_SCHEMES
    from trainsh.runtime.runner import PROVIDER_NAMES

    scheme, _ = scheme_of(spec)
    if scheme in HOST_SCHEMES and scheme not in SCHEMES:
        return f"host @{name} = {spec}: {PROVIDER_NAMES[scheme]} hosts are not supported yet in this version"
    return None


def ssh_shell(spec: str, *, reconnect: float = 60.0) -> SshShell:
    from trainsh.remote.sshspec import SpecError, SshSpec
    from trainsh.settings import hosts

    scheme, rest = scheme_of(spec)
    if scheme in SCHEMES:
        return SCHEMES[scheme](rest, reconnect)
    if scheme:
        problem = unsupported("host", spec)
        raise HostError(problem.split(": ", 1)[1] if problem else
                        f"{spec}: unknown kind of host '{scheme}:' (known: colab:NAME, an ssh "
                        "spec, a hosts.toml name)")
    try:
        entry = hosts.get(spec) if " " not in spec and "@" not in spec else None
        if entry and entry.get("kind") == "colab":
            return _colab(spec, reconnect)
        text = hosts.spec_text(entry) if entry else spec  # else an ssh destination or alias
        return SshShell(SshSpec.parse(text), reconnect=reconnect)
    except (SpecError, hosts.HostsError) as e:
        raise HostError(str(e)) from None


def _colab(name: str, reconnect: float) -> SshShell:
    from trainsh.cloud import colab

    try:
        spec = colab.ssh_spec(name)
    except colab.ColabError as e:
        raise HostError(str(e)) from None
    # A Colab runtime that is gone stays gone: do not spend a minute reconnecting to it.
    return SshShell(spec, reconnect=min(reconnect, 10.0), gone=colab.gone_hint(name))


SCHEMES["colab"] = _colab


def _slurm_login(rest: str, reconnect: float) -> SshShell:
    """`slurm:LOGIN?...` outside a job (train exec/transfer/host): its login host."""
    login = rest.rpartition("?")[0] if "?" in rest else rest
    if login.strip() == "local":
        raise HostError("slurm:local? is this machine: use local")
    return ssh_shell(login.strip(), reconnect=reconnect)


SCHEMES["slurm"] = _slurm_login

from trainsh.runtime import clouds as _clouds  # noqa: E402

for _cloud in _clouds.CLOUDS:  # `vast:ID`: a cloud instance, started if stopped
    SCHEMES[_cloud] = _clouds.host_opener(_cloud)
