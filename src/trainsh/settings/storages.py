"""Storage backends: specs (`r2:bucket`, `b2:bucket`, `s3:bucket`, `gdrive:folder`,
`local:/path`) and named entries in storages.toml.

    [lake]
    kind = "s3"                        # r2 | b2 | s3 | gdrive | local
    bucket = "my-bucket"               # folder for gdrive, path for local
    endpoint = "https://s3.example"    # s3-compatible stores (optional)
    region = "us-east-1"               # optional
    account_id = "0123abcd"            # r2: the endpoint is https://ACCOUNT.r2.cloudflarestorage.com

Credentials never live here: they are secrets (R2_ACCESS_KEY, R2_SECRET_KEY, B2_KEY_ID,
B2_APPLICATION_KEY, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GDRIVE_TOKEN; R2_ACCOUNT_ID when
the entry names no account).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainsh.settings import paths, tables

KINDS = ("r2", "b2", "s3", "gdrive", "local")
FIELDS = ("kind", "bucket", "endpoint", "region", "account_id")
SECRET_FIELDS = ("secret", "key", "token", "password")


class StorageError(Exception):
    pass


@dataclass(frozen=True)
class Storage:
    kind: str
    bucket: str  # bucket (and prefix), drive folder, or local path
    endpoint: str = ""
    region: str = ""
    account_id: str = ""
    name: str = ""  # the storages.toml name, if it came from there

    def __str__(self) -> str:
        return self.name or f"{self.kind}:{self.bucket}"


def load() -> dict[str, dict]:
    return tables.load(paths.storages_file(), StorageError)


def resolve(spec: str) -> Storage:
    """`kind:bucket` or a storages.toml name -> Storage."""
    spec = spec.strip()
    entries = load()
    if spec in entries:
        e = entries[spec]
        kind = str(e.get("kind", ""))
        if kind not in KINDS:
            raise StorageError(f"storage '{spec}': kind must be one of {', '.join(KINDS)}, got '{kind}'")
        return Storage(kind, str(e.get("bucket", "")), str(e.get("endpoint", "")),
                       str(e.get("region", "")), str(e.get("account_id", "")), name=spec)
    kind, sep, bucket = spec.partition(":")
    if not sep:
        known = ", ".join(entries) or "none yet (train storage add)"
        raise StorageError(f"no storage '{spec}' in storages.toml (storages: {known})")
    if kind not in KINDS:
        raise StorageError(f"unknown storage kind '{kind}:' (one of {', '.join(k + ':' for k in KINDS)})")
    if not bucket and kind != "gdrive":
        raise StorageError(f"'{spec}' needs a bucket (or path) after '{kind}:'")
    return Storage(kind, bucket)


def endpoint_problem(url: str) -> str | None:
    """Why `url` is no endpoint rclone can use (http(s)://host[:port][/path]), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        return f"bad endpoint '{url}': {e}"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return f"bad endpoint '{url}' (expected a URL like https://s3.example.com)"
    return None


def save(name: str, entry: dict) -> None:
    if entry.get("endpoint"):
        problem = endpoint_problem(entry["endpoint"])
        if problem:
            raise StorageError(problem)
    for k in entry:
        if any(w in k.lower() for w in SECRET_FIELDS):
            raise StorageError(f"'{k}' looks like a credential: keep it as a secret "
                               "(train secrets set ...), not in storages.toml")
    tables.save(paths.storages_file(), name, entry, FIELDS, StorageError)


def remove(name: str) -> bool:
    return tables.remove(paths.storages_file(), name, StorageError)
