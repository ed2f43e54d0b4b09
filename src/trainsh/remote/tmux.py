"""tmux sessions on a host: open, send a command and learn its exact exit code, close.

How a command runs. A session whose login shell is bash (4.4 or later) sources HOOKS as it
opens, and the runner types each command into it as written (see HOOKS): the pane reads as if
the user had typed it, and the shell's prompt hooks mark it and write its exit code. A command
that takes the hooks away is caught at the next prompt (Tmux._lost_hooks). Any other shell,
and a command with secrets, is typed the wrapper instead:

     { printf '\\33]777;CHANNEL\\7'; COMMAND
    } ; echo $? > "$TRAINSH_RUN/N.rc"; tmux wait-for -S CHANNEL

The brace group keeps heredocs, comments, quotes and a trailing `;` intact, runs in the
session's own shell (so `cd` and `export` persist), and its status is the command's status.
The leading space keeps it out of shell history where the shell ignores space-led lines
(HISTCONTROL=ignorespace, as Debian's default .bashrc sets); it never holds a secret value. Completion is an event: the trailer writes
the exit status to the command's rc file (in the session's folder, $TRAINSH_RUN, set when the
session opens: a short line types faster), then signals a channel used for this command only. A `pane-died` hook
signals the same channel if the shell itself exits, so nothing waits on a dead pane.

A waiter (`tmux wait-for CHANNEL`) is never killed: tmux keeps a killed waiter registered and
it would swallow the signal. A timeout instead interrupts the pane and releases the waiter by
signalling the channel itself. RC is the truth; a signal is only the wake-up.

Everything the pane prints goes to a log file on the host (pipe-pane), raw. The first thing
the group runs prints an OSC sequence naming the channel: terminals ignore it, the log keeps
it, and it marks exactly where the command's output begins (the typed text is echoed once or
twice depending on when the shell reads it, and holds only the escaped form). `clean()`
turns the rest into text.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from trainsh import masking
from trainsh.remote.shell import Shell, ShellError

_ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[PX^_][^\x1b]*\x1b\\|\x1b[@-Z\\-_]|\x1b.")


def clean(raw: bytes) -> str:
    """Terminal output -> plain text: escape sequences gone, carriage returns applied."""
    text = _ANSI.sub(b"", raw).decode("utf-8", "replace").replace("\r\n", "\n")
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = [p for p in line.split("\r") if p]
            line = parts[-1] if parts else ""
        lines.append(line)
    return "\n".join(lines)


# Runs a command that uses secrets (see Tmux.typed_text): argv is N, the shell, the command.
# It takes the values from $TRAINSH_RUN/sN.env (NAME=VALUE entries, NUL-separated) and removes
# the file, then runs `SHELL -c COMMAND` with them in its environment under a terminal of its
# own, and copies that terminal's output to the pane with every value masked. Whatever the
# command writes, to stdout, stderr or /dev/tty, passes through the mask before tmux (its
# scrollback, the pane log) sees it. Keys typed into the pane (Ctrl-C at a timeout) reach the
# command; its exit status is ours. python3, standard library only, as the host-side waits.
MASKER = r"""
import fcntl, os, pty, re, select, signal, sys, termios, time, tty
n, shell, text = sys.argv[1], sys.argv[2], sys.argv[3]
path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "s%s.env" % n)
env, values = dict(os.environb), []
try:
    with open(path, "rb") as f:
        data = f.read()
except OSError:
    data = b""
try:
    os.unlink(path)
except OSError:
    pass
for item in data.split(b"\0"):
    k, eq, v = item.partition(b"=")
    if eq:
        env[k] = v
        if v:
            values.append(v)
for v in list(values):  # the terminal prints a newline as CR LF; a line of it may show alone
    if b"\n" in v:
        values.append(v.replace(b"\n", b"\r\n"))
        values += [line for line in v.splitlines() if len(line) >= 8]
values = sorted(set(values), key=len, reverse=True)
rx = re.compile(b"|".join(re.escape(v) for v in values)) if values else None
child = None
def interrupted(signum, frame):  # (passed on: the command decides how it ends)
    if child is None:
        os._exit(128 + signum)
    try:
        os.killpg(child, signum)
    except OSError:
        pass
signal.signal(signal.SIGINT, interrupted)
signal.signal(signal.SIGTERM, interrupted)
saved = None
if os.isatty(0):
    saved = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)  # keys go to the command's terminal, Ctrl-C included
