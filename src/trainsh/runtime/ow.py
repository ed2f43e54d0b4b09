"""`ow exec` and `ow ssh`: a GPU machine from any `Provider`, the user's folders synced to it
with unison, a command or a shell there, and the machine ended on every way out.

The parts are the project's own: the provider (search, create, get, destroy), the ssh layer
(one shared connection), `transfer/unison.py` (sync, live sync, excludes, bringing unison) and
the masking of secret values. What lives here is the order of things and the exits:

- `Machine` is the lifecycle. A machine rented here is destroyed when ow ends, whatever
  ended it (the command's end, a failure, Ctrl-C, SIGTERM, SIGHUP, a lost connection, an error
  while renting or syncing), unless the user keeps it; a create cut short is looked up by its
  label so a machine made meanwhile is not forgotten. `--existing` machines are never ended.
  Should ow itself die (kill -9, a laptop asleep), the autostop watcher it left on a rented
  machine destroys it once idle (runtime/autostop.py). Before a rented machine goes, its side
  of each sync conflict is brought back beside ours (`NAME.remote-ID`).
- `_recovering` is `ow exec --recover N`: a machine the cloud reports no longer running
  (Provider.get(): outbid, reclaimed, stopped, gone) while the run syncs or runs the command
  (or preempted while it starts) is terminated, another rented through the same path (the
  rents ledger first, label `LABEL-rK`) and the exec run again there, up to N times.
- `run_command` runs the command in a tmux session on the machine (a dropped connection does
  not end it), streams its output from the pane log and returns its exact exit code (128+N
  for a signal). One ssh round trip sets up and starts the session and then follows it.
- `open_shell` is the interactive shell: its rc file waits for a sentinel file before the
  first prompt, so no command runs before the first sync (and editable install) is done.

Env-file values go to the machine in a 0600 file, over stdin, that the command's shell
sources and removes (`ow ssh`), or that `${secret:}`'s masker (remote/tmux.py's MASKER) reads
and removes (`ow exec`): it runs the command under a terminal of its own and masks the values
in all it prints. They never appear in an argv, a history or a log.
"""

# Imports inside functions: ow's start is on the clock (owstart.py), so each part loads when used.

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainsh import masking
from trainsh.numbers import digits
from trainsh.cloud.provider import local_public_key

RUN_DIR = ".cache/trainsh/ow"  # on the machine, under $HOME: one folder per run


class OwError(Exception):
    """A failed step of an ow run, one line; `code` is ow's exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Mount:
    local: Path
    remote: str  # absolute, or relative to the machine's home

    @property
    def remote_cd(self) -> str:
        """A shell word that changes to it (relative paths from $HOME)."""
        return shlex.quote(self.remote) if self.remote.startswith("/") else \
            '"$HOME"/' + shlex.quote(self.remote)


@dataclass
class Options:
    provider: str = "runpod"
    gpu: str = "L40"
    count: int = 1
    image: str | None = None
    disk: float | None = None
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    existing: str | None = None
    terminate: bool | None = None  # None: ask on a terminal (ow ssh); exec terminates unless False
    excludes: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()  # synced even though a default exclude or .gitignore leaves them out
    pull: bool = False  # the first sync merges both sides (else: one way up, the machine's own stay there)
    sync: bool = True
    editable: bool = True
    ready_timeout: float = 900.0
    autostop: float = 300.0  # a rented machine destroys itself after this long idle (0: never)
    spot: bool = False  # rent it interruptible: on a bid (Vast), a spot pod (RunPod)
    bid: float | None = None  # --bid as given (Vast: the machine's; RunPod: per GPU); None: the cloud's minimum plus margin
    recover: int = 0  # ow exec: machines it may lose (and replace, running the command again)


_shell_open = threading.Event()  # an interactive ssh holds the terminal (in raw mode)


def say(message: str) -> None:
    # A raw terminal does not return the carriage at a newline: lines would step right. While
    # the shell runs, a notice starts a line of its own (not after the prompt or a half-typed
    # command, which stays where it was: the shell still has it).
    start, end = ("\r\n", "\r\n") if _shell_open.is_set() else ("", "\n")
    try:
        print(f"{start}ow: {masking.mask(message)}", file=sys.stderr, end=end, flush=True)
    except OSError:  # (a terminal that hung up: the machine must still be ended)
        pass


class Interrupted(BaseException):
    """SIGTERM or SIGHUP (the terminal closed), as Ctrl-C is KeyboardInterrupt: all end the run
    the same way, and ow exits with 128 + the signal's number (130, 143, 129)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


def signal_code(e: BaseException) -> int:
    """ow's exit code for the interruption `e` (Ctrl-C, SIGTERM, SIGHUP)."""
    return 128 + (e.signum if isinstance(e, Interrupted) else signal.SIGINT)


ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _on_term(signum, frame):
    raise Interrupted(signum)


