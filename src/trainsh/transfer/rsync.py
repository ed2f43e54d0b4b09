"""rsync transfers. Destination folders are created first, so no rsync >= 3.2.3 (--mkpath)
is needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from trainsh import masking
from trainsh.remote.shell import LocalShell, Result, ShellError, _kill_group


def target_dir(path: str) -> str:
    """The folder a copy to `path` needs: `path` itself for `dir/`, else its parent."""
    return path if path.endswith("/") else os.path.dirname(path) or "."


def rsync_argv(src: str, dst: str, *, delete: bool = False, excludes: tuple[str, ...] = (),
               dry_run: bool = False) -> list[str]:
    argv = ["rsync", "-a", "--stats"]
    if delete:
        argv.append("--delete")
    if dry_run:
        argv.append("--dry-run")
    for pattern in excludes:
        argv += ["--exclude", pattern]
    return argv + [src, dst]


_PROGRESS = re.compile(rb"([\d,]+)\s+(\d+)%\s+(\S+/s)\s+(\d+:\d\d:\d\d)")


def run_rsync(argv: list[str], progress=None):
    """Run rsync; with `progress(text)`, report bytes, percent, rate and ETA as it goes
    (rsync's --info=progress2). Returns a Result."""
    if progress is None:
        return LocalShell().run(argv)
    argv = argv[:1] + ["--info=progress2"] + argv[1:]
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        return _follow(p, argv, start, progress)
    except BaseException:  # Ctrl-C, SIGTERM: rsync (and its ssh) end with us
        _kill_group(p)
        raise


def _follow(p, argv, start, progress):
    out = bytearray()
    buf = b""
    while True:
        chunk = p.stdout.read1(65536) if hasattr(p.stdout, "read1") else p.stdout.read(65536)
        if not chunk:
            break
        out += chunk
        buf = (buf + chunk)[-4096:]
        last = buf.replace(b"\r", b"\n").rstrip(b"\n").rsplit(b"\n", 1)[-1]
        m = _PROGRESS.search(last)
        if m:
            done = int(m.group(1).replace(b",", b""))
            progress(f"{human_bytes(done)}  {m.group(2).decode()}%  {m.group(3).decode()}  "
                     f"ETA {m.group(4).decode()}")
    err = p.stderr.read()
    p.wait()
    return Result(masking.mask(" ".join(argv)), p.returncode, out.decode("utf-8", "replace"),
                  err.decode("utf-8", "replace"), time.monotonic() - start)


def local_copy(src: str, dst: str, *, delete: bool = False, excludes: tuple[str, ...] = (),
               dry_run: bool = False, progress=None) -> str:
    """Copy between two paths on this machine; returns a one-line summary."""
    if not os.path.exists(src.rstrip("/") or "/"):
        raise ShellError(f"transfer source does not exist: {src}")
    if shutil.which("rsync") is None:
        raise ShellError("rsync is not installed (apt-get install rsync)")
    if not dry_run:
        os.makedirs(target_dir(dst), exist_ok=True)  # rsync makes the last part itself
    r = run_rsync(rsync_argv(src, dst, delete=delete, excludes=excludes, dry_run=dry_run), progress)
    if not r.ok:
        detail = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise ShellError(f"rsync {src} -> {dst} failed: {detail}", r)
    return summarize(r.stdout, r.seconds, dry_run)


def summarize(stats: str, seconds: float, dry_run: bool = False) -> str:
    def num(label: str) -> int:
        m = re.search(label + r":\s*([\d,]+)", stats)
        return int(m.group(1).replace(",", "")) if m else 0

    files = num("Number of regular files transferred")
    size = num("Total transferred file size")
    verb = "would copy" if dry_run else "copied"
    return f"{verb} {files} file{'s' if files != 1 else ''} ({human_bytes(size)}) in {seconds:.2f}s"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