try:
    child, master = pty.fork()
    if child == 0:
        try:
            os.execvpe(shell, [shell, "-c", text], env)
        except OSError as e:
            os.write(2, ("%s: %s\r\n" % (shell, e.strerror)).encode())
        os._exit(127)
    def winch(*_):
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass
    winch()
    signal.signal(signal.SIGWINCH, winch)
    def put(fd, data):
        while data:
            try:
                data = data[os.write(fd, data):]
            except OSError:
                return
    def show(buf, final=False):
        # A value split across two reads must not pass half by half: hold back the end
        # from where a value may begin (and any whole one that runs into it), until the
        # rest shows whether it does. Never released on a timer: that could split one.
        cut = len(buf)
        if not final and values:
            for q in range(max(0, len(buf) - len(values[0]) + 1), len(buf)):
                tail = buf[q:]
                if any(len(v) > len(tail) and v.startswith(tail) for v in values):
                    cut = q
                    break
            for m in rx.finditer(buf, 0, len(buf)) if cut < len(buf) else ():
                if m.start() >= cut:
                    break
                if m.end() > cut:
                    cut = m.start()
                    break
        put(1, rx.sub(b"***", buf[:cut]) if rx else buf[:cut])
        return buf[cut:]
    fds, pend, status, until = [master, 0], b"", None, None
    while True:
        try:
            ready = select.select(fds, [], [], 0.05)[0]
        except InterruptedError:
            continue
        if 0 in ready:
            try:
                keys = os.read(0, 4096)
            except OSError:
                keys = b""
            if keys:
                put(master, keys)
            else:
                fds.remove(0)
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            pend = show(pend + data)
        if status is None:
            pid, st = os.waitpid(child, os.WNOHANG)
            if pid:  # read what it wrote last; a process it left behind is hung up
                status, until = st, time.monotonic() + 1
        elif master not in ready or time.monotonic() > until:
            break
    show(pend, final=True)
    if status is None:
        status = os.waitpid(child, 0)[1]
finally:
    if saved is not None:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
"""


# Sourced by a bash session's shell as it opens (see Tmux.open), so that its pane shows each
# command as the user wrote it: the runner announces a command in $TRAINSH_RUN/next ("N
# CHANNEL") and types the command alone. PS0 (expanded once the shell has read the line, in a
# subshell) marks it started (N.go) and prints the start marker; PROMPT_COMMAND's first entry
# writes the line's exit status to N.rc, prints the end marker and signals the channel. Both
# skip a line nobody announced (a user's own, typed into an attached pane). The shell's own
# PS0 and PROMPT_COMMAND keep running after ours, with $? as it was.
# A command may drop these hooks (PROMPT_COMMAND=, PS0=, exec bash): then no exit code
# comes, and Tmux.wait sees the shell back at its prompt (AT_PROMPT) and recovers it.
# Sourced again then, with no argument: it erases the line that sourced it.
HOOKS = r"""case ${BASH_VERSION-} in ''|[123].*|4.[0-3].*) return 0 ;; esac  # (PS0: bash 4.4)
trap 'echo $? > "$TRAINSH_RUN/shell.rc"' EXIT
__ts_go() {
  local n c
  { read -r n c < "$TRAINSH_RUN/next"; } 2>/dev/null || return 0
  if [ -e "$TRAINSH_RUN/$n.go" ] || [ -e "$TRAINSH_RUN/$n.rc" ]; then return 0; fi
  : > "$TRAINSH_RUN/$n.go"
  printf '\33]777;%s\7' "$c"
}
__ts_end() {
  local s=$? n c
  { read -r n c < "$TRAINSH_RUN/next"; } 2>/dev/null || return $s
  if [ -e "$TRAINSH_RUN/$n.go" ] && [ ! -e "$TRAINSH_RUN/$n.rc" ]; then
    echo "$s" > "$TRAINSH_RUN/$n.rc"
    printf '\33]778;%s\7' "$c"
    tmux wait-for -S "$c"
  fi
  return $s
}
PS0='$(__ts_go)'"${PS0//'$(__ts_go)'/}"
PROMPT_COMMAND="__ts_end;${PROMPT_COMMAND//__ts_end;/}"
: > "$TRAINSH_RUN/hooked"
if [ "${1-}" = open ]; then printf '\33[H\33[2J\33[3J'; else printf '\r\33[1A\33[2K'; fi
"""

# Is a hooked session's shell back at its prompt without an exit code for command N? python3,
# standard library only, as the host-side waits; argv: pane pid, pane tty, N's rc file. Prints
# "rc CODE" when the code is there, "prompt" when the shell waits at its prompt without it:
# the terminal's foreground process group is the shell's own, the shell's line editor has the
# terminal (not canonical: a command reading a line has it canonical), and nothing typed is
# left unread (keys sent a moment ago and not yet read are not a prompt reached after them).
# The rc file is read last: the hook writes it before the line editor takes the terminal.
AT_PROMPT = r"""
import fcntl, os, struct, sys, termios
pid, tty, rc = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def code():
    try:
        with open(rc) as f:
            return f.read().strip()
    except OSError:
        return ""
