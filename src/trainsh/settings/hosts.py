"""hosts.toml: named machines.

    [gpu1]
    host = "203.0.113.7"
    user = "root"
    port = 22
    key = "~/.ssh/id_ed25519"
    jump = "bastion"          # optional
    options = ["Compression=yes"]
"""

from __future__ import annotations

import os
import tomllib

from trainsh.settings import paths

FIELDS = ("host", "user", "port", "key", "jump", "options")


class HostsError(Exception):
    pass


def load() -> dict[str, dict]:
    path = paths.hosts_file()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise HostsError(f"{path}: {e}") from None
    return {k: v for k, v in data.items() if isinstance(v, dict)}


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
    import tomlkit

    path = paths.hosts_file()
    paths.ensure(path.parent)
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = tomlkit.document()
    table = tomlkit.table()
    for k in FIELDS:
        if entry.get(k) not in (None, "", []):
            table[k] = entry[k]
    doc[name] = table
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def remove(name: str) -> bool:
    import tomlkit

    path = paths.hosts_file()
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    if name not in doc:
        return False
    del doc[name]
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return True
