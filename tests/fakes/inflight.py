"""Rents in flight, shared by both fakes: a create whose answer is held, damaged or lost after
the cloud has made the machine, and an API that fails for a while after a create.

A fake counts a create from the moment its machine is made until its answer goes out (or is
dropped): `creating` in GET /_fake/state. The answer then goes out as `plan` says:
  hold     seconds to wait before answering (slow_create; cut short when the fake stops)
  garble   "" (a normal answer), "truncate" (a Content-Length larger than the body sent, then
           the connection closes), "badjson" (200, a body that is not JSON: the answer cut in
           half), "500" (the fake already answers its provider's 500 error; sent as is),
           "drop" (the connection closes with no answer at all)
  down     seconds every other API call answers 503 once the answer went out
           (down_after_create); they answer 503 while the answer is held, too
"""

from __future__ import annotations

import threading
import time

GARBLES = ("truncate", "badjson", "500", "drop")


def garble_error(value) -> str | None:
    """Why `value` is no garble_create setting, or None when it is one ("" or None: none)."""
    if value in (None, "") or str(value) in GARBLES:
        return None
    return f"garble_create must be one of {', '.join(GARBLES)} (or empty), not {value!r}"


class InFlight:
    def __init__(self):
        self.lock = threading.Lock()
        self.creating = 0          # creates whose machine is made and whose answer is not out
        self.pending_down = 0      # of those, the ones with down_after_create
        self.down_until = 0.0      # time.monotonic() until which the API answers 503
        self.stopping = threading.Event()

    def made(self, hold: float, garble: str, down: float) -> dict:
        """A create just made its machine: the plan for its answer."""
        with self.lock:
            self.creating += 1
            if down > 0:
                self.pending_down += 1
        return {"hold": float(hold or 0), "garble": garble or "", "down": float(down or 0)}

    def down(self) -> bool:
        return self.pending_down > 0 or time.monotonic() < self.down_until

    def answer(self, handler, code: int, data: bytes, plan: dict) -> None:
        """Send a create's answer (`data`, JSON) from `handler` (a BaseHTTPRequestHandler) as
        `plan` says. The create stops counting in `creating` just before its answer goes out:
        while it counts, the client has had no answer; once it has one, it counts no more."""
        try:
            if plan["hold"] > 0:
                self.stopping.wait(plan["hold"])
        finally:
            with self.lock:
                self.creating -= 1
                if plan["down"] > 0:
                    self.pending_down -= 1
                    self.down_until = max(self.down_until, time.monotonic() + plan["down"])
        try:
            deliver(handler, code, data, plan["garble"])
        except OSError:  # the client went away meanwhile
            handler.close_connection = True


def deliver(handler, code: int, data: bytes, garble: str) -> None:
    if garble == "drop":
        handler.close_connection = True  # nothing written: the client reads EOF
        return
    body, length = data, len(data)
    if garble == "badjson":
        code, body = 200, data[: len(data) // 2]
        length = len(body)
    elif garble == "truncate":
        body = data[: len(data) // 2]
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.write(body)
    if garble == "truncate":
        handler.close_connection = True