state = "busy"
try:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        editing = not termios.tcgetattr(fd)[3] & termios.ICANON
        unread = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)
    if int(fields[5]) == pid and editing and not unread:
        state = "prompt"
except (OSError, ValueError, IndexError):
    pass
c = code()
print("rc " + c if c else state)
"""


def tmux_literal(value: str, format: bool = False) -> str:
    """A value as one tmux argument: tmux reads an argument's trailing `;` as the end of a
    command (unless written `\\;`), and where it expands formats, `#` starts one (`#(cmd)`
    runs cmd), so it is written `##` there."""
    if format:
        value = value.replace("#", "##")
    return value[:-1] + "\\;" if value.endswith(";") else value


_SEP = "\x1etrainsh-"  # record separator in a batched remote answer
LONG_COMMAND = 8000  # longer commands are sourced from a file, not typed


def wait_process(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait up to timeout for proc to exit; True when it did.

    Popen.wait(timeout) polls with growing sleeps, which adds milliseconds to every command;
    a pidfd wakes exactly when the process ends (Linux), with Popen.wait as the fallback.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        ready = select.poll()
        ready.register(fd, select.POLLIN)
        if not ready.poll(max(0, timeout) * 1000):
            return False
    finally:
        os.close(fd)
    proc.wait()
    return True


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def start_marker(channel: str) -> bytes:
    """What a command prints (invisibly) as it starts: ESC ] 777 ; CHANNEL BEL."""
    return b"\x1b]777;" + channel.encode() + b"\x07"


def end_marker(channel: str) -> bytes:
    """What its trailer prints after writing the exit code: ESC ] 778 ; CHANNEL BEL."""
    return b"\x1b]778;" + channel.encode() + b"\x07"


@dataclass
class Pending:
    """A command sent to a session whose exit code has not been collected yet."""

    channel: str
    rc_path: str
    text: str
    n: int  # the command's number in its session: its rc file is $TRAINSH_RUN/n.rc
    started: float  # time.time() when sent
    deadline: float | None = None  # time.time() by which it must end, or None
    rc: int | None = None
    done: bool = False
    note: str = ""  # why there is no rc (timed out, shell exited, lost)
    step: int | None = None  # the recipe step that sent it
    collected: bool = False  # output and exit code recorded
    output: str = ""
    secrets: list = field(default_factory=list)  # TRAINSH_SECRET_* names it uses
    bare: bool = False  # typed as written, into a hooked shell (HOOKS): the hooks end it


@dataclass
class Session:
    """A tmux session on a host, as the runner knows it."""

    name: str  # the recipe's name for it
    real: str  # tmux's name (scoped to the job)
    host: str  # the recipe's host name
    run_dir: str  # folder on the host for rc files and the pane log
    log_offset: int = 0  # pane log read up to here (output of collected commands)
    cmd_offset: int = 0  # the latest command's echo lies after this offset
    marker: str = ""  # channel of the latest command sent, found in its echo
    count: int = 0  # commands sent so far
    current: Pending | None = None
    prefetch: tuple[int, bytes] | None = None  # (offset, pane log bytes) fetched with a command

    @property
    def log_path(self) -> str:
        return f"{self.run_dir}/{self.real}.log"

    @property
    def rc_dir(self) -> str:
        """Where its commands' exit codes go; $TRAINSH_RUN in the session's shell."""
        return f"{self.run_dir}/{self.real}"

    def rc_path(self, n: int) -> str:
        return f"{self.rc_dir}/{n}.rc"

    @property
    def target(self) -> str:
        return f"={self.real}:"


class Tmux:
    """tmux on one host, through that host's Shell."""

    def __init__(self, shell: Shell, socket: str | None = None):
        self.shell = shell
        self.socket = socket
        self.options: dict[str, str] = {}  # from tmux.config: applied to every session we open
        self.hidden: set[str] = set()  # variables a tmux server we start must not inherit
        self._maskers: set[str] = set()  # session folders that hold MASKER already
        self._hooked: dict[str, bool] = {}  # session -> its shell has HOOKS (known so far)
        self._cuts: dict[str, int] = {}  # channel -> pane log offset where its output ends
        self._recovering: set[str] = set()  # channels whose exit code is read at the prompt
        self.pane_command: str | None = None  # the sessions' shell, when not the login shell
        self.log_command = "exec cat >> {log}"  # what pipe-pane runs ({log}: the pane log, quoted)

    def argv(self, *args: str) -> list[str]:
        base = ["tmux"] + (["-S", self.socket] if self.socket else [])
        return base + list(args)

    def cmdline(self, *args: str) -> str:
        return shlex.join(self.argv(*args))

    def run(self, *args: str, check: bool = True, timeout: float = 30):
        return self.shell.run(self.argv(*args), check=check, timeout=timeout)

    # ---- sessions
    def open(self, s: Session, cwd: str | None = None) -> None:
        t = s.target
        args = ["start-server"]
        for k, v in self.options.items():  # before the pane exists, so history-limit counts
            args += [";", "set-option", "-g", tmux_literal(k), tmux_literal(v)]
        args += [";", "new-session", "-d", "-s", tmux_literal(s.real), "-x", "200", "-y", "50"]
        if cwd:
            args += ["-c", tmux_literal(cwd, format=True)]
        args += ["-e", tmux_literal(f"TRAINSH_RUN={s.rc_dir}")]
        if self.pane_command:
            args.append(tmux_literal(self.pane_command))
        # The shell records its own exit status: tmux 3.3 can mark a pane dead without ever
        # filling in #{pane_dead_status}. (A wrapper process would do it too, but then the
        # shell is no longer the pane's session leader and a closed session would not hang up
        # the commands still running in it.) A login shell that is bash takes HOOKS too (they
        # clear the screen of this line) and every login shell says when it has read the line,
        # so the first command meets a shell that has them. (An allocation's shell runs on a
        # node whose tmux cannot be signalled: it keeps the typed wrapper.)
        first = """ trap 'echo $? > "$TRAINSH_RUN/shell.rc"' EXIT"""
        ready = f"{s.real}-ready"
        if not self.pane_command:
            first += f'; [ -z "$BASH_VERSION" ] || . "$TRAINSH_RUN/hooks.sh" open; tmux wait-for -S {ready}'
        args += [";", "set-option", "-t", t, "remain-on-exit", "on",
                 ";", "set-option", "-t", t, "@ts_chan", "ts-none",
                 ";", "set-hook", "-t", t, "pane-died", 'run-shell -C "wait-for -S #{@ts_chan}"',
                 ";", "pipe-pane", "-t", t, "-o",
                 tmux_literal(self.log_command.format(log=shlex.quote(s.log_path)), format=True),
                 ";", "send-keys", "-t", t, "-l", tmux_literal(first),
                 ";", "send-keys", "-t", t, "Enter"]
        d = shlex.quote(s.rc_dir)
        script = f"mkdir -p {d} && rm -f {d}/next {d}/hooked && {self.cmdline(*args)}"
        if not self.pane_command:
            # (`timeout`: a shell that never reads the line must not hold the run up; its
            # waiter then stays registered on a channel nobody uses again)
            script = (f"mkdir -p {d} && (umask 077 && cat > {d}/hooks.sh <<'TRAINSH_HOOKS'\n"
                      f"{HOOKS}TRAINSH_HOOKS\n) && {script}"
                      f" && {{ timeout 10 {self.cmdline('wait-for', ready)} || true; }}"
                      f" && if [ -e {d}/hooked ]; then echo hooked; fi")
        env = None
        if self.shell.is_local():  # a server started here would keep our whole environment
            env = {k: v for k, v in os.environ.items() if k not in self.hidden}
        r = self.shell.script(script, timeout=30, env=env)
        if not r.ok:
            raise ShellError(f"could not open tmux session {s.real} on {self.shell.name}: "
                             f"{(r.stderr or r.stdout).strip() or 'exit ' + str(r.returncode)}", r)
        self._hooked[s.real] = r.stdout.strip().endswith("hooked")

    def hooked(self, s: Session) -> bool:
        """Does the session's shell have HOOKS (its commands are typed as written)? Known from
        open(); for a session an earlier runner opened, asked of the host once."""
        if s.real not in self._hooked:
            self._hooked[s.real] = self.shell.read_file(f"{s.rc_dir}/hooked") is not None
        return self._hooked[s.real]

    def exists(self, s: Session) -> bool:
        return self.run("has-session", "-t", s.target, check=False).returncode == 0

    def pane_state(self, s: Session) -> tuple[bool, str] | None:
        """(dead, exit status) of the session's pane, or None when the session is gone."""
        r = self.run("display-message", "-p", "-t", s.target, "#{pane_dead} #{pane_dead_status}",
                     check=False)
        if not r.ok:
            return None
        dead, _, status = r.stdout.strip().partition(" ")
        return dead == "1", status

    def close(self, s: Session) -> None:
        self.run("kill-session", "-t", s.target, check=False)

    def interrupt(self, s: Session) -> None:
        self.run("send-keys", "-t", s.target, "C-c", check=False)

    def signal(self, channel: str) -> None:
        self.run("wait-for", "-S", channel, check=False)

    def set_options(self, options: dict[str, str]) -> None:
        """Apply global options to the running server (if any) and to every session opened
        later: a server with no session exits, and would forget them."""
        self.options.update({k: str(v) for k, v in options.items()})
        args: list[str] = []
        for k, v in self.options.items():
            args += [";", "set-option", "-g", tmux_literal(k), tmux_literal(v)]
        if self.run("has-session", check=False).ok:
            self.run(*args[1:])

    # ---- commands
    def typed_text(self, text: str, channel: str, n: int, secrets: tuple[str, ...] = ()) -> str:
        """What is typed for a command: see the module's first lines. A single line that is
        safe inside `{ ...; }` (no comment, heredoc or trailing operator) skips the second
        line, which the shell would otherwise read after a continuation prompt. The trailer
        prints an end marker after the exit code is written: output ends exactly there.

        With secrets, the command runs in a child shell of its own under MASKER, which gives it
        the values from a 0600 file (and removes it) and masks them in all it prints; the
        session's own shell never holds them, and its typed text only names them."""
        mark = f"printf '\\33]777;{channel}\\7'"
        rc = f'"$TRAINSH_RUN/{n}.rc"'
        end = f"printf '\\33]778;{channel}\\7'; tmux wait-for -S {channel}"
        if secrets:
            python = shlex.quote(sys.executable) if self.shell.is_local() else "python3"
            return (f' {mark}; {python} "$TRAINSH_RUN/mask.py" {n} "${{BASH:-${{SHELL:-sh}}}}"'
                    f" {shlex.quote(text)}; echo $? > {rc}; {end}")
        trailer = f"echo $? > {rc}; {end}"
        stripped = text.strip()
        if "\n" not in stripped and "#" not in stripped and "<<" not in stripped \
                and not stripped.endswith((";", "&", "|", "\\")):
            return f" {{ {mark}; {stripped}; }} ; {trailer}"
        return f" {{ {mark}; {text}\n}} ; {trailer}"

    def write_secrets(self, s: Session, n: int, values: dict[str, str]) -> list[str]:
        """The 0600 file a command with secrets reads and removes (NAME=VALUE entries,
        NUL-separated: values may hold newlines, never a NUL), and MASKER beside it once per
        session. Returns the path of the file that holds values."""
        if s.rc_dir not in self._maskers:
            self.shell.write_file(f"{s.rc_dir}/mask.py", MASKER.encode(), 0o600)
            self._maskers.add(s.rc_dir)
        path = f"{s.rc_dir}/s{n}.env"
        self.shell.write_file(path, b"".join(f"{k}={v}\0".encode() for k, v in values.items()), 0o600)
        return [path]

    @staticmethod
    def bare_text(text: str) -> str:
        """What is typed for a command into a hooked shell: the command as written (after a
        space, for HISTCONTROL=ignorespace); several lines, or a line that goes on to the next,
        in one `{ ... }` group, so that they end as one."""
        stripped = text.strip()
        if "\n" not in stripped and "<<" not in stripped \
                and not stripped.endswith(("&&", "||", "|", "\\")):
            return f" {stripped}"
        return f" {{ {text}\n}}"

    def send(self, s: Session, p: Pending) -> None:
        """Type a command into the session (one tmux call)."""
        argv = self._send_argv(s, p)
        if p.bare and not self.shell.is_local():
            argv = ["sh", "-c", f"{self._announce(s, p)} && {shlex.join(argv)}"]
        r = self.shell.run(argv, check=False, timeout=30)
        if not r.ok:
            raise ShellError(f"could not send to tmux session {s.real}: {r.stderr.strip()}", r)

    def run_command(self, s: Session, p: Pending) -> Pending:
        """Send a command and wait for it in one tmux client: `wait-for` queued right behind
        `send-keys` is registered before the shell can even read the keys, so the signal
        cannot go past it, and a step costs one process. On a remote host the same ssh
        command also returns the exit code and the new output: one round trip per step."""
        argv = self._send_argv(s, p) + [";", "wait-for", p.channel]
        announce = f"{self._announce(s, p)} && " if p.bare and not self.shell.is_local() else ""
        if self.shell.is_local():
            with tempfile.TemporaryFile() as err:
                proc = subprocess.Popen(self.shell.argv_for(argv), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err)
                return self.wait(s, p, proc=proc, sent=err)
        script = (f"{announce}{shlex.join(argv)}; echo; echo {_SEP}send $?; echo {_SEP}rc; "
                  f"{{ read -r r < {shlex.quote(p.rc_path)}; }} 2>/dev/null && echo \"$r\";"  # builtin
                  f" echo {_SEP}log; tail -c +{s.log_offset + 1} {shlex.quote(s.log_path)} 2>/dev/null")
        with tempfile.TemporaryFile() as out:  # a file, not a pipe: no buffer to fill up
            proc = subprocess.Popen(self.shell.argv_for(["sh", "-c", script]), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
            return self.wait(s, p, proc=proc, batch=out)

    def _send_argv(self, s: Session, p: Pending) -> list[str]:
        s.marker = p.channel
        s.cmd_offset = s.log_offset
        text = p.text
        if len(text.encode()) > LONG_COMMAND:  # tmux counts bytes
            # tmux refuses a command line much past 16 KB: the shell sources the text from a
            # file instead (same shell, so cd, export and heredocs behave the same)
            self.shell.write_file(f"{s.rc_dir}/{p.n}.sh", text.encode() + b"\n", 0o600)
            text = f'. "$TRAINSH_RUN/{p.n}.sh"'
        # A hooked shell is typed the command as written (a command with secrets keeps the
        # wrapper: it runs under MASKER): the hooks mark it and end it.
        p.bare = not p.secrets and self.hooked(s)
        if p.bare:
            if self.shell.is_local():
                self._announce(s, p)
            typed = self.bare_text(text)
        else:
            typed = self.typed_text(text, p.channel, p.n, tuple(p.secrets))
        return self.argv("set-option", "-t", s.target, "@ts_chan", p.channel,
                         ";", "send-keys", "-t", s.target, "-l", tmux_literal(typed),
                         ";", "send-keys", "-t", s.target, "Enter")

    def _announce(self, s: Session, p: Pending) -> str:
        """Tell a hooked shell which command comes next ($TRAINSH_RUN/next: "N CHANNEL"),
        before its keys are sent: written here, or the shell line that writes it (on a host,
        run in the same call as the keys)."""
        line, path = f"{p.n} {p.channel}\n", f"{s.rc_dir}/next"
        if self.shell.is_local():
            with open(path, "w") as f:
                f.write(line)
            return ""
        return f"printf %s {shlex.quote(line)} > {shlex.quote(path)}"

    def _lost_hooks(self, s: Session, p: Pending) -> int | None:
        """A command typed as written whose exit code did not come: the exit code when it came
        after all, else None. When the shell is back at its prompt without it, the command
        dropped the hooks (PROMPT_COMMAND=, PS0=, exec bash): the exit status is still the
        shell's `$?` there, so it is written by a line typed for that (which takes the hooks
        back and erases itself). Typed once: a shell at its prompt again without the code
        (one that cannot run the line) fails the command, its exit code lost."""
        python = shlex.quote(sys.executable) if self.shell.is_local() else "python3"
        show = self.cmdline("display-message", "-p", "-t", s.target, "#{pane_pid} #{pane_tty}")
        script = (f"set -- $({show}) && [ $# -eq 2 ] && "
                  f"{python} -c {shlex.quote(AT_PROMPT)} \"$1\" \"$2\" {shlex.quote(p.rc_path)}")
        try:
            r = self.shell.run(["sh", "-c", script], check=False, timeout=30)
        except ShellError:
            return None
        answer = r.stdout.strip()
        if answer.startswith("rc "):
            try:
                return int(answer[3:])
            except ValueError:
                return None
        if answer != "prompt":
            return None
        self._cuts.setdefault(p.channel, _size(s.log_path) if self.shell.is_local()
                              else self._log_size(s))
        if p.channel in self._recovering:
            p.done, p.note = True, ("its exit code was lost: the command took away the shell's "
                                    "prompt hooks and the shell could not take them back")
            return None
        self._recovering.add(p.channel)
        line = (f' echo $? > "$TRAINSH_RUN/{p.n}.rc"; . "$TRAINSH_RUN/hooks.sh";'
                f" tmux wait-for -S {p.channel}")
        self.run("send-keys", "-t", s.target, "-l", tmux_literal(line),
                 ";", "send-keys", "-t", s.target, "Enter", check=False)
        return None

    def _log_size(self, s: Session) -> int:
        r = self.shell.run(["sh", "-c", f"wc -c < {shlex.quote(s.log_path)}"], check=False)
        try:
            return int(r.stdout.strip())
        except ValueError:
            return 0

    def read_rc(self, rc_path: str) -> int | None:
        data = self.shell.read_file(rc_path)
        if not data or not data.strip():
            return None
        try:
            return int(data.strip())
        except ValueError:
            return None

    def wait(self, s: Session, p: Pending, *, until: float | None = None, grace: float = 2.0,
             proc: subprocess.Popen | None = None, batch=None, sent=None) -> Pending:
        """Block until the pending command ends, the pane dies, or a deadline passes.

        `p.deadline` is the command's own limit: reaching it interrupts the command (Ctrl-C)
        and marks it timed out. `until` is the caller's limit (a wait step's timeout): reaching
        it only stops waiting and leaves the command running.
        """
        if p.done:
            return p
        # (a command an earlier runner sent: into a hooked shell, without secrets, it was typed
        # as written -- its journal row was written before it was sent)
        p.bare = p.bare or (not p.secrets and self.hooked(s))
        limits = [t for t in (until, p.deadline) if t is not None]
        end = min(limits) if limits else None
        local = self.shell.is_local()
        if proc is None:
            rc = self.read_rc(p.rc_path)
            if rc is not None:
                p.rc, p.done = rc, True
                return p
            # If the command ends before the waiter connects, tmux remembers its one signal
            # and the waiter takes it. So no rc check (and no release signal) right after the
            # spawn: a second unmatched signal would cancel the remembered one.
            proc = self._waiter(p.channel, p.rc_path)
        checked = probed = time.monotonic()

        def probe() -> float:
            """How often a command typed as written looks whether its hooks are gone: soon
            after it starts, then a tenth of its time so far (it is noticed at the prompt
            that long after its end), at most every 30 s (the pane's own periodic check)."""
            return min(30.0, max(1.0 if local else 2.0, (time.time() - p.started) / 10))
        try:
            while True:
                slice_ = 1.0 if end is None else max(0.0, min(1.0, end - time.time()))
                if wait_process(proc, slice_):
                    code, proc = proc.returncode, None
                    if code == 255 and getattr(self.shell, "is_lost", lambda: False)():
                        raise ShellError(self.shell.lost_as[0])  # its machine went (reach/cloud.py)
                    if batch is not None and self._take_batch(s, p, batch):
                        return p
                    self._check_sent(s, p, code, sent, batch)
                    batch = sent = None
                elif (not local and time.monotonic() - checked < 30
                      and not (p.bare and time.monotonic() - probed >= probe())
                      and (end is None or time.time() < end)):
                    continue  # remote: no round trip per slice; the waiter wakes us
                rc = self.read_rc(p.rc_path)
                if rc is None and p.bare and time.monotonic() - probed >= probe() \
                        and time.time() - p.started >= 1:
                    probed = time.monotonic()
                    rc = self._lost_hooks(s, p)
                    if p.done:
                        return p
                if rc is not None:  # (with the waiter still there: its signal went astray)
                    p.rc, p.done = rc, True
                    return p
                if proc is None or time.monotonic() - checked > (5 if local else 30):
                    # Woken without an rc, or a periodic check: is the shell still there?
                    checked = time.monotonic()
                    state = self.pane_state(s)
                    if state is None:
                        p.done, p.note = True, "its tmux session is gone"
                        return p
                    if state[0]:
                        status = self.read_rc(f"{s.rc_dir}/shell.rc")  # written before the pane dies
                        if status is None:
                            status = state[1] or "?"
                        p.done, p.note = True, f"the session's shell exited (status {status})"
                        return p
                if end is not None and time.time() >= end:
                    if p.deadline is not None and time.time() >= p.deadline:
                        self._interrupt_timed_out(s, p, grace)
                    return p
                if proc is None:
                    proc = self._waiter(p.channel, p.rc_path)  # a stray wake-up: wait again
        finally:
            if proc is not None and proc.poll() is None:
                self.signal(p.channel)  # release our own waiter; never kill it
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def _check_sent(self, s: Session, p: Pending, code: int, sent, batch) -> None:
        """The first client of run_command ended without an exit code for the command: if
        its send half failed, say so now rather than wait for a command never typed."""
        if sent is None and batch is None:
            return
        if batch is not None:
            batch.seek(0)
            text = batch.read().decode(errors="replace")
            m = re.search(re.escape(_SEP) + r"send (\d+)", text)
            if not m or m.group(1) == "0":
                return  # (no answer at all: the connection dropped; wait on)
            why = text[: text.find(_SEP)].strip().splitlines()
        else:
            if code == 0:
                return
            sent.seek(0)
            why = sent.read().decode(errors="replace").strip().splitlines()
        if self.read_rc(p.rc_path) is None and self.pane_state(s) is not None:
            raise ShellError(f"could not send the command to tmux session {s.real}: "
                             f"{why[-1] if why else 'tmux failed'}")

    def _take_batch(self, s: Session, p: Pending, batch) -> bool:
        """Read what a batched remote run_command returned: (rc, new log bytes)."""
        batch.seek(0)
        data = batch.read()
        head, sep, rest = data.partition(f"\n{_SEP}rc\n".encode())
        if not sep:
            return False
        rc_text, sep, log = rest.partition(f"{_SEP}log\n".encode())
        try:
            rc = int(rc_text.strip())
        except ValueError:
            return False
        p.rc, p.done = rc, True
        s.prefetch = (s.log_offset, log)
        return True

    def _waiter(self, channel: str, rc_path: str | None = None) -> subprocess.Popen:
        if self.shell.is_local() or rc_path is None:
            argv = self.argv("wait-for", channel)
        else:
            # After a reconnect a stale waiter of the dropped connection may still be
            # registered and take the signal: if the rc file is there once ours is
            # registered, wake everyone ourselves.
            w = self.cmdline("wait-for", channel)
            sig = self.cmdline("wait-for", "-S", channel)
            argv = ["sh", "-c", f"{w} & w=$!; sleep 0.3; [ -e {shlex.quote(rc_path)} ] && {sig}; wait $w"]
        return subprocess.Popen(self.shell.argv_for(argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _interrupt_timed_out(self, s: Session, p: Pending, grace: float) -> None:
        self.interrupt(s)
        limit = time.monotonic() + grace
        while time.monotonic() < limit and self.read_rc(p.rc_path) is None:
            time.sleep(0.05)
        # A timed-out command fails whatever status Ctrl-C left behind.
        p.done, p.rc, p.note = True, None, "timed out and was interrupted (Ctrl-C)"

    # ---- output
    def was_started(self, s: Session, p: Pending, grace: float = 1.0) -> bool:
        """Did the command reach the shell? (its exit code, or its start marker in the log;
        a command typed a moment ago gets `grace` seconds to show its marker)"""
        limit = time.monotonic() + grace
        while True:
            if self.read_rc(p.rc_path) is not None:
                return True
            if start_marker(p.channel) in (self.shell.read_file(s.log_path, s.cmd_offset) or b""):
                return True
            if time.monotonic() >= limit:
                return False
            time.sleep(0.05)

    def last_line(self, s: Session) -> str:
        """The latest non-empty line the session printed (for a live status line)."""
        lines = self.last_lines(s, 1)
        return lines[-1] if lines else ""

    def last_lines(self, s: Session, n: int = 10) -> list[str]:
        """The latest non-empty lines the current command printed (for a live view), masked.
        Read from the pane log's tail: here a file read, cheap enough every second; on a
        host one call over the shared connection, at most every 3 seconds (else the last)."""
        if self.shell.is_local():
            data = self.shell.read_file(s.log_path, max(s.cmd_offset, _size(s.log_path) - 8192)) or b""
            whole = _size(s.log_path) - s.cmd_offset <= 8192
        else:
            data, whole = self._remote_tail(s), False
        if s.marker:  # what the command printed, not its typed text
            mark = start_marker(s.marker)
            at = data.rfind(mark)
            if at >= 0:
                data = data[at + len(mark):]
            elif whole:
                data = b""  # not started yet: nothing of its own to show
        data = data.split(end_marker(s.marker))[0] if s.marker else data
        lines = [masking.mask(ln.rstrip()) for ln in clean(data).splitlines() if ln.strip()]
        return lines[-n:]

    def _remote_tail(self, s: Session) -> bytes:
        tails = self.__dict__.setdefault("_tails", {})
        at, data = tails.get(s.real, (0.0, b""))
        if time.monotonic() - at < 3.0:
            return data
        script = f"tail -c +{s.cmd_offset + 1} {shlex.quote(s.log_path)} 2>/dev/null | tail -c 8192"
        try:  # one try, no reconnecting: a peek must never hold anything up
            r = self.shell._run_once(["sh", "-c", script], timeout=10)
            if r.returncode == 0:
                data = r.stdout.encode()
        except ShellError:
            pass
        tails[s.real] = (time.monotonic(), data)
        return data

    def output_since(self, s: Session, channel: str, offset: int,
                     ended: bool = False) -> tuple[str, int]:
        """The cleaned output of the command sent on `channel`, and the log offset where it
        ends. Reads the pane log from `offset`. When the command `ended` (its exit code is
        known), waits up to a second for its end marker: the pane's output reaches the log
        through tmux and pipe-pane a moment after the exit code is written."""
        mark, endmark = start_marker(channel), end_marker(channel)
        data = b""
        limit = time.monotonic() + (1.0 if ended else 0)
        while True:
            if s.prefetch is not None and s.prefetch[0] == offset:
                data = s.prefetch[1]  # came back with the command (remote)
            else:
                data = self.shell.read_file(s.log_path, offset) or b""
            s.prefetch = None
            if not ended or endmark in data or time.monotonic() >= limit or channel in self._cuts:
                break
            time.sleep(0.01)
        cut = self._cuts.pop(channel, None)  # (its shell's prompt came without the hooks)
        if cut is not None:
            data = data[:max(0, cut - offset)]
        i = data.find(mark)
        if i >= 0:
            data = data[i + len(mark):]
            start = offset + i + len(mark)
        else:
            start = offset
        j = data.find(endmark)
        if j >= 0:
            body, consumed = data[:j], j + len(endmark)
        else:  # no end marker: the last line without a newline is the next prompt
            cut = data.rfind(b"\n")
            body = data[: cut + 1] if cut >= 0 else b""
            consumed = len(body)
        return masking.mask(clean(body)).rstrip("\n"), start + consumed