def shielded():
    """Ctrl-C, SIGTERM and SIGHUP ignored while the machine is being ended: a second Ctrl-C
    must not leave it billing. Returns a function that restores the handlers."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in ENDING}
    return lambda: [signal.signal(s, h) for s, h in old.items()]


# ---- the machine -----------------------------------------------------------------------------

# Seconds a machine may have run and still be in its start script (sshd and its keys not ready):
# an `--existing` one up for less is logged into before its first command.
JUST_STARTED = 120.0


class Machine:
    """One machine for one ow run: rented (and ended here) or `--existing` (left alone)."""

    def __init__(self, opts: Options, label: str | None = None):
        from trainsh.cloud.provider import provider

        self.opts = opts
        try:
            self.provider = provider(opts.provider)
        except ImportError:  # a provider module this installation lacks
            raise OwError(f"the {opts.provider} provider is not part of this installation", 2) from None
        self.inst = None
        self.shell = None
        self.rented = False
        self.label = label or f"ow-{os.urandom(4).hex()}"
        self.offer = ""  # the offer it was rented from
        self.was_lost = ""  # why, once the cloud no longer runs it (ow exec's recovery)
        self._creating = False
        self.holds = None  # runtime.holds.Holds, once ow rents or holds a machine
        self.early = None  # ow_connect.Early: a login started before the cloud answered
        self._guard: threading.Thread | None = None  # sets up the autostop watcher (guard())
        self._guarded = threading.Lock()
        self._ending = False
        self._beat: threading.Event | None = None  # stops the watcher's heartbeat
        self._watched = False  # the watcher runs there

    def first_connection(self) -> subprocess.Popen | None:
        """The early login's `sh -s`, when the cloud's answer confirms its command line."""
        return self.early.take(self._login_argv()) if self.early else None

    def settle_early(self) -> None:
        if self.early:
            self.early.settle(self._login_argv())

    def _login_argv(self) -> list[str]:
        from trainsh.remote.sshspec import ssh_argv

        return ssh_argv(self.shell.spec, "sh -s")

    def _remember(self) -> None:
        from trainsh.runtime import ow_connect

        ow_connect.remember(self.name, self._login_argv())

    @property
    def name(self) -> str:
        return f"{self.provider.name}:{self.inst.id}" if self.inst else self.label

    def check_key(self) -> None:
        """The API key is there (before anything is asked of the cloud)."""
        self.provider.key  # noqa: B018 - raises AuthError naming how to set it

    def _holds(self):
        """The ledger of rents and holds: while ow runs, its machine is never another's pick."""
        from trainsh.runtime.holds import Holds
        from trainsh.runtime.journal import Journal

        if self.holds is None:
            self.holds = Holds(Journal())
        return self.holds

    def _hold_existing(self) -> None:
        self.label = f"ow-existing-{self.provider.name}-{self.inst.id}-{os.getpid()}"
        holds = self._holds()
        holds.begin(self.provider.name, self.label, "ow:existing")  # the user's: never ended
        holds.set(self.label, state="rented", ident=self.inst.id)

    def _release_hold(self, state: str) -> None:
        if self.holds is not None:
            try:
                self.holds.set(self.label, state=state)
            except Exception:  # noqa: BLE001 - the ledger is a courtesy to other jobs
                pass

    def _end_orphans(self) -> None:
        """Machines an earlier ow rented and could not end (it was killed): ended now, as
        that ow would have, so that they do not bill on."""
        holds = self._holds()
        orphans = holds.orphans(self.provider.name)
        if not orphans:
            return
        try:
            insts = self.provider.list()
        except Exception:  # noqa: BLE001 - cannot look now: the next ow run tries again
            return
        for r in orphans:
            if r.holder != "ow":
                continue
            made = holds.made_by(self.provider, r, insts)
            for inst in made:
                try:
                    self.provider.destroy(inst.id)
                except Exception as e:  # noqa: BLE001 - say what bills, never hide it
                    say(f"{self.provider.name}:{inst.id}, left by an ow that was killed, could NOT be "
                        f"terminated ({e}); end it with: train {self.provider.name} destroy {inst.id}")
                    continue
                say(f"terminated {self.provider.name}:{inst.id}, left running by an ow that was killed")
            if made or r.state == "rented" or time.time() - r.created > 600:
                holds.set(r.label, state="destroyed" if made else "none")

    def provision(self, avoid: tuple[str, ...] = (), orphans: bool = True) -> None:
        """Rent the machine (or find the `--existing` one). `avoid`: offers whose machines this
        run lost, taken only when nothing else is offered (a machine outbid once is likely to
        be again); `orphans`: end what killed ow runs left first (once a run is enough)."""
        from trainsh.cloud import gpus
        from trainsh.cloud.provider import CreateRequest, NoCapacity, machine_bid
        from trainsh.runtime.holds import rent

        o = self.opts
        if o.existing:
            self.inst = self.provider.get(o.existing)
            self._hold_existing()
            return
        wanted = gpus.provider_name(o.gpu, self.provider.name)
        bid = machine_bid(self.provider.name, o.bid, o.count) if o.spot else None
        # (interruptible: offers that take a bid, by their minimum bid; a bid of ours caps it)
        offers = self.provider.search(gpu=wanted, num_gpus=o.count, limit=10, interruptible=o.spot,
                                      max_price=bid)
        offers = [x for x in offers if x.num_gpus == o.count]  # never a bigger (dearer) machine
        if not offers:
            raise NoCapacity(f"{self.provider.name}: no {o.count}x {gpus.short_name(o.gpu)} "
                             + ("on a bid " if o.spot else "") + "can be had right now"
                             + (f" for ${bid:g}/h" if bid else ""))
        if orphans:
            self._end_orphans()
        offers.sort(key=lambda x: x.id in avoid)  # (stable: otherwise the cloud's order)
        offer = offers[0]
        self.offer = offer.id
        req = CreateRequest(image=o.image or _default(self.provider.name, "image", ""),
                            disk_gb=o.disk or _default(self.provider.name, "disk", 50.0),
                            label=self.label, public_key=local_public_key(), gpu_count=o.count,
                            interruptible=o.spot, bid=bid)
        self._creating = True  # from here on, a machine may exist even if the call fails
        try:
            self.inst = rent(self._holds(), self.provider, offer.id, req, "ow", say=say)
        except BaseException as e:  # cut short: what the cloud made is ow's, ended by end()
            made = getattr(e, "made", None)
            if made:
                self.inst, self.rented = made[0], True
            if made is not None:  # looked for already: end() need not look again
                self._creating = False
                if not made and not isinstance(e, Exception):
                    say(f"the rent was cut short: the cloud may still make a {self.provider.noun} "
                        f"labelled {self.label}, and it would bill; see train {self.provider.name} list")
            raise
        self.rented = True
        self._creating = False
        if o.spot:
            how = f"bid ${self.inst.bid:.3f}/h" if self.inst.bid is not None else "spot"
            say(f"rented {self.name} interruptible ({offer.gpu_name}, {how})")
        else:
            say(f"rented {self.name} ({offer.gpu_name}, ${offer.price_per_hour:.3f}/h)")

    def wait_ready(self, login: bool = True) -> None:
        """Until it runs with an ssh endpoint and (with `login`) a login works. Without, the
        first ssh command is the probe: one round trip less on a machine that is up. A machine
        not up yet, or up for less than JUST_STARTED, is logged into all the same: clouds say
        a machine runs before its start script has started sshd and put the keys in place, and
        a login refused then is a wait, not a failure."""
        from trainsh.cloud.provider import RUNNING, STOPPED, NotReady
        from trainsh.remote.shell import SshShell

        fresh = self.inst if self.inst.status == RUNNING and self.inst.ssh else None  # from get
        if not login and (fresh is None or (fresh.started_at and fresh.uptime() < JUST_STARTED)):
            login = True
        try:
            self.inst = self.provider.wait_ready(self.inst.id, self.opts.ready_timeout, login=login,
                                                 poll=(0.1, 1.5, 3.0), seen=fresh)
        except NotReady as e:
            self.inst = inst = e.inst
            if e.why == "crashed":
                raise OwError(f"{self.name} crashed ({e.last})") from None
            if e.why == "timeout":
                raise OwError(f"{self.name} not ready after {self.opts.ready_timeout:.0f}s ({e.last})") from None
            if inst.status == STOPPED and not self.rented:
                raise OwError(f"{self.name} is stopped (train {self.provider.name} start {inst.id})") from None
            raise OwError(f"{self.name} is {inst.status} ({inst.provider_status})") from None
        self.shell = SshShell(self.inst.ssh_spec(), reconnect=30)
        self._remember()

    def guard(self) -> None:
        """Leave the autostop watcher on a machine rented here: should this ow be gone without
        ending it (kill -9, a laptop asleep, the network lost), the machine destroys itself once
        idle for opts.autostop (no ow heartbeat, no command running in tmux). In the background:
        the run does not wait for it."""
        if not self.rented or self.opts.autostop <= 0 or self.shell is None:
            return

        def setup():
            from trainsh.runtime import autostop

            # (a command the user started in a tmux session of ow ssh keeps the machine too)
            why = autostop.leave(self.shell, self.provider, self.inst.id, "ow", self.opts.autostop,
                                 destroy=True, all_sessions=True)
            with self._guarded:
                if self._ending:
                    return
                if why:
                    say(f"{self.name}: autostop {why}; should ow be killed, end it with: "
                        f"train {self.provider.name} destroy {self.inst.id}")
                    return
                self._watched = True
                self._beat = autostop.heartbeat(self.shell, "ow", self.opts.autostop, self.name)

        self._guard = threading.Thread(target=setup, daemon=True, name="ow-autostop")
        self._guard.start()

    def _unguard(self, keep: bool) -> None:
        """ow ends: no more heartbeat; a machine the user keeps loses its watcher too."""
        with self._guarded:
            self._ending = True
            if self._beat:
                self._beat.set()
        if not keep or self._guard is None:
            return
        self._guard.join(60)
        if self._watched:
            from trainsh.runtime import autostop

            if not autostop.remove(self.shell, "ow"):
                say(f"{self.name}: its autostop watcher could not be removed: it destroys itself "
                    f"once idle for {self.opts.autostop:.0f}s")

    def gone(self) -> str | None:
        """Why the machine will not answer again (it is stopped or gone), or None while it runs
        (or the cloud cannot tell)."""
        why = self.lost()
        return f"{self.name} is {why}" if why else None

    def lost(self) -> str | None:
        """The cloud's word for a machine no longer running ("outbid", "reclaimed", "stopped",
        "gone"), or None while it runs or when the cloud cannot tell: only Provider.get()
        decides, so a command that fails on a running machine is never a loss."""
        from trainsh.cloud.provider import RUNNING, STARTING, NotFound

        if self.inst is None:
            return None
        try:
            inst = self.provider.get(self.inst.id)
        except NotFound:
            return "gone"
        except Exception:  # noqa: BLE001 - the API is down too: keep trying the machine
            return None
        return None if inst.status in (RUNNING, STARTING) else inst.preempted or inst.status

    def end(self, interrupted: bool = False) -> None:
        """Destroy what was rented here unless kept; name what is left running. A lost machine
        is destroyed even with --no-terminate: it is not the machine the user meant to keep
        (the run went on elsewhere, or failed for its loss), and one outbid resumes, billing,
        once its bid wins again."""
        lost = bool(self.was_lost)
        restore = shielded()
        try:
            if self._creating and self.inst is None:
                self._find_made()
            if self.inst is None:
                return
            if not self.rented:
                from trainsh.cloud.provider import RUNNING

                say(f"{self.name} was running before: left running" if self.inst.status == RUNNING
                    else f"{self.name} is not ow's: left as it is")
                self._release_hold("ended")
                return
            keep = self.opts.terminate is False and not lost
            if self.opts.terminate is None and not interrupted and not lost and sys.stdin.isatty():  # (ow ssh)
                restore()
                try:
                    answer = input(f"ow: terminate {self.name}? [Y/n] ").strip().lower()
                except (EOFError, KeyboardInterrupt):
                    answer = ""
                    print(file=sys.stderr)
                finally:
                    restore = shielded()
                keep = answer in ("n", "no")
            self._unguard(keep)
            if keep:
                say(f"{self.name} kept running and billing; end it with: "
                    f"train {self.provider.name} destroy {self.inst.id}")
                self._release_hold("kept")
                return
            from trainsh.cloud.provider import NotFound

            try:
                self.provider.destroy(self.inst.id)
            except NotFound:  # destroyed already (by hand, by the cloud): nothing bills
                say(f"{self.name} is gone already (destroyed): nothing bills")
                return
            except Exception as e:  # noqa: BLE001 - say what still bills, never hide it
                watcher = (f" (its autostop watcher destroys it after {self.opts.autostop:.0f}s idle)"
                           if self._watched else "")
                say(f"{self.name} could NOT be terminated ({e}): it may still bill{watcher}; "
                    f"end it with: train {self.provider.name} destroy {self.inst.id}")
                return
            self._release_hold("destroyed")
            say(f"{self.name} terminated")
        finally:
            restore()

    def _find_made(self) -> None:
        """A create cut short (Ctrl-C, a lost answer): a machine made under our label is ours."""
        from trainsh.runtime.holds import settle

        made = settle(self.provider, self.label, say=say)
        if made:
            self.inst, self.rented = made[0], True
        else:
            say(f"no {self.provider.noun} labelled {self.label} turned up; if one does, it bills: "
                f"see train {self.provider.name} list")


