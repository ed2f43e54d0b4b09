"""Transfers with a storage on one side (or both), through rclone.

Where rclone runs: here for local <-> storage and storage <-> storage; on the host itself for
host <-> storage, so the data goes from the host to the store without passing through this
machine. A host without rclone gets this install's binary once (same architecture), cached
in ~/.cache/trainsh/bin. Credentials reach the rclone process through its environment
(over ssh: its stdin), never a command line or a config file. After a copy, `rclone check`
compares sizes and checksums; a mismatch fails the transfer.
"""

from __future__ import annotations

import os
import platform
import posixpath
import re
import shlex
import subprocess
import time

from trainsh import masking
from trainsh.remote.shell import ShellError, SshShell, kill_group
from trainsh.settings.storages import StorageError
from trainsh.remote.sshspec import rsync_rsh
from trainsh.transfer import rclone
from trainsh.transfer.rsync import rsync_argv, run_rsync
from trainsh.transfer.report import Meter, human_bytes, listing, parse_bytes

HOST_BIN = ".cache/trainsh/bin/rclone"
_STATS = re.compile(r"([\d.]+ \w?i?B) / ([\d.]+ \w?i?B), (\d+)%, ([\d.]+ \w?i?B/s), ETA (\S+)")


def copy(src, dst, *, delete=False, excludes=(), dry_run=False, progress=None) -> str:
    if src.remote and dst.remote:
        raise ShellError(f"{src} -> {dst}: one side must be storage")
    host = src.shell if src.remote else (dst.shell if dst.remote else None)
    try:
        env: dict[str, str] = {"RCLONE_CONFIG": "/dev/null"}
        ends = []
        for side, remote in ((src, "TRAINSH_SRC"), (dst, "TRAINSH_DST")):
            if side.storage is not None:
                env.update(rclone.remote_env(side.storage, remote))
                ends.append(rclone.remote_path(side.storage, side.path, remote))
            else:
                ends.append(side.path)
    except StorageError as e:
        raise ShellError(str(e)) from None
    binary = host_rclone(host) if host is not None else rclone.rclone_binary()
    single = _is_file(src, host, binary, env, ends[0])
    a, b = ends
    if not single and not src.path.endswith("/") and src.path.strip("/"):
        b = b.rstrip("/") + "/" + os.path.basename(src.path.rstrip("/"))  # rsync: `dir` lands as dst/dir
    elif single and dst.path.endswith("/"):
        b = b.rstrip("/") + "/" + os.path.basename(src.path)
    argv = rclone.copy_argv(binary, a, b, delete=delete, excludes=excludes, dry_run=dry_run,
                            single_file=single)
    start = time.monotonic()
    where = f" on {host.name}" if host is not None else ""
    if src.storage is None and not dry_run:
        return _upload(host, binary, env, argv, a, b, single, excludes, progress, src, dst, delete) \
            + f" in {time.monotonic() - start:.2f}s, checked{where}"
    code, err = run_rclone(host, argv, env, progress)
    if code != 0:
        raise ShellError(f"copy {src} -> {dst} failed: {rclone.explain(err)}")
    if dry_run:
        copies = re.findall(r"NOTICE: (.*): Skipped copy as --dry-run is set \(size ([^)]*)\)", err)
        deletes = re.findall(r"NOTICE: (.*): Skipped delete as --dry-run is set", err)
        return listing("would copy", sum(parse_bytes(size) for _, size in copies),
                       [name for name, _ in copies], deletes)
    if single:
        problem = _check_file(host, binary, env, a, b)
        code, cerr = (1, problem) if problem else (0, "")
    else:
        code, cerr = run_rclone(host, rclone.check_argv(binary, a, b, excludes=excludes), env, None)
    if code != 0:
        raise ShellError(f"copy {src} -> {dst}: the copy does not match its source "
                         f"(rclone check: {rclone.explain(cerr)})")
    return f"{_summary(err, delete)} in {time.monotonic() - start:.2f}s, checked{where}"


MISMATCH = 97  # the exit code of an upload whose check found a difference
UNREACHED = 98  # the exit code of an upload whose first look at the store failed


