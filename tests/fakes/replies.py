"""Faults of every API answer, shared by both fakes: a slow, trickled, refused, damaged or
wrongly shaped answer. Set through POST /_fake/control (or the faults a fake starts with);
the /_fake/ paths themselves are never affected.

  delay         seconds: each answer goes out this long after the request was handled
  trickle       seconds: each answer (status line, headers and body alike) goes out one byte
                at a time, this long apart
  retry_after   seconds: every API call answers 429 with this `Retry-After` header and does
                nothing (0: off)
  bad_status    true, or a status line: each answer starts with a broken status line
                ("HTTP/1.1 2OO WHAT" for true), then its headers and body as usual
  garble_reply  "truncate" (a Content-Length larger than the body sent, then the connection
                closes), "badjson" (200, a body that is not JSON) or "drop" (the connection
                closes with no answer) for each answer; "" for none
  wrong_shape   {"path": P, "reply": JSON}: a call to P answers 200 with that JSON as its whole
                body (P is, for Vast, the path below /api/v0, "instances/"; for RunPod, the
                first field of the operation, "myself"); a P alone answers the JSON string
                "wrong shape"; null for none

A rent's answer goes out as the rents-in-flight faults say (inflight.py), with these faults
when it is not garbled there.
"""

from __future__ import annotations

import json
import threading

FAULTS = ("delay", "trickle", "retry_after", "bad_status", "garble_reply", "wrong_shape")
OFF = {"delay": 0.0, "trickle": 0.0, "retry_after": 0.0, "bad_status": "", "garble_reply": "",
       "wrong_shape": None}
GARBLES = ("truncate", "badjson", "drop")
BROKEN = "HTTP/1.1 2OO WHAT"


def checked(faults: dict) -> dict:
    """The reply faults among `faults`, normalised; ValueError saying which one is wrong."""
    out = {}
    for k in FAULTS:
        if k not in faults:
            continue
        v = faults[k]
        if k in ("delay", "trickle", "retry_after"):
            try:
                v = float(v or 0)
            except (TypeError, ValueError):
                raise ValueError(f"{k} must be a number of seconds, not {v!r}") from None
            if v < 0:
                raise ValueError(f"{k} must be 0 or more seconds")
        elif k == "bad_status":
            v = BROKEN if v is True else ("" if v in (None, False) else str(v))
        elif k == "garble_reply":
            v = str(v or "")
            if v and v not in GARBLES:
                raise ValueError(f"garble_reply must be one of {', '.join(GARBLES)} (or empty), not {v!r}")
        elif k == "wrong_shape":
            if isinstance(v, str) and v:
                v = {"path": v, "reply": "wrong shape"}
            elif v in (None, "", False):
                v = None
            elif not (isinstance(v, dict) and isinstance(v.get("path"), str) and "reply" in v):
                raise ValueError('wrong_shape must be {"path": P, "reply": JSON}, a path, or null')
        out[k] = v
    return out


def wrong_shape(faults: dict, path: str):
    """(True, the JSON to answer) when wrong_shape names `path`, else (False, None)."""
    shape = checked({"wrong_shape": faults.get("wrong_shape")})["wrong_shape"]
    if shape and shape["path"].strip("/") == path.strip("/"):
        return True, shape["reply"]
    return False, None


def rate_limited(faults: dict) -> str | None:
    """The Retry-After to answer 429 with, or None."""
    seconds = float(faults.get("retry_after") or 0)
    return (f"{seconds:g}") if seconds > 0 else None


def send(handler, code: int, body, faults: dict, stopping: threading.Event | None = None,
         headers: dict[str, str] | None = None) -> None:
    """Answer `body` (JSON-encoded here unless bytes) with status `code` from `handler` (a
    BaseHTTPRequestHandler), as the faults say."""
    faults = {**OFF, **checked(faults)}  # (a test may have set them straight into a fake's dict)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    stopping = stopping or threading.Event()
    delay = float(faults.get("delay") or 0)
    if delay > 0:
        stopping.wait(delay)
    garble = faults.get("garble_reply") or ""
    trickle = float(faults.get("trickle") or 0)
    status = faults.get("bad_status") or ""
    if garble == "drop":
        handler.close_connection = True
        return
    sent = data[: len(data) // 2] if garble in ("truncate", "badjson") else data
    length = len(sent) if garble == "badjson" else len(data)
    if garble == "badjson":
        code = 200
    line = status or f"HTTP/1.1 {code} {handler.responses.get(code, ('',))[0]}"
    head = [line, f"Server: {handler.version_string()}", f"Date: {handler.date_time_string()}",
            "Content-Type: application/json", f"Content-Length: {length}",
            *(f"{k}: {v}" for k, v in (headers or {}).items())]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + sent
    if garble == "truncate":
        handler.close_connection = True
    try:
        if trickle <= 0:
            handler.wfile.write(raw)
            return
        for i in range(len(raw)):
            handler.wfile.write(raw[i:i + 1])
            handler.wfile.flush()
            if stopping.wait(trickle):
                handler.close_connection = True  # the fake stops: the rest is never sent
                return
    except OSError:  # the client gave up and went away
        handler.close_connection = True
