"""JSON over HTTP for the cloud clients, with the standard library only.

One place decides timeouts, retries and how a failed call reads:

- Every call has one deadline for all of it (config `cloud.api_timeout`, 30 s by default):
  connecting, each try, the answer however slowly it arrives, and every wait between tries.
  A try runs in a worker thread that the caller waits for until the deadline; then its
  connection is shut (the worker ends at once) and the call fails. So a server that trickles
  its answer a byte at a time, holds it, or asks to wait longer than the time left
  (Retry-After) ends the call on time, with one line saying which.
- 429 and 5xx are retried with backoff (honouring Retry-After) when the call is safe to repeat,
  and so are connections that fail and answers that arrive damaged; a call that must not be
  repeated blindly (`retries=0`, a create) whose deadline passes is `LostAnswer`: the cloud
  may have acted. A connection that cannot be made is `Unavailable`; 401/403 are `AuthError`.
- On a terminal, a call still waiting after 3 s says what it waits for (one line on stderr).
- `Reply` reads an answer with the shape the caller expects: a value of another JSON type is
  one line naming the cloud, the call and where in the answer it was.

Error text never contains the key, and is always one line.
"""

# The config loads inside the call that needs it: `train --help` and the parsers stay fast.

from __future__ import annotations

import json
import threading
import time

TYPE_CHECKING = False  # typing costs start-up time; the annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

from trainsh.cloud.provider import AuthError, LostAnswer, NotFound, ProviderError, Unavailable

SETTING = "cloud.api_timeout"
NOTICE_AFTER = 3.0  # seconds before a call waiting on a terminal says what it waits for
_LOCK = threading.Lock()