def _upload(host, binary, env, argv, a, b, single, excludes, progress, src, dst, delete) -> str:
    """Copy files to a store and check them, hashing the source while the copy runs: the
    check then reads only the store's own checksums against that sum file."""
    q = shlex.quote
    filters = "".join(f" --exclude {q(e)}" for e in excludes)
    if single:  # one file, maybe renamed: its line in the sum file carries the new name
        name = os.path.basename(b.rstrip("/"))
        where = b[: len(b) - len(name)].rstrip("/") or b.split(":", 1)[0] + ":"
        hashing = (f"{q(binary)} md5sum {q(a)} | awk -v n={q(name)} "
                   "'{ print $1 \"  \" n }' > \"$sums\"")
        check = f"{q(binary)} checksum md5 \"$sums\" {q(where)} --one-way --include {q('/' + rclone.literal(name))}"
    else:
        hashing = f"{q(binary)} md5sum {q(a)}{filters} > \"$sums\""
        check = f"{q(binary)} checksum md5 \"$sums\" {q(b)} --one-way{filters}"
    # First a quick look at the destination (short timeouts, one try): a store that does not
    # answer, or refuses the keys, fails in seconds instead of after rclone's long retries.
    # A failed or empty hashing counts as a mismatch: the check must check something.
    look = shlex.join([binary, "lsjson", "--stat", *rclone.QUICK, b])
    script = (f'out=$({look} 2>&1) || case "$out" in *"not found"*) ;; '
              f'*) printf "%s\\n" "$out" >&2; exit {UNREACHED};; esac; '
              f'sums=$(mktemp); ( {hashing} ) & h=$!; {shlex.join(argv)}; '
              f'rc=$?; wait $h; hr=$?; if [ $rc -ne 0 ]; then rm -f "$sums"; exit $rc; fi; '
              f'if [ $hr -ne 0 ] || [ ! -s "$sums" ]; then rm -f "$sums"; exit {MISMATCH}; fi; '
              f'{check}; c=$?; rm -f "$sums"; [ $c -eq 0 ] || exit {MISMATCH}')
    code, err = run_rclone(host, ["sh", "-c", script], env, progress)
    if code == UNREACHED:
        raise ShellError(f"copy {src} -> {dst} failed: {rclone.explain(err, dst.storage)}")
    if code == MISMATCH:
        raise ShellError(f"copy {src} -> {dst}: the copy does not match its source "
                         f"(rclone checksum: {rclone.explain(err)})")
    if code != 0:
        raise ShellError(f"copy {src} -> {dst} failed: {rclone.explain(err)}")
    return _summary(err, delete)


def _summary(stderr: str, delete: bool = False) -> str:
    done = re.findall(r"([\d.]+ \w?i?B) / [\d.]+ \w?i?B, \d+%", stderr)
    files = len(re.findall(r": (?:Copied|Multi-thread Copied)", stderr))
    text = (f"copied {files} file{'s' if files != 1 else ''} "
            f"({human_bytes(parse_bytes(done[-1]) if done else 0)})") if files else "up to date: nothing to copy"
    if delete:
        text += f", deleted {len(re.findall(r'INFO  : .*: Deleted$', stderr, re.M))}"
    return text


def _check_file(host, binary, env, a: str, b: str) -> str:
    """One file (maybe renamed on the way): same size, same MD5 where both sides have one."""
    import json

    infos = []
    for end in (a, b):
        code, out = run_rclone(host, [binary, "lsjson", "--stat", "--hash", "--hash-type", "md5", end],
                         env, None, capture="stdout")
        if code != 0:
            return f"cannot stat {end}"
        infos.append(json.loads(out))
    if infos[0].get("Size") != infos[1].get("Size"):
        return f"sizes differ ({infos[0].get('Size')} vs {infos[1].get('Size')})"
    h0, h1 = (i.get("Hashes", {}).get("md5") for i in infos)
    if h0 and h1 and h0 != h1:
        return f"md5 differs ({h0} vs {h1})"
    return ""


