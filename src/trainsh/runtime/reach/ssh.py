"""The ssh kind, reached: an ssh destination or alias, or a hosts.toml name (an entry saved by
`train colab connect` is a Colab runtime, and reached as one)."""

from __future__ import annotations

from trainsh.remote.shell import SshShell
from trainsh.remote.sshspec import SpecError, SshSpec
from trainsh.runtime.reach.base import HostError
from trainsh.runtime.reach.colab import KIND as COLAB
from trainsh.settings import hosts


def shell(spec: str, reconnect: float = 60.0) -> SshShell:
    try:
        entry = hosts.get(spec) if " " not in spec and "@" not in spec else None
        if entry and entry.get("kind") == "colab":
            return COLAB.shell(spec, reconnect)
        text = hosts.spec_text(entry) if entry else spec  # else an ssh destination or alias
        return SshShell(SshSpec.parse(text), reconnect=reconnect)
    except (SpecError, hosts.HostsError) as e:
        raise HostError(str(e)) from None
