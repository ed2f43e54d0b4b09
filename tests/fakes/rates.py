"""A local stand-in for a frankfurter-style exchange-rates API (v1).

`GET /latest?base=USD` (also `from=`, `to=`/`symbols=`) answers
`{"amount": 1.0, "base": "USD", "date": "YYYY-MM-DD", "rates": {...}}`; an unknown base is
`404 {"message": "not found"}` as the real service answers. Tests switch its behaviour with
`POST /_fake/mode` and a body of `normal`, `slow`, `error` (500), `garbage` (not JSON) or
`wrong` (JSON without rates), and read how many rate requests it served from `GET /_fake/hits`.

    python tests/fakes/rates.py --port PORT [--date 2026-11-24] [--mode normal]
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

RATES = {"EUR": 0.9, "CNY": 7.0, "JPY": 150.0, "GBP": 0.8}


class State:
    def __init__(self, date: str, mode: str):
        self.date = date
        self.mode = mode
        self.hits = 0
        self.lock = threading.Lock()


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj) -> None:
            self._send(code, json.dumps(obj).encode())

        def do_POST(self):
            if self.path == "/_fake/mode":
                n = int(self.headers.get("Content-Length") or 0)
                state.mode = self.rfile.read(n).decode().strip()
                return self._json(200, {"mode": state.mode})
            self._json(404, {"message": "not found"})

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/_fake/hits":
                return self._json(200, {"hits": state.hits})
            if url.path.rstrip("/").split("/")[-1] != "latest":
                return self._json(404, {"message": "not found"})
            with state.lock:
                state.hits += 1
            q = parse_qs(url.query)
            base = (q.get("base") or q.get("from") or ["EUR"])[0].upper()
            if state.mode == "slow":
                time.sleep(30)
            if state.mode == "error":
                return self._json(500, {"message": "internal error"})
            if state.mode == "garbage":
                return self._send(200, b"<html>maintenance</html>", "text/html")
            if state.mode == "wrong":
                return self._json(200, {"amount": 1.0, "base": base, "date": state.date})
            if base != "USD":
                return self._json(404, {"message": "not found"})
            rates = dict(RATES)
            wanted = (q.get("to") or q.get("symbols") or [""])[0]
            if wanted:
                rates = {k: v for k, v in rates.items() if k in wanted.upper().split(",")}
            self._json(200, {"amount": 1.0, "base": "USD", "date": state.date, "rates": rates})

    return Handler


def serve(port: int, date: str = "2026-11-24", mode: str = "normal") -> tuple[ThreadingHTTPServer, State]:
    state = State(date, mode)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--date", default="2026-11-24")
    ap.add_argument("--mode", default="normal", choices=["normal", "slow", "error", "garbage", "wrong"])
    a = ap.parse_args()
    server, _ = serve(a.port, a.date, a.mode)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"rates fake on http://127.0.0.1:{a.port}", flush=True)
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
