"""Two-way sync of a local folder with a folder on a host: Unison over the shared ssh
connection, once (`Unison.sync`) or live (`LiveSync`), driven by file events on both sides.

- Unison 2.52 and later talk across versions; a host with none or an older one gets this
  machine's binary in `~/.cache/trainsh/bin` (checked and copied in one round trip).
- A conflict (both sides changed) is skipped and reported, never overwritten.
- Live sync does not poll: this side's changes come from watchfiles (inotify), the host's from a
  small inotify watcher that runs there (watch_remote.py, python3 standard library) and ends
  with its ssh session. Each batch of changes is one unison run restricted to those paths
  (`-path`), with content checks on, so an edit of the same size in the same second is seen.
- Excludes: sane defaults (secrets in `.env*` files and build products made on either side
  among them), the folder's .gitignore, and the caller's patterns; the caller's includes
  (unison's `-ignorenot`) bring back a name any of them leaves out.
- `sync(up=True)` is one-way up: nothing here is changed; what only the host has stays there and
  is held out of every later run of this `Unison` (`held`), so it never comes here.
"""

from __future__ import annotations

import fnmatch
import os
import queue
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainsh.remote.shell import ShellError, SshShell
from trainsh.remote.sshspec import ssh_argv, ssh_options, ssh_program
from trainsh.settings import paths as settings_paths
from trainsh.transfer.excludes import DEFAULT_EXCLUDES

PROBE = ".trainsh-watch-probe"  # touched until the local watcher reports it: then it is armed
MIN_VERSION = (2, 52)
BIN = ".cache/trainsh/bin"


class SyncError(Exception):
    """Unison could not run or failed; one line."""


@dataclass
class SyncResult:
    transferred: int = 0
    skipped: int = 0
    failed: int = 0
    conflicts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # a one-way run: only on the host, left there
    blocked: list[str] = field(default_factory=list)  # a one-way run: changed there, not taken yet
    paths: list[str] | None = None  # the run's paths (None: the whole folder)
    seconds: float = 0.0

    def summary(self) -> str:
        text = f"{self.transferred} item{'s' if self.transferred != 1 else ''} synced in {self.seconds:.1f}s"
        if self.conflicts:
            text += f"; {len(self.conflicts)} conflict(s) left as they are: " + ", ".join(self.conflicts[:5])
        if self.failures:
            text += f"; {len(self.failures)} failed: " + ", ".join(self.failures[:5])
        return text


