"""JSON over HTTP for the cloud clients, with the standard library only.

One place decides timeouts, retries and how a failed call reads: 429 and 5xx are retried with
backoff (honouring Retry-After) when the call is safe to repeat; a connection that cannot be
made is `Unavailable`; 401/403 are `AuthError`. The error text never contains the key.
"""

from __future__ import annotations

import json
import time

TYPE_CHECKING = False  # typing costs start-up time; the annotations are never evaluated
if TYPE_CHECKING:
    from typing import Any

from trainsh.cloud.provider import AuthError, LostAnswer, NotFound, ProviderError, Unavailable


class HttpError(ProviderError):
    def __init__(self, message: str, status: int, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


def _message(body: Any) -> str:
    """The server's own words, from the usual JSON error shapes."""
    if isinstance(body, dict):
        for k in ("msg", "message", "error_description", "detail", "error"):
            v = body.get(k)
            if isinstance(v, str) and v:
                return v
        errs = body.get("errors")
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            return str(errs[0].get("message", ""))
    if isinstance(body, str):
        return body.strip().splitlines()[0][:200] if body.strip() else ""
    return ""


def request(method: str, url: str, *, what: str, key: str | None = None, body: Any = None,
            timeout: float = 20.0, retries: int = 3, headers: dict[str, str] | None = None) -> Any:
    """Send `body` as JSON, return the decoded JSON reply (or None for an empty one).

    `what` names the service in errors ("Vast.ai"). `retries` applies to 429, 5xx and
    connection failures; pass 0 for a call that must not be repeated blindly."""
    import http.client
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Accept": "application/json", "User-Agent": "trainsh"}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    hdrs.update(headers or {})
    attempt = 0
    while True:
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
            if not raw.strip():
                return None
            try:
                return json.loads(raw)
            except ValueError:
                raise LostAnswer(f"{what}: {method} {_path(url)}: the answer is not JSON") from None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed: Any = json.loads(raw) if raw.strip() else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            said = _message(parsed)
            if e.code in (401, 403):
                raise AuthError(f"{what}: the API key was refused ({e.code}{': ' + said if said else ''})") from None
            if e.code == 404:
                raise NotFound(f"{what}: not found{': ' + said if said else ''}") from None
            if (e.code == 429 or e.code >= 500) and attempt < retries:
                attempt += 1
                time.sleep(_backoff(attempt, e.headers.get("Retry-After")))
                continue
            if e.code == 429 or e.code >= 500:
                raise Unavailable(f"{what}: the API answered {e.code}{': ' + said if said else ''}") from None
            raise HttpError(f"{what}: {said or f'request refused ({e.code})'}", e.code, parsed) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            if attempt < retries:
                attempt += 1
                time.sleep(_backoff(attempt, None))
                continue
            reason = getattr(e, "reason", e)
            raise Unavailable(f"{what}: cannot reach {url.split('/')[2] if '//' in url else url} ({reason})") from None
        except http.client.HTTPException as e:  # a cut-short body, a broken status line (a dropped
            # connection is a ConnectionError above)
            raise LostAnswer(f"{what}: {method} {_path(url)}: the answer was cut short or damaged "
                             f"({e.__class__.__name__})") from None


def _path(url: str) -> str:
    """The path of a URL, for naming the call in an error (never its query: keys go there)."""
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


def _backoff(attempt: int, retry_after: str | None) -> float:
    import random  # only on a retry: `train vast list` should not pay for it

    if retry_after:
        try:
            return min(float(retry_after), 30.0)
        except ValueError:
            pass
    return min(0.25 * 2 ** (attempt - 1), 8.0) * (0.75 + random.random() / 2)