def _default(provider: str, key: str, fallback):
    from trainsh.settings import config

    try:
        return config.get(f"{provider}.{key}")
    except Exception:  # noqa: BLE001 - no such setting for this provider
        return fallback


# ---- env files -------------------------------------------------------------------------------

ENV_FILE_MAX = 1 << 20  # an --env-file's most bytes


def parse_env_file(path: str) -> dict[str, str]:
    """`KEY=VALUE` lines (optionally `export `, quotes, `#` comments). OwError(code 2) naming
    the file and line of the first mistake."""
    import re

    import stat

    try:
        st = os.stat(path)  # (before opening it: opening a FIFO waits for a writer)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero, a FIFO: read forever
            raise OwError(f"--env-file {path}: not a regular file", 2)
        if st.st_size > ENV_FILE_MAX:
            raise OwError(f"--env-file {path}: more than {ENV_FILE_MAX // 1024 // 1024} MiB, "
                          "not an env file", 2)
        with open(path, "rb") as f:
            data = f.read(ENV_FILE_MAX + 1)
        if len(data) > ENV_FILE_MAX:  # (it grew since)
            raise OwError(f"--env-file {path}: more than {ENV_FILE_MAX // 1024 // 1024} MiB, "
                          "not an env file", 2)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise OwError(f"--env-file {path}: no such file", 2) from None
    except (OSError, UnicodeDecodeError) as e:
        raise OwError(f"--env-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})", 2) from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("export "):
            s = s[7:].lstrip()
        key, eq, value = s.partition("=")
        key = key.strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise OwError(f"{path}:{n}: not KEY=VALUE: {line.strip()[:60]!r}", 2)
        value = value.strip()
        if value[:1] in ("'", '"'):
            q = value[0]
            if len(value) < 2 or not value.endswith(q):
                raise OwError(f"{path}:{n}: unclosed {q} in the value of {key}", 2)
            value = value[1:-1]
            if q == '"':  # one pass: `\\n` is a backslash and an n, not a newline
                value = re.sub(r'\\([\\"n])', lambda m: "\n" if m[1] == "n" else m[1], value)
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def exports(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def _heredoc(path: str, text: str) -> str:
    """Shell lines writing `text` to `path` (quoted heredoc: nothing in it is expanded; the
    scripts that use it set umask 077 first, so the file is the owner's alone)."""
    tag = "OW_" + os.urandom(8).hex()
    if not text.endswith("\n"):
        text += "\n"
    return f"cat > {path} <<'{tag}'\n{text}{tag}\n"


# ---- sync ------------------------------------------------------------------------------------

class Syncer:
    """One Unison per mount, prepared once."""

    def __init__(self, machine: Machine, opts: Options):
        from trainsh.transfer.unison import Unison

        home = None
        self.pairs = []
        for m in opts.mounts:
            remote = m.remote
            if not remote.startswith("/"):  # the machine's $HOME, which its ssh cwd may not be
                home = home or machine.shell.home()
                remote = f"{home}/{remote}"
            self.pairs.append((m, Unison(m.local, machine.shell, remote, opts.excludes, opts.includes)))
        self.prepared = False
        self.machine = machine
        self.pull = opts.pull
        self.first = True

    def sync(self, what: str, goes: Machine | None = None) -> None:
        """One sync of every mount. The first is one way up unless --pull: what only the machine
        has (a network volume's files) stays there and is left out of this run's syncs.
        `goes`: the machine, when this is the last sync before it is ended: its side of each
        conflict is brought here (keep_theirs)."""
        from trainsh.transfer.unison import SyncError

        t = time.monotonic()
        up, self.first = self.first and not self.pull, False
        try:
            if not self.prepared:
                for _, u in self.pairs:
                    u.prepare()
                self.prepared = True
            for m, u in self.pairs:
                res = u.sync(up=up)
                if res.held:
                    shown = ", ".join(res.held[:5]) + (", ..." if len(res.held) > 5 else "")
                    say(f"{len(res.held)} item{'s' if len(res.held) != 1 else ''} only on the machine "
                        f"in {u.remote} left there, not brought here (--pull merges both sides): {shown}")
                if goes is not None:
                    for line in keep_theirs(u, res.conflicts, goes):
                        say(line)
                else:
                    for c in res.conflicts:
                        say(conflict_line(m, u, _conflict_path(c), self.machine))
                for f in res.failures:
                    say(f"not synced: {m.local}/{f}")
        except SyncError as e:
            raise OwError(f"sync {what} failed: {e}") from None
        say(f"synced {what} in {time.monotonic() - t:.1f}s")

    def close(self) -> None:
        for _, u in self.pairs:
            u.close()


def conflict_line(m: Mount, u, rel: str, machine: Machine) -> str:
    """One line for a path changed on both sides: where each side's version is."""
    local = Path(u.local) / rel
    there = f"{machine.name}:{u.remote.rstrip('/')}/{rel}"
    later = (f"it comes here as {local.name}.remote-{machine.inst.id} before the machine goes"
             if machine.rented else "it stays there")
    return f"conflict: {rel} changed on both sides, neither overwritten: yours is {local}; " \
           f"the machine's is {there} ({later})"


def _conflict_path(line: str) -> str:
    """The path of unison's `skipped:` line ("a/b.txt (contents changed on both sides)")."""
    return line.rsplit(" (", 1)[0] if line.endswith(")") and " (" in line else line


def keep_theirs(u, conflicts: list[str], machine: Machine) -> list[str]:
    """Before a machine goes, its version of each conflict (a path changed on both sides, which
    unison leaves as it is) is copied here beside ours as NAME.remote-ID, so the destroy loses
    neither. Returns what to tell the user, a line a conflict."""
    import io
    import tarfile
    import tempfile

    out = []
    for c in conflicts:
        rel = _conflict_path(c)
        local = Path(u.local) / rel
        if not machine.rented:  # a machine that stays: its version stays there
            out.append(f"conflict (changed on both sides, left as it is): {local}")
            continue
        parent, _, base = rel.rstrip("/").rpartition("/")
        remote_parent = f"{u.remote}/{parent}" if parent else u.remote
        script = (f"cd {shlex.quote(remote_parent)} 2>/dev/null && [ -e {shlex.quote(base)} ] || exit 3; "
                  f"exec tar -cf - -- {shlex.quote(base)}")
        try:
            p = subprocess.run(machine.shell.argv_for(["sh", "-c", script]), capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            out.append(f"conflict: {local}: the machine's version could not be brought back ({e})")
            continue
        if p.returncode == 3:
            out.append(f"conflict: {local}: deleted on the machine, changed here: kept here")
            continue
        target = local.with_name(f"{local.name}.remote-{machine.inst.id}")
        n = 1
        while target.exists() or target.is_symlink():
            n += 1
            target = local.with_name(f"{local.name}.remote-{machine.inst.id}-{n}")
        try:
            if p.returncode != 0:
                why = p.stderr.decode(errors="replace").strip().splitlines()
                raise OSError(why[-1] if why else f"tar: exit {p.returncode}")
            local.parent.mkdir(parents=True, exist_ok=True)  # (a folder deleted here)
            with tempfile.TemporaryDirectory(dir=local.parent, prefix=".ow-theirs-") as tmp:
                with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tar:
                    tar.extractall(tmp, filter="data")
                os.rename(os.path.join(tmp, base), target)
        except (OSError, tarfile.TarError) as e:
            out.append(f"conflict: {local}: the machine's version could not be brought back ({e})")
            continue
        out.append(f"conflict (changed on both sides): {local} is yours; the machine's is beside it: "
                   f"{target.name}")
    return out


def editable_install_script(opts: Options) -> str:
    """Shell lines that `pip install -e` every mount holding a pyproject.toml (after the first
    sync: before it, there is nothing to install). An externally managed Python (Debian's)
    gets a user install."""
    lines = []
    for m in opts.mounts:
        if (m.local / "pyproject.toml").is_file():
            lines.append(
                f"( cd {m.remote_cd} && {{ python3 -m pip install -q -e . 2>&1 || "
                f"python3 -m pip install -q --user --break-system-packages -e . 2>&1; }} )")
    return "\n".join(lines)


def editable_install(machine: Machine, opts: Options) -> None:
    script = editable_install_script(opts)
    if not script:
        return
    t = time.monotonic()
    r = machine.shell.run(["sh", "-c", "set -e\n" + script], timeout=1800)
    if not r.ok:
        tail = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
        raise OwError(f"editable install failed: {tail[-1] if tail else 'exit ' + str(r.returncode)}")
    say(f"editable install done in {time.monotonic() - t:.1f}s")


# ---- ow exec ---------------------------------------------------------------------------------

def command_text(argv: list[str]) -> str:
    """One word is a shell command line (as ssh and `sh -c` take it); several are an argv,
    each word kept exactly (quotes, spaces, `$`)."""
    if len(argv) == 1:
        return argv[0]
    return "exec " + shlex.join(argv)


def run_command(machine: Machine, opts: Options, argv: list[str], out=None) -> int:
    """Run the command in a tmux session on the machine, stream its output to `out`, return
    its exit code. Ctrl-C (or SIGTERM) is passed on to the command as Ctrl-C."""
    out = out or sys.stdout.buffer
    run = os.urandom(4).hex()
    sess = f"ow-{run}"
    d = f'"$HOME"/{RUN_DIR}/{run}'
    cwd = opts.mounts[0].remote_cd if opts.mounts else '"$HOME"'
    secret = bool(opts.env)
    for v in opts.env.values():
        masking.register(v)
    cmd = f"cd {cwd} 2>/dev/null || cd\n" + command_text(argv)
    start, end = f"\\033]777;{sess}\\007", f"\\033]778;{sess}\\007"
    shell_bin = 'b=$(command -v bash || echo sh); [ "${b##*/}" = bash ] && set -- -l; '
    body = f'"$b" "$@" {d}/cmd.sh'
    if secret:  # under a terminal of its own whose output is masked (remote/tmux.py's MASKER)
        body = f'python3 {d}/mask.py 0 "$b" "exec $b $* $HOME/{RUN_DIR}/{run}/cmd.sh"'
    body = f"{body}; echo $? > {d}/rc"
    wrapper = (f"{shell_bin}\nprintf '{start}'\n{body}\n"
               f"printf '{end}'\ntmux wait-for -S {sess}-done\n")
    # (guarded: a follower that lost its connection sends it again, and it must run once)
    setup = f"umask 077; if [ ! -e {d}/log ]; then\nmkdir -p {d} || exit 97\n" + NEED_TMUX
    setup += _heredoc(f"{d}/cmd.sh", cmd) + _heredoc(f"{d}/run.sh", wrapper)
    if secret:
        from trainsh.remote.tmux import MASKER

        # NAME=VALUE entries, NUL-separated, as MASKER reads them (printf is the shell's own:
        # the values are in this script, which goes over stdin, never in an argv)
        setup += _heredoc(f"{d}/mask.py", MASKER)
        setup += ("printf '%s\\0' " + " ".join(shlex.quote(f"{k}={v}") for k, v in opts.env.items())
                  + f" > {d}/s0.env\n")
    # One command list: tmux runs it whole before it reads the new pane's first output or
    # sees it die, so the log and the hook are in place for a command that ends at once.
    # The end is signalled once: run.sh does, and the hook only for a run.sh that never got
    # there (no rc). tmux keeps one signal for a waiter still to come (on a loaded machine
    # the command can end first), and a second one throws that away: ow would wait forever.
    setup += (f": > {d}/log\n"
              f"tmux new-session -d -s {sess} -x 200 -y 50 \"sh $HOME/{RUN_DIR}/{run}/run.sh\" \\; "
              f"set-option -t {sess} remain-on-exit on \\; "
              f"set-hook -t {sess} pane-died \"run-shell '[ -e $HOME/{RUN_DIR}/{run}/rc ] || "
              f"tmux wait-for -S {sess}-done'\" \\; "
              f"pipe-pane -t {sess} -o \"cat >> $HOME/{RUN_DIR}/{run}/log\" || exit 98\nfi\n")
    follower = Follower(machine.shell, sess, d, out, gone=machine.gone,
                        ready=machine.first_connection())
    try:
        follower.follow(setup, first=True)
    except (KeyboardInterrupt, Interrupted):
        say("interrupted: passing Ctrl-C to the command")
        try:
            machine.shell.run(["tmux", "send-keys", "-t", sess, "C-c"], timeout=15)
            follower.follow("", first=False, limit=10)
        except Exception:  # noqa: BLE001 - we are leaving anyway
            pass
        raise
    return follower.rc


# An image without tmux (it keeps the command alive when the connection drops) gets it from
# its package manager when we are root there; else the run stops saying so.
NEED_TMUX = ("command -v tmux >/dev/null || { [ \"$(id -u)\" = 0 ] && command -v apt-get >/dev/null && "
             "{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; } "
             ">/dev/null 2>&1; }\n"
             "command -v tmux >/dev/null || { echo 'tmux is not installed there, and could not be "
             "(install it, or use an image that has it)' >&2; exit 96; }\n")


class Follower:
    """Streams a session's pane log from where it was left, until the command's end marker;
    a dropped connection is followed again from the same byte."""

    def __init__(self, shell, sess: str, d: str, out, gone=lambda: None, ready=None):
        self.shell, self.sess, self.d, self.out = shell, sess, d, out
        self.ready = ready  # an `ssh ... sh -s` already logging in, for the first round
        self.gone = gone  # why the machine cannot come back (stopped, destroyed), or None
        self.offset = 0  # bytes of the log consumed
        self.started = False  # the start marker was seen
        self.rc: int | None = None
        self.ended = False
        self._held = b""

    def follow(self, setup: str, first: bool, limit: float | None = None) -> None:
        from trainsh.remote.sshspec import ssh_argv

        deadline = None if limit is None else time.monotonic() + limit
        tries = 0
        while not self.ended:
            d, sess = self.d, self.sess
            if first:  # (one signal: see run_command)
                waiter = f"tmux wait-for {sess}-done"
            else:  # a waiter of a dropped connection may hold the signal: look at the rc file,
                # and at the pane (remain-on-exit keeps the session of a run.sh that a signal
                # ended before it wrote one: Ctrl-C reaches the whole pane)
                waiter = (f"until [ -e {d}/rc ] || [ \"$(tmux display-message -p -t {sess} "
                          f"'#{{pane_dead}}' 2>/dev/null || echo 1)\" = 1 ]; do sleep 0.1; done")
            # the end marker reaches the log through pipe-pane a moment after the signal; only
            # run.sh writes it, after the rc file: without one, none is coming
            waiter += (f"; n=0; until tail -c 200 {d}/log | grep -q '778;{sess}' || [ ! -e {d}/rc ] "
                       "|| [ $n -ge 1000 ]; do sleep 0.005; n=$((n+1)); done")
            script = (setup + f"( {waiter} ) </dev/null >/dev/null 2>&1 & w=$!\n"
                      f"tail -c +{self.offset + 1} -f -s 0.01 --pid=$w {d}/log 2>/dev/null\n"
                      f"printf '\\n\\036ow-rc %s\\n' \"$(cat {d}/rc 2>/dev/null)\"\n"
                      f"tmux kill-session -t {sess} 2>/dev/null; exit 0\n")
            p, self.ready = self.ready, None
            if p is None:
                p = subprocess.Popen(ssh_argv(self.shell.spec, "sh -s"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
            timer = None
            if deadline is not None:
                timer = threading.Timer(max(0.0, deadline - time.monotonic()), p.kill)
                timer.daemon = True
                timer.start()
            try:
                p.stdin.write(script.encode())
                p.stdin.close()
                tail = self._pump(p.stdout)
                p.wait()
            except BaseException:
                p.kill()
                p.wait()
                raise
            finally:
                if timer:
                    timer.cancel()
            err = p.stderr.read().decode(errors="replace").strip()
            p.stderr.close()
            if p.returncode in (96, 97, 98):
                raise OwError(f"could not start the command on the machine: {err or 'tmux failed'}")
            if self.ended:
                self._parse_rc(tail)
                return
            if p.returncode == 255:  # the connection dropped: the command goes on there
                from trainsh.remote.shell import FATAL

                if any(f in err for f in FATAL):
                    raise OwError(f"ssh {self.shell.spec.destination}: {err.splitlines()[-1]}")
                first = False
                tries += 1
                last = err.splitlines()[-1] if err else "?"
                why = self.gone()  # a machine that stopped or went away: no use waiting for it
                if why:
                    raise OwError(f"lost the connection to the machine: {why}")
                if tries > 30 or (deadline and time.monotonic() > deadline):
                    raise OwError(f"lost the connection to the machine: {last}")
                time.sleep(min(0.2 * tries, 2.0))
                continue
            if deadline and time.monotonic() > deadline:
                return
            # the follower ended without the end marker: the session is gone without an rc
            self._parse_rc(tail)
            if self.rc is None:
                raise OwError("the command's tmux session ended without an exit code")
            self.ended = True

    def _pump(self, stream) -> bytes:
        """Copy the log to `out` between the markers; returns what came after the end marker."""
        start, end = f"\x1b]777;{self.sess}\x07".encode(), f"\x1b]778;{self.sess}\x07".encode()
        after = b""
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            if self.ended:
                after += chunk
                continue
            self.offset += len(chunk)
            data = self._held + chunk
            self._held = b""
            if not self.started:
                i = data.find(start)
                if i < 0:
                    self._held = data[-len(start):]
                    continue
                self.started, data = True, data[i + len(start):]
            j = data.find(end)
            if j >= 0:
                self._write(data[:j])
                self.ended = True
                after = data[j + len(end):]
                continue
            keep = _partial(data, end)
            self._write(data[: len(data) - keep])
            self._held = data[len(data) - keep:]
        return after

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.out.write(data.replace(b"\r\n", b"\n"))
        self.out.flush()

    def _parse_rc(self, tail: bytes) -> None:
        text = tail.decode(errors="replace")
        i = text.rfind("\x1eow-rc ")
        if i >= 0:
            word = text[i + 7:].split("\n", 1)[0].strip()
            if digits(word):
                self.rc = int(word)


def _partial(data: bytes, marker: bytes) -> int:
    """How many bytes at the end of `data` could begin `marker` (kept back for the next read)."""
    for k in range(min(len(marker) - 1, len(data)), 0, -1):
        if marker.startswith(data[-k:]):
            return k
    return 0


class Run:
    """What an ow run has that its end must deal with."""

    def __init__(self, machine: Machine | None = None):
        self.interrupted = False
        self.code = 130  # ow's exit code when interrupted (128 + the signal)
        self.syncer: Syncer | None = None
        self.machine = machine  # the machine the run is on now (another once one is lost)
        self.phase = "starting"  # what the run does on it, for a loss's line

    def interrupt(self, e: BaseException) -> int:
        self.interrupted = True
        self.code = signal_code(e)
        return self.code


def lifecycle(opts: Options, body, early=None) -> int:
    """Rent (or find) the machine, run `body(machine, run)` and end the machine whatever ended
    the run: its return, an error, Ctrl-C, SIGTERM or SIGHUP (exit 128 + the signal: 130, 143,
    129). `early` is a login to an `--existing` machine already under way (ow_connect.py)."""
    machine = Machine(opts)
    machine.early = early
    machine.check_key()
    run = Run(machine)
    old = {s: signal.signal(s, _on_term) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        machine.provision()
        return body(machine, run)
    except (KeyboardInterrupt, Interrupted) as e:
        run.interrupt(e)
        say("interrupted")
        return run.code
    finally:
        if run.syncer:
            run.syncer.close()
        run.machine.end(interrupted=run.interrupted)
        for s, h in old.items():
            signal.signal(s, h)


def ow_exec(opts: Options, argv: list[str], early=None) -> int:
    return lifecycle(opts, lambda machine, run: _recovering(run, opts, argv), early)


def _recovering(run: Run, opts: Options, argv: list[str]) -> int:
    """`_exec` on the run's machine; when the cloud reports that machine no longer running
    (outbid, reclaimed, stopped, gone) while it starts, syncs or runs the command, it is
    terminated and, up to opts.recover times, another is rented (the same options, its own
    label `LABEL-rK`, journaled before it is sent like the first) and the whole exec runs
    again there. The command starts over: ow cannot know what of it is safe to skip."""
    losses: list[str] = []
    lost_offers: list[str] = []
    first = run.machine.label
    while True:
        machine = run.machine
        try:
            return _exec(machine, run, opts, argv)
        except Exception:
            why = _loss(machine, run)
            if why is None:
                raise
            machine.was_lost = why
            losses.append(f"{machine.name} ({why}, while {run.phase})")
            lost_offers.append(machine.offer)
            if len(losses) > opts.recover:
                if opts.recover == 0:
                    raise OwError(f"{machine.name} was lost ({why}) while {run.phase}; "
                                  "--recover N rents another and runs the command again") from None
                raise OwError(f"lost {len(losses)} machines, more than --recover {opts.recover}: "
                              + ", ".join(losses)) from None
            say(f"{machine.name} was lost ({why}) while {run.phase}: terminating it, renting another "
                f"and running the command again (recovery {len(losses)} of {opts.recover})")
        if run.syncer:
            run.syncer.close()
            run.syncer = None
        machine.end()
        run.phase = "starting"
        run.machine = Machine(opts, label=f"{first}-r{len(losses)}")
        run.machine.holds = machine.holds
        run.machine.provision(avoid=tuple(lost_offers), orphans=False)


def _loss(machine: Machine, run: Run) -> str | None:
    """Why the failure just raised is the loss of a machine ow rented (the cloud's word), or
    None when it is an error of its own. While the machine starts, only a preemption is: a crash or a time-out
    there would likely come again on the next machine."""
    if not machine.rented or run.interrupted:
        return None
    if run.phase == "starting":  # (wait_ready kept what the cloud last said of it)
        return (machine.inst.preempted or None) if machine.inst is not None else None
    return machine.lost()


def _exec(machine: Machine, run: Run, opts: Options, argv: list[str]) -> int:
    run.phase = "starting"
    machine.wait_ready(login=not opts.existing)
    machine.guard()
    if opts.sync and opts.mounts:
        run.phase = "syncing"
        machine.settle_early()  # its connection first, for unison's to share
        run.syncer = Syncer(machine, opts)
        run.syncer.sync("up")
        if opts.editable:
            editable_install(machine, opts)
    run.phase = "running the command"
    rc = None
    try:
        rc = run_command(machine, opts, argv)
    except (KeyboardInterrupt, Interrupted) as e:
        run.interrupt(e)
    if run.syncer:
        run.phase = "syncing back"
        try:
            run.syncer.sync("back", goes=machine)
        except OwError as e:
            if _loss(machine, run):  # what the command made there went with the machine
                raise
            say(str(e))
            rc = rc or 1
    if run.interrupted:
        return run.code
    if rc:
        say(f"the command exited with {rc}")
    return rc or 0


# ---- ow ssh ----------------------------------------------------------------------------------

def shell_rc(opts: Options, d: str) -> str:
    """The interactive shell's rc file: the user's .bashrc, the env-file values (sourced from
    a 0600 file, which is then removed), then the barrier: no prompt while `busy` exists."""
    cwd = opts.mounts[0].remote_cd if opts.mounts else '"$HOME"'
    lines = ["[ -f ~/.bashrc ] && . ~/.bashrc"]
    if opts.env:
        lines.append(f"{{ set +x; . {d}/env; rm -f {d}/env; }} 2>/dev/null")
    lines += [
        f"if [ -e {d}/busy ]; then printf 'ow: waiting for the first sync...\\n';"
        f" while [ -e {d}/busy ]; do sleep 0.05; done; fi",
        f"[ -s {d}/failed ] && cat {d}/failed",
        f"cd {cwd} 2>/dev/null",
        f"rm -f {d}/rc",
    ]
    return "\n".join(lines) + "\n"


def ow_ssh(opts: Options) -> int:
    return lifecycle(opts, lambda machine, run: _ssh(machine, run, opts))


def _ssh(machine: Machine, state: Run, opts: Options) -> int:
    from trainsh.remote.sshspec import ssh_argv

    live = None
    first_done = threading.Event()
    problems: list[str] = []
    machine.wait_ready()
    machine.guard()
    run = os.urandom(4).hex()
    d = f'"$HOME"/{RUN_DIR}/{run}'
    syncing = opts.sync and bool(opts.mounts)
    setup = f"umask 077; mkdir -p {d}\n"
    if machine.provider.name == "vast":
        setup += "touch ~/.no_auto_tmux\n"  # Vast's images put a login into tmux otherwise
    if syncing:
        setup += f": > {d}/busy\n"
    setup += _heredoc(f"{d}/rc", shell_rc(opts, d))
    if opts.env:
        for v in opts.env.values():
            masking.register(v)
        setup += _heredoc(f"{d}/env", exports(opts.env))
    machine.shell.run(["sh", "-s"], input=setup, check=True, timeout=60)

    def first_sync():
        nonlocal live
        from trainsh.transfer.unison import LiveSync

        try:
            syncer = state.syncer = Syncer(machine, opts)
            syncer.sync("up")
            if opts.editable:
                editable_install(machine, opts)
            lives = []
            for m, u in syncer.pairs:
                ls = LiveSync(u, on_result=_live_report(m, u, machine, problems))
                ls.start()
                for e in ls.errors:
                    say(e)
                problems.extend(ls.errors)
                lives.append(ls)
            live = lives
            machine.shell.run(["rm", "-f", f"{machine.shell.home()}/{RUN_DIR}/{run}/busy"], timeout=60)
        except Exception as e:  # noqa: BLE001 - the shell must not wait forever
            problems.append(str(e))
            msg = f"ow: the first sync failed: {e}\n"
            try:
                home = machine.shell.home()
                machine.shell.run(["sh", "-c", f"cat > {home}/{RUN_DIR}/{run}/failed; "
                                   f"rm -f {home}/{RUN_DIR}/{run}/busy"], input=msg, timeout=60)
            except Exception:  # noqa: BLE001
                pass
        finally:
            first_done.set()

    if syncing:
        threading.Thread(target=first_sync, daemon=True).start()
    else:
        first_done.set()
    say(f"shell on {machine.name}" + (" (the prompt comes once the first sync is done)" if syncing else ""))
    argv = ssh_argv(machine.shell.spec, f"exec bash --rcfile {d}/rc -i", tty=True, batch=False)
    try:
        proc = subprocess.Popen(argv)
        if sys.stdin.isatty():
            _shell_open.set()
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:
                continue  # Ctrl-C belongs to the remote shell (the terminal sends it there)
    except Interrupted as e:
        state.interrupt(e)
        proc.terminate()
        proc.wait()
    finally:
        _shell_open.clear()
    first_done.wait()
    try:  # the rc file, and the env file when the shell never read it (no login)
        machine.shell.run(["sh", "-c", f"rm -rf {d}"], timeout=20)
    except Exception:  # noqa: BLE001 - a dropped connection: the machine ends or keeps it
        pass
    if live:
        for ls in live:
            try:
                res = ls.stop(final=True)
                if res is not None:  # the machine's side of a conflict comes here before it goes
                    problems.extend(keep_theirs(ls.unison, res.conflicts, machine))
                    res.conflicts = []
                    _report(res, None, problems)
            except Exception as e:  # noqa: BLE001
                problems.append(f"the final sync failed: {e}")
        say("final sync done")
    for p in dict.fromkeys(problems):
        say(p)
    return state.code if state.interrupted else (1 if problems and not live else 0)


def _live_report(m: Mount, u, machine: Machine, problems: list[str]):
    """`on_result` of a live sync: each conflict is said when unison first sees it (the shell is
    open: a line of its own), once until it is resolved; failures are said at the end."""
    open_: set[str] = set()

    def on_result(res) -> None:
        now = {_conflict_path(c) for c in res.conflicts}
        for rel in sorted(now - open_):
            say(conflict_line(m, u, rel, machine))
        # a run over some paths: a conflict it did not see again is settled, if the run covered it
        covered = (lambda p: True) if res.paths is None else \
            (lambda p: any(p == q or p.startswith(q + "/") for q in res.paths))
        open_.difference_update({p for p in open_ if covered(p) and p not in now})
        open_.update(now)
        for f in res.failures:
            problems.append(f"not synced: {f}")

    return on_result


def _report(res, mount, problems: list[str]) -> None:
    for c in res.conflicts:
        problems.append(f"conflict (changed on both sides, left as it is): {c}")
    for f in res.failures:
        problems.append(f"not synced: {f}")