def version(text: str) -> tuple[int, int] | None:
    m = re.search(r"unison version (\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def local_unison() -> str:
    path = shutil.which("unison")
    if not path:
        raise SyncError("unison is not installed on this machine (apt-get install unison)")
    return os.path.realpath(path)


def ignore_prefs(root: str | Path, excludes: tuple[str, ...] = (), includes: tuple[str, ...] = (),
                 held: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Unison `-ignore` arguments: the defaults, the folder's .gitignore, `excludes` and the
    `held` paths; then `-ignorenot` for each of `includes` (it wins over all but `held`)."""
    rules = [f"Name {name}" for name in (*DEFAULT_EXCLUDES, PROBE)]
    rules += gitignore_rules(root)
    rules += [_rule(p) for p in excludes if _rule(p)]
    out: list[str] = []
    for r in dict.fromkeys(rules):
        out += ["-ignore", r]
    keep = [r for p in includes if (r := _rule(p))]
    for r in dict.fromkeys(keep):
        out += ["-ignorenot", r]
    for p in dict.fromkeys(held):
        # exactly this path: unison's glob characters matched as any one character
        out += ["-ignore", "Path " + re.sub(r"[][*?{}\\,]", "?", p)]
    return out


def default_ignored(name: str, includes: tuple[str, ...] = ()) -> bool:
    """A file or folder name the defaults leave out (and no include brings back)."""
    if name == PROBE or name.startswith(".unison"):
        return True
    if not any(fnmatch.fnmatchcase(name, pat) for pat in DEFAULT_EXCLUDES):
        return False
    return not any(fnmatch.fnmatchcase(name, pat.strip().strip("/").rsplit("/", 1)[-1])
                   for pat in includes if pat.strip())


def gitignore_rules(root: str | Path) -> list[str]:
    try:
        lines = (Path(root) / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [r for line in lines if (r := _rule(line))]


def _rule(pattern: str) -> str | None:
    """A gitignore-style pattern as a unison ignore rule (negations are not expressible)."""
    p = pattern.strip()
    if not p or p.startswith("#") or p.startswith("!"):
        return None
    p = p.rstrip("/")
    while p.startswith("**/"):
        p = p[3:]
    if not p or "**" in p:
        return None
    if p.startswith("/"):
        return f"Path {p.lstrip('/')}"
    if "/" in p:
        return f"Path {p}"
    return f"Name {p}"


_RESULT = re.compile(r"\((\d+) items? transferred, (\d+) skipped, (\d+) failed\)")


def parse_output(text: str) -> SyncResult:
    res = SyncResult()
    m = _RESULT.search(text)
    if m:
        res.transferred, res.skipped, res.failed = (int(g) for g in m.groups())
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("skipped: "):
            item = s[len("skipped: "):]
            if item.endswith("with nocreation or nocreationpartial set)"):  # (a one-way run)
                res.held.append(item.rsplit(" (", 1)[0])
            elif item.endswith("partial set)") and " (would " in item:
                res.blocked.append(item.rsplit(" (", 1)[0])
            else:
                res.conflicts.append(item)
        elif s.startswith("failed: "):
            res.failures.append(s[len("failed: "):])
    return res


class Unison:
    """One local folder <-> one folder on a host."""

    def __init__(self, local_root: str | Path, shell: SshShell, remote_root: str,
                 excludes: tuple[str, ...] = (), includes: tuple[str, ...] = ()):
        self.local = str(Path(local_root).resolve())
        self.shell = shell
        self.remote = remote_root.rstrip("/") or "/"
        self.excludes = tuple(excludes)
        self.includes = tuple(includes)
        self.held: list[str] = []  # only on the host at a one-way sync: never synced from then on
        self.servercmd = "unison"
        self._dir = tempfile.mkdtemp(prefix="trainsh-unison-")
        self._sshcmd = os.path.join(self._dir, "ssh")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def prepare(self) -> None:
        """Make the remote folder and find (or bring) a unison there: one round trip, plus the
        copy of the binary when the host has no usable one."""
        mine = local_unison()
        with open(self._sshcmd, "w") as f:  # unison takes a program, not a command line
            f.write("#!/bin/sh\nexec " + shlex.join([*ssh_program(self.shell.spec),
                                                     *ssh_options(self.shell.spec)]) + ' "$@"\n')
        os.chmod(self._sshcmd, 0o700)
        local_v = subprocess.run([mine, "-version"], capture_output=True, text=True).stdout
        probe = (f"mkdir -p {shlex.quote(self.remote)} || exit 3; "
                 "printf 'system %s\\n' \"$(unison -version 2>/dev/null)\"; "
                 f"b=\"$HOME/{BIN}/unison\"; [ -x \"$b\" ] && printf 'ours %s\\n' \"$($b -version 2>/dev/null)\"; "
                 "printf 'home %s\\n' \"$HOME\"; uname -m")
        r = self.shell.run(["sh", "-c", probe], timeout=60)
        if r.returncode == 3:
            raise SyncError(f"cannot make {self.remote} on {self.shell.name}: {r.stderr.strip()}")
        if not r.ok:
            raise SyncError(f"{self.shell.name}: {self.shell.explain(r)}")
        found = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        system = version(found.get("system", ""))
        ours = found.get("ours", "")
        if system and system >= MIN_VERSION:
            self.servercmd = "unison"
            return
        path = f"{found.get('home', '~')}/{BIN}/unison"
        if ours.strip() != local_v.strip():
            machine = r.stdout.splitlines()[-1].strip() if r.stdout.strip() else ""
            if machine and machine != os.uname().machine:
                raise SyncError(f"{self.shell.name} has no unison >= 2.52 and is a {machine} machine: "
                                "install unison there")
            self.shell.run(["mkdir", "-p", os.path.dirname(path)], check=True, timeout=60)
            with open(mine, "rb") as f:
                self.shell.write_file(path, f.read(), mode=0o755)
        self.servercmd = path

    def argv(self, paths: list[str] | None = None) -> list[str]:
        spec = self.shell.spec
        url = f"ssh://{spec.destination}/{self.remote}"  # `//abs` for an absolute path
        argv = [local_unison(), self.local, url, "-batch", "-auto", "-ui", "text", "-times",
                "-sshcmd", self._sshcmd, "-servercmd", self.servercmd, "-dumbtty",
                "-logfile", "/dev/null", *ignore_prefs(self.local, self.excludes, self.includes, self.held)]
        if paths is not None:
            # Only these paths, read whole: an edit that keeps size and second is still seen.
            # A path deleted on one side is "emptied" by unison's measure: deleting it on the
            # other is the point (a whole-root sync keeps unison's guard against that).
            argv += ["-fastcheck", "false", "-confirmbigdel=false"]
            for p in paths:
                argv += ["-path", p]
        return argv

    def env(self) -> dict[str, str]:
        archive = settings_paths.ensure(settings_paths.home() / "unison")
        return {**os.environ, "UNISON": str(archive)}

    def sync(self, paths: list[str] | None = None, timeout: float = 3600, extra: list[str] = (),
             up: bool = False) -> SyncResult:
        """One unison run. `up`: one way, this side to the host: nothing here is created, changed
        or deleted; a path both sides have and that differs takes this side's version; what only
        the host has is left there and added to `held`."""
        t = time.monotonic()
        argv = [*self.argv(paths), *extra]
        if up:
            for pref in ("-prefer", "-nocreation", "-noupdate", "-nodeletion"):
                argv += [pref, self.local]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, env=self.env(),
                               stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SyncError(f"unison did not finish within {int(timeout)}s") from None
        if p.returncode >= 3 and "inconsistent state" in p.stdout + p.stderr and "-ignorearchives" not in argv:
            # One side's archive is gone (a machine's disk reset, a new machine under the same
            # name): unison refuses for ever. Without archives it syncs as a first time: what
            # differs on both sides is a conflict, left as it is; nothing is deleted.
            return self.sync(paths, timeout, ["-ignorearchives"], up)
        res = parse_output(p.stdout + p.stderr)
        res.seconds = time.monotonic() - t
        res.paths = paths
        if p.returncode >= 3 or (p.returncode and not _RESULT.search(p.stdout + p.stderr)):
            lines = [ln for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()]
            why = next((ln for ln in lines if "Fatal error" in ln or "rror" in ln), lines[-1] if lines else "?")
            raise SyncError(f"unison failed (exit {p.returncode}): {why.strip()}")
        self.held += [h for h in res.held if h not in self.held]
        return res


class LiveSync:
    """Keeps the two folders in step until stopped: events on either side -> a unison run on
    just the changed paths. `on_result` hears of every run (for a status line or a log)."""

    def __init__(self, unison: Unison, on_result=None, settle: float = 0.03):
        self.unison = unison
        self.on_result = on_result or (lambda res: None)
        self.settle = settle
        self.changes: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._remote: subprocess.Popen | None = None

    def start(self) -> None:
        """Start both watchers; returns once each one is armed, so no later change is missed."""
        self._start_remote_watcher()
        self._armed = threading.Event()
        for target in (self._watch_local, self._loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        probe = Path(self.unison.local) / PROBE
        deadline = time.monotonic() + 10
        while not self._armed.wait(0.05) and time.monotonic() < deadline:
            probe.write_text(str(time.monotonic()))
        probe.unlink(missing_ok=True)
        if not self._armed.is_set():
            self.errors.append("the local file watcher did not start")

    def stop(self, final: bool = True) -> SyncResult | None:
        """Stop watching; with `final`, one last full sync so nothing is left behind."""
        self._stop.set()
        self.changes.put(None)
        if self._remote and self._remote.poll() is None:
            self._remote.terminate()
            try:
                self._remote.wait(5)
            except subprocess.TimeoutExpired:
                self._remote.kill()
        for t in self._threads:
            t.join(5)
        return self.unison.sync() if final else None

    # ---- watchers
    def _ignored(self, rel: str) -> bool:
        return any(default_ignored(p, self.unison.includes) for p in rel.split("/"))

    def _watch_local(self) -> None:
        from watchfiles import watch

        root = self.unison.local
        self._archive = self.unison.env()["UNISON"]
        for batch in watch(root, stop_event=self._stop, debounce=20, step=10, rust_timeout=200,
                           yield_on_timeout=False, raise_interrupt=False):
            for _change, path in batch:
                rel = os.path.relpath(path, root)
                if rel == PROBE:
                    self._armed.set()
                    continue
                if path.startswith(self._archive):  # unison's own state, if it lies inside
                    continue
                if rel != "." and not self._ignored(rel):
                    self.changes.put(rel)

    def _start_remote_watcher(self) -> None:
        shell = self.unison.shell
        script = Path(__file__).with_name("watch_remote.py").read_bytes()
        target = f"{shell.home()}/{BIN}/watch_remote.py"
        try:
            shell.run(["mkdir", "-p", os.path.dirname(target)], check=True, timeout=60)
            shell.write_file(target, script, mode=0o644)
        except ShellError as e:
            self.errors.append(f"remote watcher not started: {e}")
            return
        keep = [p.strip().strip("/").rsplit("/", 1)[-1] for p in self.unison.includes if p.strip()]
        cmd = shlex.join(["python3", "-u", target, self.unison.remote, *DEFAULT_EXCLUDES,
                          *(f"!{k}" for k in keep if k)])
        self._remote = subprocess.Popen(ssh_argv(shell.spec, cmd), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self._remote.stdout.readline()
        if first.strip() != "ready":
            err = (self._remote.stderr.read() or "").strip().splitlines()
            self.errors.append("remote watcher not started (the host's changes sync only on "
                               f"exit): {err[-1] if err else 'no python3 there?'}")
            return
        threading.Thread(target=self._read_remote, daemon=True).start()

    def _read_remote(self) -> None:
        for line in self._remote.stdout:
            rel = line.rstrip("\n")
            if rel and not self._ignored(rel):
                self.changes.put(rel)

    # ---- the sync loop: gather what changed, then one unison run for it
    def _loop(self) -> None:
        while not self._stop.is_set():
            first = self.changes.get()
            if first is None:
                return
            batch = {first}
            deadline = time.monotonic() + self.settle
            while (left := deadline - time.monotonic()) > 0:
                try:
                    item = self.changes.get(timeout=left)
                except queue.Empty:
                    break
                if item is None:
                    return
                batch.add(item)
            paths = None if "." in batch or len(batch) > 200 else sorted(_roots(batch))
            try:
                res = self.unison.sync(paths)
            except SyncError as e:
                self.errors.append(str(e))
                continue
            # (Our own writes come back as events from the side written to; the run they cause
            # finds nothing to do. Dropping them could drop a real edit made meanwhile.)
            self.on_result(res)


def _roots(paths: set[str]) -> set[str]:
    """The paths without those inside another one of them."""
    out: set[str] = set()
    for p in sorted(paths, key=len):
        if not any(p == q or p.startswith(q + "/") for q in out):
            out.add(p)
    return out
