"""Choosing how a transfer runs, by what its two ends are.

- local <-> local: rsync on this machine.
- local <-> host: rsync over the host's shared ssh connection (same spec: jump hosts too); the
  destination folder is created by rsync's remote side (`--rsync-path`), so no rsync 3.2.3
  `--mkpath` is needed.
- host <-> host: rsync run on the source host straight to the destination when the source can
  reach it (one probe); otherwise a tar stream from one ssh to the other through this machine,
  with no temporary file.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import subprocess
import tempfile
import time

from trainsh.remote.shell import ShellError, SshShell
from trainsh.remote.sshspec import rsync_rsh, ssh_options
from trainsh.transfer import storage
from trainsh.transfer.report import Meter, listing
from trainsh.transfer.rsync import local_copy, rsync_argv, run_rsync, source_missing, summarize, target_dir
from trainsh.transfer.side import Side


def copy(src: Side, dst: Side, *, delete: bool = False, excludes: tuple[str, ...] = (),
         dry_run: bool = False, progress=None) -> str:
    """Copy src to dst; returns its summary (a dry run: what it would copy and delete). Raises
    ShellError on failure. `progress(event)` hears report.Progress events while the copy runs."""
    if dry_run:
        progress = None  # a dry run moves no data; its output is the list of names
    if src.storage is None and not src.remote and not os.path.exists(src.path.rstrip("/") or "/"):
        raise ShellError(f"the transfer source {src.path} does not exist (on this machine)")
    if src.storage is not None or dst.storage is not None:
        return storage.copy(src, dst, delete=delete, excludes=excludes, dry_run=dry_run,
                            progress=progress)
    if not src.remote and not dst.remote:
        return local_copy(src.path, dst.path, delete=delete, excludes=excludes, dry_run=dry_run,
                          progress=progress)
    if src.remote and dst.remote:
        return _host_to_host(src, dst, delete=delete, excludes=excludes, dry_run=dry_run,
                             progress=progress)
    host = src.shell if src.remote else dst.shell
    assert isinstance(host, SshShell)
    argv = rsync_argv(f"{host.spec.destination}:{src.path}" if src.remote else src.path,
                      f"{host.spec.destination}:{dst.path}" if dst.remote else dst.path,
                      delete=delete, excludes=excludes, dry_run=dry_run)
    argv[1:1] = ["-e", rsync_rsh(host.spec)]
    if dst.remote and not dry_run:
        target = shlex.quote(target_dir(dst.path))
        argv[1:1] = [f"--rsync-path=mkdir -p {target} && rsync"]
    elif not dst.remote and not dry_run:
        os.makedirs(target_dir(dst.path), exist_ok=True)
    r = run_rsync(argv, progress)
    if not r.ok:
        _missing(r.stderr, src)
        raise ShellError(f"rsync {src} -> {dst} failed: {_last(r.stderr, r.returncode)}", r)
    return summarize(r.stdout, r.seconds, dry_run, delete)


def _missing(stderr: str, src: Side) -> None:
    """A failure because the source does not exist says so, naming it and where it is."""
    if source_missing(stderr):
        where = f"on {src.shell.name}" if src.remote else "on this machine"
        raise ShellError(f"the transfer source {src.path} does not exist ({where})")


def _on(host: SshShell, argv: list[str], progress, prefix: str = "", suffix: str = ""):
    """Run rsync on the host, its progress followed here when asked for."""
    if progress is None:
        return host.script(prefix + shlex.join(argv) + suffix)
    return run_rsync(argv, progress, lambda a: host.argv_for(["sh", "-c", prefix + shlex.join(a) + suffix]))


def _host_to_host(src: Side, dst: Side, *, delete, excludes, dry_run, progress) -> str:
    a, b = src.shell, dst.shell
    assert isinstance(a, SshShell) and isinstance(b, SshShell)
    if a.spec == b.spec:  # the same machine: rsync there, between two of its paths
        argv = rsync_argv(src.path, dst.path, delete=delete, excludes=excludes, dry_run=dry_run)
        r = _on(a, argv, progress, "" if dry_run else f"mkdir -p {shlex.quote(target_dir(dst.path))} && ")
        if not r.ok:
            _missing(r.stderr, src)
            raise ShellError(f"rsync on {a.name} failed: {_last(r.stderr, r.returncode)}", r)
        return summarize(r.stdout, r.seconds, dry_run, delete)
    # Can the source reach the destination by itself? Then the data goes straight there.
    opts = _drop_control(ssh_options(b.spec))
    ssh = shlex.join(["ssh", *opts])
    # (`|| exit 1`: a remote 255 would read as our own connection failing)
    probe = a.script(f"{ssh} {shlex.quote(b.spec.destination)} true || exit 1", timeout=30)
    if probe.ok:
        argv = rsync_argv(src.path, f"{b.spec.destination}:{dst.path}", delete=delete,
                          excludes=excludes, dry_run=dry_run)
        argv[1:1] = ["-e", ssh]
        if not dry_run:
            argv[1:1] = [f"--rsync-path=mkdir -p {shlex.quote(target_dir(dst.path))} && rsync"]
        r = _on(a, argv, progress, suffix=" || exit $(( $? == 255 ? 254 : $? ))")
        if not r.ok:
            _missing(r.stderr, src)
            raise ShellError(f"rsync {src} -> {dst} (run on {a.name}) failed: "
                             f"{_last(r.stderr, r.returncode)}", r)
        return summarize(r.stdout, r.seconds, dry_run, delete) + f" (direct from {a.name})"
    return _stream(src, dst, delete=delete, excludes=excludes, dry_run=dry_run, progress=progress)


def _drop_control(opts: list[str]) -> list[str]:
    """ssh options without connection sharing (the socket folder is this machine's)."""
    out, i = [], 0
    while i < len(opts):
        if opts[i] == "-o" and opts[i + 1].startswith(("ControlMaster", "ControlPath", "ControlPersist")):
            i += 2
            continue
        out.append(opts[i])
        i += 1
    return out


def _stream(src: Side, dst: Side, *, delete, excludes, dry_run, progress=None) -> str:
    """tar from the source's ssh into the destination's ssh: through this machine, in memory
    (counted on the way when progress is asked for)."""
    if delete:
        raise ShellError(f"{src.shell.name} cannot reach {dst.shell.name}: a transfer relayed "
                         "through this machine cannot delete (delete=true)")
    parent, name = posixpath.split(src.path.rstrip("/")) if not src.path.endswith("/") else (src.path, ".")
    ex = "".join(f" --exclude={shlex.quote(e)}" for e in excludes)
    target = dst.path if dst.path.endswith("/") or name == "." else posixpath.dirname(dst.path) or "."
    pack = f"tar -C {shlex.quote(parent or '/')}{ex} -cf - {shlex.quote(name)}"
    if dry_run:
        r = src.shell.script(f"{pack} | tar -tvf -")
        if not r.ok:
            _tar_missing(r.stderr, src)
            raise ShellError(f"listing {src} failed: {_last(r.stderr, r.returncode)}", r)
        names, size = [], 0
        for line in r.stdout.splitlines():
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[0].startswith("-"):
                names.append(fields[5])
                size += int(fields[2]) if fields[2].isdigit() else 0
        return listing("would copy", size, names, [], " through this machine")
    start = time.monotonic()
    with tempfile.TemporaryFile() as serr_f, tempfile.TemporaryFile() as rerr_f:
        sender = subprocess.Popen(src.shell.argv_for(["sh", "-c", pack]),
                                  stdout=subprocess.PIPE, stderr=serr_f, stdin=subprocess.DEVNULL)
        receiver = subprocess.Popen(dst.shell.argv_for(["sh", "-c", f"mkdir -p {shlex.quote(target)} && tar -C {shlex.quote(target)} -xf -"]),
                                    stdin=sender.stdout if progress is None else subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=rerr_f)
        try:
            if progress is not None:
                _pump(sender.stdout, receiver.stdin, Meter(progress, every=0.5))
            sender.stdout.close()
            receiver.wait()
            sender.wait()
        except BaseException:
            for proc in (sender, receiver):
                proc.kill()
            raise
        serr_f.seek(0)
        rerr_f.seek(0)
        serr, rerr = serr_f.read(), rerr_f.read()
    if sender.returncode or receiver.returncode:
        err = (serr or rerr).decode(errors="replace")
        _tar_missing(err, src)
        raise ShellError(f"copy {src} -> {dst} through this machine failed: {_last(err, sender.returncode or receiver.returncode)}")
    return f"copied {src} -> {dst} through this machine in {time.monotonic() - start:.2f}s"


def _pump(source, sink, meter: Meter) -> None:
    done = 0
    try:
        while chunk := source.read1(1 << 20):
            sink.write(chunk)
            done += len(chunk)
            meter.update(done)
        meter.update(done, final=True)
    except BrokenPipeError:  # the receiver ended early: its exit code tells why
        pass
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass


def _tar_missing(stderr: str, src: Side) -> None:
    if any(f"{what}: No such file or directory" in stderr for what in ("Cannot stat", "Cannot open", "Cannot chdir")):
        raise ShellError(f"the transfer source {src.path} does not exist (on {src.shell.name})")


def _last(stderr: str, code: int) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {code}"
