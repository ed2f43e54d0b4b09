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

    [cluster]                 # a Slurm cluster: the login host, and what to allocate
    kind = "slurm"
    host = "login.cluster.example"
    user = "me"
    slurm = "nodes=2&gpus_per_node=8&time=4h"
"""

from __future__ import annotations

import os

from trainsh.kinds import slurm
from trainsh.kinds.ssh import hostname_problem
from trainsh.settings import paths, tables

FIELDS = ("kind", "tunnel", "host", "user", "port", "key", "jump", "options", "slurm", "last_seen")


class HostsError(Exception):
    pass


def load() -> dict[str, dict]:
    return tables.load(paths.hosts_file(), HostsError)


def get(name: str) -> dict | None:
    entry = load().get(name)
    if entry is not None:
        problem = entry_problem(entry)
        if problem:
            raise HostsError(f"{paths.hosts_file()}: [{name}]: {problem}")
    return entry


def entry_problem(entry: dict) -> str | None:
    """What is wrong with a hosts.toml entry's fields (types, a host name), or None."""
    host = entry.get("host")
    if not isinstance(host, str) or not host:
        return "'host' must be a host name or address"
    problem = hostname_problem(host)
    if problem:
        return problem
    port = entry.get("port")
    if port is not None and not (isinstance(port, int) and not isinstance(port, bool)
                                 and 0 < port < 65536):
        return f"'port' must be a number 1-65535, got {port!r}"
    for k in ("user", "key", "jump"):
        if entry.get(k) is not None and not isinstance(entry[k], str):
            return f"'{k}' must be a string, got {entry[k]!r}"
    options = entry.get("options")
    if options is not None and not (isinstance(options, list)
                                    and all(isinstance(o, str) for o in options)):
        return f"'options' must be a list of strings like [\"Compression=yes\"], got {options!r}"
    if entry.get("slurm") is not None:
        alloc = entry["slurm"]
        problem = "must be a string" if not isinstance(alloc, str) else slurm.spec_problem(f"x?{alloc}") if alloc else None
        if problem:
            return f"'slurm' (allocation options like \"nodes=2&time=4h\"): {problem}"
    return None


def spec_text(entry: dict) -> str:
    """A hosts.toml entry as an ssh spec string (`user@host -p N -i KEY -J JUMP -o ...`)."""
    import shlex

    problem = entry_problem(entry)
    if problem:
        raise HostsError(f"hosts.toml entry: {problem}")
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
    tables.save(paths.hosts_file(), name, entry, FIELDS, HostsError)


def remove(name: str) -> bool:
    return tables.remove(paths.hosts_file(), name, HostsError)
