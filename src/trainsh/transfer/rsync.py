"""rsync transfers. Destination folders are created first, so no rsync >= 3.2.3 (--mkpath)
is needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from trainsh import masking
from trainsh.remote.shell import LocalShell, Result, ShellError, kill_group
from trainsh.transfer.report import Meter, human_bytes, listing


def target_dir(path: str) -> str:
    """The folder a copy to `path` needs: `path` itself for `dir/`, else its parent."""
    return path if path.endswith("/") else os.path.dirname(path) or "."


def rsync_argv(src: str, dst: str, *, delete: bool = False, excludes: tuple[str, ...] = (),
               dry_run: bool = False) -> list[str]:
    argv = ["rsync", "-a", "--stats"]
    if delete:
        argv.append("--delete")
    if dry_run:
        argv += ["--dry-run", "--itemize-changes"]  # the names, for the dry run's listing
    for pattern in excludes:
        argv += ["--exclude", pattern]
    return argv + [src, dst]


_PROGRESS = re.compile(rb"([\d,]+)\s+(\d+)%\s+\S+/s\s+\d+:\d\d:\d\d")
_MISSING = re.compile(r'(?:link_stat|change_dir) "([^"]*)" failed: No such file or directory')


def run_rsync(argv: list[str], progress=None, wrap=None):
    """Run rsync (`wrap(argv)`, when given, is the command that runs it elsewhere); with
    `progress(event)`, report Progress events as it goes (rsync's --info=progress2).
    Returns a Result."""
    wrap = wrap or (lambda a: a)
    if progress is None:
        return LocalShell().run(wrap(argv))
    argv = wrap(argv[:1] + ["--info=progress2"] + argv[1:])
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        return _follow(p, argv, start, Meter(progress))
    except BaseException:  # Ctrl-C, SIGTERM: rsync (and its ssh) end with us
        kill_group(p)
        raise


def _follow(p, argv, start, meter):
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
            done, percent = int(m.group(1).replace(b",", b"")), int(m.group(2))
            # rsync rounds the percent down: the middle of what it allows is the best guess
            meter.update(done, int(done * 100 / (percent + 0.5)) if 0 < percent < 100 else
                         done if percent == 100 else None)
    err = p.stderr.read()
    p.wait()
    return Result(masking.mask(" ".join(argv)), p.returncode, out.decode("utf-8", "replace"),
                  err.decode("utf-8", "replace"), time.monotonic() - start)


def source_missing(stderr: str) -> bool:
    """Did rsync fail because the path it was to copy from does not exist?"""
    return _MISSING.search(stderr) is not None


def local_copy(src: str, dst: str, *, delete: bool = False, excludes: tuple[str, ...] = (),
               dry_run: bool = False, progress=None) -> str:
    """Copy between two paths on this machine; returns a one-line summary."""
    if not os.path.exists(src.rstrip("/") or "/"):
        raise ShellError(f"the transfer source {src} does not exist (on this machine)")
    if shutil.which("rsync") is None:
        raise ShellError("rsync is not installed (apt-get install rsync)")
    if not dry_run:
        os.makedirs(target_dir(dst), exist_ok=True)  # rsync makes the last part itself
    r = run_rsync(rsync_argv(src, dst, delete=delete, excludes=excludes, dry_run=dry_run), progress)
    if not r.ok:
        detail = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
        raise ShellError(f"rsync {src} -> {dst} failed: {detail}", r)
    return summarize(r.stdout, r.seconds, dry_run, delete)


_ITEM = re.compile(r"^([<>ch.][fdLDS][^ ]{9}|\*deleting) +(.*)$")


def summarize(stats: str, seconds: float, dry_run: bool = False, delete: bool = False) -> str:
    """rsync's --stats (and, in a dry run, its itemized names) -> what the user reads."""
    def num(label: str) -> int:
        m = re.search(label + r":\s*([\d,]+)", stats)
        return int(m.group(1).replace(",", "")) if m else 0

    files = num("Number of regular files transferred")
    size = num("Total transferred file size")
    if dry_run:
        copies, deletes = [], []
        for line in stats.replace("\r", "\n").splitlines():
            m = _ITEM.match(line)
            if m and m.group(1) == "*deleting":
                deletes.append(m.group(2))
            elif m and m.group(1)[0] in "<>c" and m.group(1)[1] != "d":
                copies.append(m.group(2))
        return listing("would copy", size, copies, deletes)
    text = f"copied {files} file{'s' if files != 1 else ''} ({human_bytes(size)})"
    if delete:
        text += f", deleted {num('Number of deleted files')}"
    return f"{text} in {seconds:.2f}s"