def _is_file(side, host, binary, env, end) -> bool:
    """Is the source one file? A source that does not exist is an error that names it."""
    missing = ShellError(f"the transfer source {side.path} does not exist "
                         f"({'in storage ' + str(side.storage) if side.storage is not None else 'on ' + (host.name if host else 'this machine')})")
    if side.storage is None and host is None:
        return os.path.isfile(side.path)  # (its existence is checked before)
    if side.storage is None:  # a path on the host
        r = host.script(f"if [ -f {shlex.quote(side.path)} ]; then echo file; "
                        f"elif [ -e {shlex.quote(side.path)} ]; then echo dir; fi", timeout=60)
        if r.stdout.strip() not in ("file", "dir"):
            raise missing
        return r.stdout.strip() == "file"
    if side.path.strip("/") == "":
        return False
    code, out = run_rclone(host, [binary, "lsjson", "--stat", *rclone.QUICK, end], env, None, capture="both")
    if code != 0:
        if "not found" in out:
            raise missing
        raise ShellError(f"{side}: {rclone.explain(out, side.storage)}")
    if '"IsDir":false' in out.replace(" ", ""):
        return True
    # An object store answers any folder name; only a listing tells whether anything is there.
    code, out = run_rclone(host, [binary, "lsf", "--max-depth", "1", *rclone.QUICK, end], env, None,
                     capture="both")
    if code != 0 and "not found" in out:
        raise missing
    if code == 0 and not out.strip() and side.storage.kind in ("s3", "r2", "b2"):
        raise missing  # (a prefix with nothing under it is no folder of a bucket)
    return False


def run_rclone(host, argv, env, progress, capture="stderr") -> tuple[int, str]:
    """Run rclone here or on the host, its credentials in its environment only."""
    if host is None:
        cmd, data = argv, None
        full_env = {**os.environ, **env}
    else:
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        cmd = host.argv_for(["sh", "-c", 'eval "$(cat)"; exec "$@"', "sh", *argv])
        data, full_env = exports.encode(), None
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE if capture in ("stdout", "both") else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=full_env, start_new_session=True)
    meter = Meter(progress) if progress is not None else None
    try:
        if capture in ("stdout", "both"):  # both: stdout when it works, stderr when not
            out, err = p.communicate(data)
            return p.returncode, masking.mask((out if p.returncode == 0 else err).decode(errors="replace"))
        if data is not None:
            p.stdin.write(data)
            p.stdin.close()
        lines = []
        for raw in p.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            m = _STATS.search(line)
            if m and meter is not None:
                meter.update(parse_bytes(m.group(1)), parse_bytes(m.group(2)) or None)
        p.wait()
    except BaseException:  # Ctrl-C, SIGTERM: rclone and its helpers end with us
        kill_group(p)
        raise
    return p.returncode, masking.mask("".join(lines))


def host_rclone(host: SshShell) -> str:
    """rclone on the host: its own, the cached copy, or this install's binary brought over."""
    home = host.home()
    cached = f"{home}/{HOST_BIN}"
    r = host.script(f"command -v rclone || {{ [ -x {shlex.quote(cached)} ] && echo {shlex.quote(cached)}; }}; "
                    "echo arch=$(uname -m)", timeout=60)
    lines = r.stdout.split()
    arch = next((ln[5:] for ln in lines if ln.startswith("arch=")), "")
    found = next((ln for ln in lines if not ln.startswith("arch=")), "")
    if found:
        return found
    if arch != platform.machine():
        raise ShellError(f"{host.name} has no rclone and is {arch or 'of unknown architecture'} "
                         f"(this machine: {platform.machine()}): install rclone there")
    local = os.environ.get("TRAINSH_RCLONE_UPLOAD") or rclone.rclone_binary()
    argv = rsync_argv(local, f"{host.spec.destination}:{cached}")
    argv[1:1] = ["-e", rsync_rsh(host.spec), f"--rsync-path=mkdir -p {shlex.quote(posixpath.dirname(cached))} && rsync"]
    r = run_rsync(argv)
    if not r.ok:
        raise ShellError(f"could not bring rclone to {host.name}: {r.stderr.strip()[-300:]}", r)
    host.run(["chmod", "755", cached], check=True, timeout=60)
    return cached