class HttpError(ProviderError):
    def __init__(self, message: str, status: int, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def one_line(text: str, limit: int = 200) -> str:
    """`text` as one line of at most `limit` characters (a server's words may hold newlines)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(body: Any) -> str:
    """The server's own words, from the usual JSON error shapes, on one line."""
    if isinstance(body, dict):
        for k in ("msg", "message", "error_description", "detail", "error"):
            v = body.get(k)
            if isinstance(v, str) and v.strip():
                return one_line(v)
        errs = body.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return one_line(str(errs[0].get("message", "")))
    if isinstance(body, str):
        return one_line(body.strip().splitlines()[0]) if body.strip() else ""
    return ""


def _waiting(text: str) -> None:
    """Tell a person at a terminal what a slow call waits for: one line on stderr, and nothing
    when stderr is not a terminal."""
    import sys

    try:
        if sys.stderr.isatty():
            print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


# Who hears "still waiting for ..." (a live view may set its own); called at most once a call.
waiting = _waiting


def budget(timeout: float | None = None) -> tuple[float, str | None]:
    """The seconds a call may take in all, and the setting they come from (None when the
    caller chose them): `timeout`, else config `cloud.api_timeout`."""
    if timeout is not None:
        return float(timeout), None
    from trainsh.settings import config

    try:
        return config.duration(SETTING), SETTING
    except config.ConfigError as e:
        raise ProviderError(str(e)) from None


_ACTIVE: set = set()   # the calls waiting now (their _Clock), for who gives a notice
_LAST = [-NOTICE_AFTER]  # when the last notice was given (time.monotonic())


def calls_waiting() -> bool:
    """Whether a call is waiting now (a live view drops a notice once none is)."""
    with _LOCK:
        return bool(_ACTIVE)


class _Clock:
    """A call's deadline, and the one notice it gives while it waits on a terminal. Calls at
    once (a listing and its totals, asked side by side) give one notice between them: the
    main thread's call's, as that is what the command waits for; one beside it in another
    thread speaks only while no call of the main thread waits."""

    def __init__(self, what: str, call: str, seconds: float, setting: str | None):
        self.what, self.call, self.seconds, self.setting = what, call, seconds, setting
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.noticed = False
        self.notice_at = self.start + NOTICE_AFTER
        self.main = threading.current_thread() is threading.main_thread()
        with _LOCK:
            _ACTIVE.add(self)

    def close(self) -> None:
        with _LOCK:
            _ACTIVE.discard(self)

    def _may_notice(self, now: float) -> bool:
        with _LOCK:
            if now - _LAST[0] < NOTICE_AFTER:
                return False  # another call just said it
            if not self.main and any(c.main for c in _ACTIVE):
                return False  # the command's own call speaks
            _LAST[0] = now
            return True

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def limit(self) -> str:
        return f"{self.setting} is {_secs(self.seconds)} s" if self.setting else f"limit {_secs(self.seconds)} s"

    def wait(self, seconds: float, done=None) -> bool:
        """Wait `seconds` (never past the deadline), or until the event `done` is set: whether
        it was. Says once, after NOTICE_AFTER s of the call, what the call waits for."""
        until = min(time.monotonic() + max(0.0, seconds), self.deadline)
        while True:
            now = time.monotonic()
            if done is not None and done.is_set():
                return True
            if now >= until:
                return False
            step = until - now
            if not self.noticed and now >= self.notice_at:
                if self._may_notice(now):
                    self.noticed = True
                    waiting(f"{self.what}: still waiting for {self.call} "
                            f"({now - self.start:.0f} s; {self.limit()})")
                else:
                    self.notice_at = now + 0.5  # look again in a moment
                continue
            if not self.noticed:
                step = min(step, self.notice_at - now)
            if done is not None:
                done.wait(step)
            else:
                time.sleep(step)


def _secs(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 or float(seconds).is_integer() else f"{seconds:.1f}"


def request(method: str, url: str, *, what: str, key: str | None = None, body: Any = None,
            timeout: float | None = None, retries: int = 3, headers: dict[str, str] | None = None,
            call: str | None = None) -> Any:
    """Send `body` as JSON, return the decoded JSON reply (or None for an empty one).

    `what` names the service in errors ("Vast.ai"), `call` the call ("GET instances/"; by
    default the method and the URL's path). `timeout` is the seconds the whole call may take,
    retries and their waits included (None: config `cloud.api_timeout`). `retries` applies to
    429, 5xx, connection failures and damaged answers; pass 0 for a call that must not be
    repeated blindly: its deadline passing is then LostAnswer (the server may have acted)."""
    seconds, setting = budget(timeout)
    call = call or f"{method} {_path(url)}"
    clock = _Clock(what, call, seconds, setting)
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Accept": "application/json", "User-Agent": "trainsh"}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    hdrs.update(headers or {})
    head = f"{what}: {call}"
    try:
        return _request(method, url, data, hdrs, clock, head, retries)
    finally:
        clock.close()


def _request(method: str, url: str, data: bytes | None, hdrs: dict[str, str], clock: _Clock,
             head: str, retries: int) -> Any:
    what, seconds, setting = clock.what, clock.seconds, clock.setting
    attempt = 0
    last = ""  # why the try before failed, for an error at the deadline

    def again(why: str, pause: float, asked: bool = False) -> bool:
        """Whether to try once more after `pause` s (waited here); False when the tries or the
        time are used up."""
        nonlocal attempt, last
        last = why
        if attempt >= retries:
            return False
        if pause > clock.left():
            if asked:  # the server named the wait: say so at once, never wait in silence
                raise Unavailable(f"{head}: {why}, more than the {_secs(max(0.0, clock.left()))} s "
                                  f"left ({clock.limit()})")
            return False
        attempt += 1
        clock.wait(pause)
        return True

    while True:
        outcome = _try(method, url, data, hdrs, clock)
        if outcome is None or outcome[0] == "late":  # the deadline passed while waiting for it
            whole = "the whole answer did not come" if outcome else "no answer came"
            after = f"; the try before: {last}" if last else ""
            cls = LostAnswer if retries == 0 else Unavailable
            raise cls(f"{head}: {whole} within {_secs(seconds)} s ({setting or 'the time limit'}{after})")
        kind, status, reply_headers, raw = outcome
        if kind == "fail":  # raw is the exception
            e = raw
            damaged = _damage(e)
            if damaged:
                if again(damaged, _backoff(attempt + 1)):
                    continue
                raise LostAnswer(f"{head}: {damaged}")
            reason = one_line(str(getattr(e, "reason", e)) or e.__class__.__name__)
            host = url.split("/")[2] if "//" in url else url
            why = f"cannot reach {host} ({reason})"
            if again(why, _backoff(attempt + 1)):
                continue
            raise Unavailable(f"{head}: {why}")
        try:
            parsed: Any = json.loads(raw) if raw.strip() else None
            bad_json = False
        except ValueError:
            parsed, bad_json = raw.decode(errors="replace"), True
        if kind == "ok":
            if bad_json:
                if again("the answer is not JSON", _backoff(attempt + 1)):
                    continue
                raise LostAnswer(f"{head}: the answer is not JSON")
            return parsed
        said = _message(parsed)
        if status in (401, 403):
            raise AuthError(f"{what}: the API key was refused ({status}{': ' + said if said else ''})")
        if status == 404:
            raise NotFound(f"{what}: not found{': ' + said if said else ''}")
        if status == 429 or status >= 500:
            wait = _retry_after(reply_headers.get("Retry-After"))
            why = f"the API answered {status}{f' ({said})' if said else ''}"
            if wait is not None:
                why += f" and asked to wait {_secs(wait)} s"
            if again(why, wait if wait is not None else _backoff(attempt + 1), asked=wait is not None):
                continue
            raise Unavailable(f"{head}: {why}")
        raise HttpError(f"{what}: {said or f'request refused ({status})'}", status, parsed)


def _try(method: str, url: str, data: bytes | None, headers: dict[str, str], clock: _Clock):
    """One request and its whole answer, in a worker thread waited for until the deadline:
    ("ok" | "http", status, headers, body bytes), ("fail", None, None, exception), or, when the
    deadline passed first (the connection is then shut, which ends the worker), None, or
    ("late", ...) when the answer had begun (its status and headers had come)."""
    import socket
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    req.trainsh_sockets = socks = []  # the connection(s) the try makes, to shut at the deadline
    result: list = []
    done = threading.Event()
    per_read = max(0.1, clock.left()) + 1.0  # (the deadline, kept here, comes first)

    begun = []

    def work() -> None:
        try:
            with _opener().open(req, timeout=per_read) as resp:
                begun.append(True)
                result.append(("ok", resp.status, resp.headers, resp.read()))
        except urllib.error.HTTPError as e:
            begun.append(True)
            try:
                result.append(("http", e.code, e.headers, e.read()))
            except Exception as inner:  # noqa: BLE001 - a damaged error body
                result.append(("fail", None, None, inner))
        except Exception as e:  # noqa: BLE001 - the caller classifies it
            result.append(("fail", None, None, e))
        finally:
            done.set()

    threading.Thread(target=work, name="trainsh-http", daemon=True).start()
    try:
        finished = clock.wait(clock.left(), done)
    finally:
        if not done.is_set():  # out of time (or interrupted): end the try where it stands
            for s in socks:
                try:  # (the plain socket's own shutdown: a TLS one's would unwrap it under the reader)
                    socket.socket.shutdown(s, socket.SHUT_RDWR)
                except OSError:
                    pass
    if finished and result:
        return result[0]
    return ("late", None, None, None) if begun else None


_OPENER = None


def _opener():
    """urllib's opener (proxies and all) whose connections note their socket in the request's
    `trainsh_sockets`, so that a try can be ended from outside at the deadline."""
    global _OPENER
    if _OPENER is not None:
        return _OPENER
    import http.client
    import urllib.request

    def noted(cls, req):
        def make(host, **kw):
            conn = cls(host, **kw)
            connect = conn.connect

            def connected():
                connect()
                # the socket as it is used (TLS-wrapped for https: the plain one is detached)
                getattr(req, "trainsh_sockets", []).append(conn.sock)  # (a redirect's request: none)

            conn.connect = connected
            return conn

        return make

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(noted(http.client.HTTPConnection, req), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(noted(http.client.HTTPSConnection, req), req, context=self._context)

    _OPENER = urllib.request.build_opener(Http, Https)
    return _OPENER


def _damage(e: BaseException) -> str | None:
    """What was wrong with an answer that arrived damaged, or None for a failure to connect."""
    import http.client

    if isinstance(e, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(e, http.client.IncompleteRead):
        return (f"the answer was cut short ({len(e.partial)} bytes of "
                f"{len(e.partial) + e.expected if e.expected is not None else 'more'})")
    if isinstance(e, http.client.BadStatusLine):
        return f"the answer's status line is broken ({one_line(repr(str(e).strip()), 60)})"
    if isinstance(e, http.client.LineTooLong):
        return "the answer has a header line too long"
    if isinstance(e, http.client.HTTPException):
        return f"the answer was damaged ({e.__class__.__name__})"
    return None


def _path(url: str) -> str:
    """The path of a URL, for naming the call in an error (never its query: keys go there)."""
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (a number, or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if seconds == seconds else None


def _backoff(attempt: int) -> float:
    import random  # only on a retry: `train vast list` should not pay for it

    return min(0.25 * 2 ** (attempt - 1), 8.0) * (0.75 + random.random() / 2)


# ---- reading an answer ---------------------------------------------------------------------

REQUIRED = object()  # a field with no default: missing or null is a wrong answer


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Reply:
    """A decoded JSON answer, or a part of one, read with the shape the caller expects.

    Each read says what it wants (`text`, `number`, `child`, `children`, ...); a value of
    another JSON type, or a required one that is missing, is one ProviderError naming the
    cloud, the call and where in the answer it was (`instances[2].gpu_name`), or LostAnswer
    when `lost` (a create's answer: the cloud may have made the machine all the same). A
    missing or null value gives the default when one is given."""

    __slots__ = ("value", "what", "call", "where", "lost")

    def __init__(self, value: Any, what: str, call: str, where: str = "", lost: bool = False):
        self.value, self.what, self.call, self.where, self.lost = value, what, call, where, lost

    def wrong(self, want: str, value: Any = REQUIRED, where: str | None = None) -> ProviderError:
        place = self.where if where is None else where
        subject = f"the answer's {place}" if place else "the answer"
        got = "missing" if value is REQUIRED else _kind(value)
        cls = LostAnswer if self.lost else ProviderError
        return cls(f"{self.what}: {self.call}: {subject} is {got}, not {want}")

    def _at(self, key: Any) -> str:
        return f"{self.where}.{key}" if self.where else str(key)

    def _sub(self, value: Any, where: str) -> Reply:
        return Reply(value, self.what, self.call, where, self.lost)

    def obj(self) -> dict:
        """The value itself, which must be a JSON object."""
        if not isinstance(self.value, dict):
            raise self.wrong("an object", self.value)
        return self.value

    def has(self, key: str) -> bool:
        return self.obj().get(key) is not None

    def field(self, key: str, types: type | tuple, want: str, default: Any = REQUIRED) -> Any:
        """obj[key] when it is one of `types` (true/false only where bool is one of them)."""
        d = self.obj()
        value = d.get(key)
        if value is None:
            if default is REQUIRED:
                raise self.wrong(want, REQUIRED if key not in d else None, self._at(key))
            return default
        types = types if isinstance(types, tuple) else (types,)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.wrong(want, value, self._at(key))
        return value

    def text(self, key: str, default: Any = REQUIRED) -> str:
        return self.field(key, str, "a string", default)

    def ident(self, key: str = "id") -> str:
        """An id, a string or a number (required)."""
        value = self.field(key, (str, int), "an id (a string or a number)")
        if not str(value).strip():
            raise self.wrong("an id (a string or a number)", None, self._at(key))
        return str(value)

    def number(self, key: str, default: Any = 0.0) -> float:
        """A finite number as given (an int stays one), or a number given as a string."""
        if self.obj().get(key) is None:
            return self.field(key, (int, float, str), "a number", default)  # the default, or why not
        value = self.field(key, (int, float, str), "a number")
        if isinstance(value, int):
            return value
        try:
            number = float(value)
        except ValueError:
            raise self.wrong("a number", value, self._at(key)) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self.wrong("a finite number", value, self._at(key))
        return number

    def flag(self, key: str, default: Any = False) -> bool:
        return self.field(key, bool, "true or false", default)

    def child(self, key: str, default: Any = None) -> Reply | None:
        """obj[key], an object, as a Reply; `default` when it is missing or null."""
        value = self.field(key, dict, "an object", default)
        return value if value is default else self._sub(value, self._at(key))

    def children(self, key: str) -> list[Reply]:
        """obj[key], a list of objects (none when missing or null), each as a Reply."""
        return self._sub(self.field(key, list, "a list", []), self._at(key)).each()

    def each(self) -> list[Reply]:
        """The value itself, a list of objects, each as a Reply."""
        if not isinstance(self.value, list):
            raise self.wrong("a list", self.value)
        out = []
        for n, item in enumerate(self.value):
            sub = self._sub(item, f"{self.where}[{n}]" if self.where else f"item {n}")
            sub.obj()
            out.append(sub)
        return out
