"""hosts.toml: named machines.

    [gpu1]
    host = "203.0.113.7"
    user = "root"
    port = 22
    key = "~/.ssh/id_ed25519"
    jump = "bastion"          # optional
    options = ["Compression=yes"]

    [colab1]                  # made by `train colab connect`; the password is a secret
    kind = "colab"
    tunnel = "cloudflared"    # or "ngrok"
    host = "xyz.trycloudflare.com"
    user = "root"
"""

from __future__ import annotations

import os

from trainsh.settings import paths, tables

FIELDS = ("kind", "tunnel", "host", "user", "port", "key", "jump", "options", "last_seen")


class HostsError(Exception):
    pass


def load() -> dict[str, dict]:
    return tables.load(paths.hosts_file(), HostsError)


def get(name: str) -> dict | None:
    return load().get(name)


def spec_text(entry: dict) -> str:
    """A hosts.toml entry as an ssh spec string (`user@host -p N -i KEY -J JUMP -o ...`)."""
    import shlex

    if not entry.get("host"):
        raise HostsError("host entry has no 'host'")
    parts = [f"{entry['user']}@{entry['host']}" if entry.get("user") else str(entry["host"])]
    if entry.get("port"):
        parts += ["-p", str(entry["port"])]
    if entry.get("key"):
        parts += ["-i", os.path.expanduser(str(entry["key"]))]
    if entry.get("jump"):
        parts += ["-J", str(entry["jump"])]
    for o in entry.get("options") or []:
        parts += ["-o", str(o)]
    return shlex.join(parts)


def save(name: str, entry: dict) -> None:
    tables.save(paths.hosts_file(), name, entry, FIELDS)


def remove(name: str) -> bool:
    return tables.remove(paths.hosts_file(), name)
