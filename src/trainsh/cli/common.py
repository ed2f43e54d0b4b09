"""What `train` and `ow` share on their way in and out: bad input as one line (UserError),
signals as Ctrl-C (Terminated), and how a run ends (`ended`)."""

# The settings paths load only to explain an error (start-up).

from __future__ import annotations

import errno
import os
import signal
import sys


class UserError(Exception):
    """Bad input or a failed request: one line for the user, exit code 2."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that `train` ends as on Ctrl-C (what
    it rented meanwhile is found and named or ended) and exits 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signals_interrupt() -> None:
    """SIGTERM and SIGHUP end the program as Ctrl-C does (Terminated)."""
    def on_signal(signum, frame):
        raise Terminated(signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) is signal.SIG_DFL:  # (nohup's SIG_IGN stays)
            signal.signal(s, on_signal)


def ended(prog: str, debug: bool, run) -> int:
    """`run()`'s exit code, or how `train` and `ow` alike end on the way out: a UserError is
    its one line (`PROG: message`) and its code (raised again with --debug), Ctrl-C is
    "interrupted" and 130, a reader that is gone (`... | head`) ends it quietly with 0."""
    try:
        return run()
    except UserError as e:
        if debug:
            raise
        print(f"{prog}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        why = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
        print(f"{prog}: interrupted{why}", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # the reader is gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def environment_error(e: Exception) -> str | None:
    """A failure of the machine rather than of trainsh (a folder this user cannot write, a
    full disk, a journal that cannot be opened) as one line that says what and where."""
    import sqlite3

    if isinstance(e, OSError) and e.strerror:
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        hint = ""
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            from trainsh.settings import paths

            hint = f" (the settings folder is {paths.home()}; TRAINSH_HOME moves it)"
        return f"{e.strerror.lower()}: {where}{hint}" if where else e.strerror.lower()
    if isinstance(e, sqlite3.Error):
        from trainsh.settings import paths

        folder = paths.jobs_dir()
        hint = "" if os.access(folder, os.W_OK) else f" ({folder} cannot be written)"
        return f"the job journal {folder / 'journal.db'}: {e}{hint}"
    return None
