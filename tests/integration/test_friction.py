"""Rough edges the probes found: what a user is told when a host key is new, a Colab connect
fails half-way, a storage refuses a signature for a reason of its own, an exec line names a
Colab host by its spec; and shell completion of `train` and `ow`."""

from __future__ import annotations

import http.client
import http.server
import threading
from urllib.parse import urlsplit

import pytest
from helpers import train


class HostRewritingProxy:
    """A reverse proxy in front of the S3 server that sends every request on with its own
    `Host:` (as a proxy that does not pass the Host header on does). The Host is signed, so the
    server refuses every signature while the keys are right."""

    def __init__(self, target: str):
        t = urlsplit(target)
        host, port = t.hostname, t.port

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                c = http.client.HTTPConnection(host, port, timeout=30)  # Host: the target's
                c.request(self.command, self.path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def proxied_lake(lake, tmp_path):
    proxy = HostRewritingProxy(lake["url"])
    try:
        (tmp_path / "trainsh" / "storages.toml").write_text(
            f'[lake]\nkind = "s3"\nbucket = "{lake["bucket"]}"\nendpoint = "{lake["url"]}"\n'
            f'[proxied]\nkind = "s3"\nbucket = "{lake["bucket"]}"\nendpoint = "{proxy.url}"\n')
        yield lake
    finally:
        proxy.close()


def test_a_refused_signature_with_the_right_keys_says_what_the_server_said(proxied_lake, monkeypatch):
    t = train("storage", "test", "proxied")
    assert t.returncode == 1, t.stdout + t.stderr
    line = next(ln for ln in t.stdout.splitlines() if "FAILED" in ln)
    # the server's own code and words, not a verdict on the keys
    assert "SignatureDoesNotMatch" in line and "The request signature we calculated" in line, line
    assert "wrong key: the secret key does not match" not in line
    assert proxied_lake["secret"] not in t.stdout + t.stderr
    assert train("storage", "test", "lake").returncode == 0  # the same keys, straight to it
    # A wrong secret key: the same code, and a hint about the likely cause.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    t = train("storage", "test", "lake")
    line = next(ln for ln in t.stdout.splitlines() if "FAILED" in ln)
    assert "SignatureDoesNotMatch" in line and "secret key" in line, line
    assert "not-the-secret" not in t.stdout + t.stderr
