"""`colab:NAME`, reached: the saved runtime's ssh through its cloudflared tunnel (cloud/colab.py)."""

from __future__ import annotations

from trainsh.cloud import colab
from trainsh.remote.shell import SshShell
from trainsh.runtime.reach.base import HostError, Kind


class ColabKind(Kind):
    def shell(self, rest: str, reconnect: float) -> SshShell:
        try:
            spec = colab.ssh_spec(rest)
        except colab.ColabError as e:
            raise HostError(str(e)) from None
        # A Colab runtime that is gone stays gone: do not spend a minute reconnecting to it.
        return SshShell(spec, reconnect=min(reconnect, 10.0), gone=colab.gone_hint(rest))


KIND = ColabKind()
