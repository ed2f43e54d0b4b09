"""One end of a transfer: a path on this machine, on a host (its shell), or in a storage."""

from __future__ import annotations

from dataclasses import dataclass

from trainsh.remote.shell import Shell
from trainsh.settings.storages import Storage


@dataclass
class Side:
    path: str
    shell: Shell | None = None  # None: this machine
    storage: Storage | None = None  # an object store or folder reached through rclone

    @property
    def remote(self) -> bool:
        return self.shell is not None and not self.shell.is_local()

    def __str__(self) -> str:
        if self.storage is not None:
            return f"{self.storage}:{self.path}"
        return f"{self.shell.name}:{self.path}" if self.remote else self.path
