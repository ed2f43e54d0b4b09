"""Every cloud API call has one deadline (config `cloud.api_timeout`), and every bad answer is
one line naming the cloud, the call and what was wrong: the real `train vast/runpod ...`
against the fakes (real HTTP servers) set to answer slowly, a byte at a time, with a long
Retry-After, a broken status line, a damaged body or JSON of the wrong shape
(tests/fakes/replies.py)."""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest
from helpers import TRAIN, train

from trainsh.cloud.provider import CreateRequest, LostAnswer

DEADLINE = 3  # cloud.api_timeout in these tests, in seconds
SLACK = 10    # what the command may take beyond it (start-up, the lines it prints)


def timed(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t = time.monotonic()
    r = train(*args, timeout=120)
    return r, time.monotonic() - t


def one_line(r: subprocess.CompletedProcess, *words: str) -> str:
    """The one line `train` said on stderr (exit 1), with every one of `words` in it."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def deadline(seconds: float = DEADLINE) -> None:
    r = train("config", "set", "cloud.api_timeout", f"{seconds:g}s")
    assert r.returncode == 0, r.stderr


# ---- the deadline ----------------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "args", "call"), [
    ({"trickle": 1}, ("vast", "search"), "POST bundles/"),            # a byte a second, for ~2 min
    ({"delay": 25}, ("vast", "list"), "GET instances/"),              # each answer 25 s late
    ({"trickle": 2}, ("vast", "show", "4242"), "GET instances/4242/"),
])
def test_a_slow_vast_answer_ends_the_call_at_the_deadline(vast, fault, args, call):
    deadline()
    vast.control(**fault)
    r, took = timed(*args)
    one_line(r, "Vast.ai: ", call, f"within {DEADLINE} s (cloud.api_timeout)")
    assert DEADLINE - 0.5 < took < DEADLINE + SLACK, took


@pytest.mark.parametrize(("fault", "args", "call"), [
    ({"delay": 25}, ("runpod", "list"), "query myself"),
    ({"trickle": 1}, ("runpod", "search"), "query gpuTypes"),
    ({"trickle": 2}, ("runpod", "show", "abc123"), "query pod"),
])
def test_a_slow_runpod_answer_ends_the_call_at_the_deadline(runpod_fake, fault, args, call):
    deadline()
    runpod_fake.control(**fault)
    r, took = timed(*args)
    one_line(r, "RunPod: ", call, f"within {DEADLINE} s (cloud.api_timeout)")
    assert DEADLINE - 0.5 < took < DEADLINE + SLACK, took


def test_a_retry_after_longer_than_the_time_left_ends_the_call_at_once(vast, runpod_fake):
    """Asked to wait an hour: said at once, not waited out in silence (nor retried blindly)."""
    deadline(30)
    vast.control(retry_after=3600)
    r, took = timed("vast", "list")
    one_line(r, "Vast.ai: GET instances/", "429", "asked to wait 3600 s", "cloud.api_timeout is 30 s")
    assert took < SLACK, took
    runpod_fake.control(retry_after=3600)
    r, took = timed("runpod", "show", "abc123")
    one_line(r, "RunPod: query pod", "429", "asked to wait 3600 s")
    assert took < SLACK, took


def test_a_short_retry_after_is_waited_and_counts_against_the_deadline(vast):
    """2 s asked: waited, tried again, asked again; the deadline (3 s) ends it on time."""
    deadline()
    vast.control(retry_after=2)
    r, took = timed("vast", "list")
    one_line(r, "Vast.ai: GET instances/", "asked to wait 2 s")
    assert 1.5 < took < DEADLINE + SLACK, took
    vast.control(retry_after=0)
    assert train("vast", "list").returncode == 0


def test_a_slow_call_within_the_deadline_succeeds_quietly_without_a_terminal(vast):
    deadline(30)
    vast.control(delay=4)
    r, took = timed("vast", "list")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "no Vast.ai instances" in r.stdout and took > 4


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """`train ARGS` with its stderr on a terminal (a pty): exit code and what it wrote there."""
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.run([*TRAIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=slave, timeout=60)
    finally:
        os.close(slave)
    out = b""
    try:
        while select.select([master], [], [], 1)[0]:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            out += chunk
    except OSError:  # EIO: the terminal has no writer left
        pass
    finally:
        os.close(master)
    return p.returncode, out.decode(errors="replace")


def test_a_terminal_hears_what_a_slow_call_waits_for(vast):
    deadline(30)
    vast.control(delay=4.5)
    code, err = _on_a_terminal("vast", "list")
    assert code == 0, err
    assert err.strip() == "Vast.ai: still waiting for GET instances/ (3 s; cloud.api_timeout is 30 s)", err


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_body_trickled_after_its_headers_ends_at_the_deadline_and_its_connection_is_shut(
        scheme, tmp_path, monkeypatch):
    """Status and headers at once, then the body a byte at a time: the call ends at its
    deadline saying the answer did not come whole, and its connection is shut then (the
    server's next byte finds it gone), not left to a thread reading on; over TLS alike."""
    import shutil
    import socket
    import ssl
    import threading

    from trainsh.cloud import http
    from trainsh.cloud.provider import Unavailable

    srv = socket.create_server(("127.0.0.1", 0))
    if scheme == "https":
        if not shutil.which("openssl"):
            pytest.skip("needs openssl to make a certificate")
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # this test's own certificate authority
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv = ctx.wrap_socket(srv, server_side=True)
    gone: list[float] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9999\r\n\r\n")
            try:
                for _ in range(300):
                    conn.sendall(b" ")
                    time.sleep(0.1)
            except OSError:
                gone.append(time.monotonic())

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        t = time.monotonic()
        with pytest.raises(Unavailable, match=r"^here: GET /x: the whole answer did not come within 2 s "
                                              r"\(the time limit\)$"):
            http.request("GET", f"{scheme}://localhost:{srv.getsockname()[1]}/x", what="here", timeout=2)
        assert 1.9 < time.monotonic() - t < 3
        server.join(10)
        assert gone and gone[0] - t < 4
    finally:
        srv.close()


# ---- answers the clients cannot read ---------------------------------------------------------

VAST_BAD = [
    ({"bad_status": True}, ("vast", "list"), "GET instances/", "the answer's status line is broken ('HTTP/1.1 2OO WHAT')"),
    ({"garble_reply": "truncate"}, ("vast", "show", "4242"), "GET instances/4242/", "the answer was cut short"),
    ({"garble_reply": "badjson"}, ("vast", "search"), "POST bundles/", "the answer is not JSON"),
    ({"garble_reply": "drop"}, ("vast", "list"), "GET instances/", "the server closed the connection without an answer"),
    ({"wrong_shape": "instances/"}, ("vast", "list"), "GET instances/", "the answer is a string, not an object"),
    ({"wrong_shape": {"path": "instances/", "reply": {"instances": "none"}}}, ("vast", "list"),
     "GET instances/", "the answer's instances is a string, not a list"),
    ({"wrong_shape": {"path": "instances/", "reply": {"instances": [7]}}}, ("vast", "list"),
     "GET instances/", "the answer's instances[0] is a number, not an object"),
    ({"wrong_shape": {"path": "instances/", "reply": {"instances": [{"id": 7, "gpu_name": ["RTX"]}]}}},
     ("vast", "list"), "GET instances/", "the answer's instances[0].gpu_name is a list, not a string"),
    ({"wrong_shape": {"path": "instances/4242/", "reply": {"instances": {"id": 4242, "ports": [22]}}}},
     ("vast", "show", "4242"), "GET instances/4242/", "the answer's instances.ports is a list, not an object"),
    ({"wrong_shape": {"path": "instances/4242/", "reply": {"instances": {"label": "x"}}}},
     ("vast", "show", "4242"), "GET instances/4242/", "the answer's instances.id is missing"),
    ({"wrong_shape": {"path": "bundles/", "reply": {"offers": [{"id": 1, "dph_total": "cheap"}]}}},
     ("vast", "search"), "POST bundles/", "the answer's offers[0].dph_total is a string, not a number"),
    ({"wrong_shape": {"path": "bundles/", "reply": [1, 2]}}, ("vast", "search"), "POST bundles/",
     "the answer is a list, not an object"),
]


@pytest.mark.parametrize(("fault", "args", "call", "why"), VAST_BAD)
def test_a_bad_vast_answer_is_one_line(vast, fault, args, call, why):
    deadline()
    vast.control(**fault)
    r, took = timed(*args)
    one_line(r, f"Vast.ai: {call}: {why}")
    assert took < DEADLINE + SLACK


RUNPOD_BAD = [
    ({"bad_status": True}, ("runpod", "list"), "query myself", "the answer's status line is broken"),
    ({"garble_reply": "truncate"}, ("runpod", "search"), "query gpuTypes", "the answer was cut short"),
    ({"garble_reply": "badjson"}, ("runpod", "show", "abc123"), "query pod", "the answer is not JSON"),
    ({"wrong_shape": "myself"}, ("runpod", "list"), "query myself", "the answer is a string, not an object"),
    ({"wrong_shape": {"path": "myself", "reply": {"data": None}}}, ("runpod", "list"), "query myself",
     "the answer's data is empty, not an object"),
    ({"wrong_shape": {"path": "myself", "reply": {"errors": "no"}}}, ("runpod", "list"), "query myself",
     "the answer's errors is a string, not a list"),
    ({"wrong_shape": {"path": "myself", "reply": {"data": {"myself": {"pods": {"id": "a"}}}}}},
     ("runpod", "list"), "query myself", "the answer's data.myself.pods is an object, not a list"),
    ({"wrong_shape": {"path": "myself", "reply": {"data": {"myself": {"pods": [{"id": "a", "runtime": 5}]}}}}},
     ("runpod", "list"), "query myself", "the answer's data.myself.pods[0].runtime is a number, not an object"),
    ({"wrong_shape": {"path": "gpuTypes", "reply": {"data": {"gpuTypes": [{"id": "X", "memoryInGb": "lots"}]}}}},
     ("runpod", "search"), "query gpuTypes", "the answer's data.gpuTypes[0].memoryInGb is a string, not a number"),
    ({"wrong_shape": {"path": "pod", "reply": {"data": {"pod": {"id": "abc123", "costPerHr": [1]}}}}},
     ("runpod", "show", "abc123"), "query pod", "the answer's data.pod.costPerHr is a list, not a number"),
]


@pytest.mark.parametrize(("fault", "args", "call", "why"), RUNPOD_BAD)
def test_a_bad_runpod_answer_is_one_line(runpod_fake, fault, args, call, why):
    deadline()
    runpod_fake.control(**fault)
    r, took = timed(*args)
    one_line(r, f"RunPod: {call}: {why}")
    assert took < DEADLINE + SLACK


# ---- creates: the cloud may have acted -------------------------------------------------------

def test_a_vast_create_cut_short_by_the_deadline_is_a_lost_answer(vast):
    """The rent is made, its answer held past the deadline, the new machine not listed yet: a
    lost answer (the ledger settles it), never a refusal and never a second rent."""
    from trainsh.cloud.vast import VastProvider

    vast.control(slow_create=20, list_lag=60)
    t = time.monotonic()
    with pytest.raises(LostAnswer, match=r"Vast.ai: PUT asks/1002/: no answer came within 2 s") as e:
        VastProvider(timeout=2).create("1002", CreateRequest(image="img", disk_gb=10, label="late"))
    assert time.monotonic() - t < 2 * 3 + SLACK  # the create, then two looks by label
    assert "\n" not in str(e.value) and "may have been made" in str(e.value)
    assert vast.state()["rents"] == 1


def test_a_vast_create_whose_answer_is_late_finds_its_machine(vast):
    """`train vast create` with the answer held past the deadline: the machine is found by its
    label and is the answer; one rent."""
    deadline()
    vast.control(slow_create=20)
    r, took = timed("vast", "create", "1002", "--label", "late-one", "--disk", "10")
    assert r.returncode == 0, r.stderr
    assert took < DEADLINE * 2 + SLACK
    assert vast.state()["rents"] == 1 and r.stdout.split()[1].rstrip(":") in vast.live()


def test_a_vast_create_cut_short_and_not_yet_listed_is_settled_by_the_ledger(vast):
    """`train vast create`: the deadline ends the rent's call, the provider's own looks find
    nothing yet (the list lags), so it is a lost answer, which the rents ledger settles by
    looking the machine up until it shows: that machine is the answer, rented once."""
    deadline()
    vast.control(slow_create=20, list_lag=8)
    r, took = timed("vast", "create", "1002", "--label", "settled", "--disk", "10")
    assert r.returncode == 0, r.stderr
    iid = r.stdout.split()[1].rstrip(":")
    assert "PUT asks/1002/: no answer came within 3 s (cloud.api_timeout)" in r.stderr
    assert f"but it made vast {iid}: using it" in r.stderr and len(r.stderr.splitlines()) == 1
    assert vast.state()["rents"] == 1 and list(vast.live()) == [iid]
    assert took < 8 + SLACK + DEADLINE


def test_a_runpod_create_cut_short_or_misshapen_is_a_lost_answer(runpod_fake):
    from trainsh.cloud.runpod import RunPodProvider

    cloud = RunPodProvider(timeout=2)
    runpod_fake.control(slow_create=20, list_lag=60)
    with pytest.raises(LostAnswer, match="RunPod: mutation podFindAndDeployOnDemand: no answer came within 2 s"):
        cloud.create("L4", CreateRequest(image="img", disk_gb=10, label="late", public_key=runpod_fake.public_key))
    runpod_fake.control(slow_create=0, wrong_shape={
        "path": "podFindAndDeployOnDemand",
        "reply": {"data": {"podFindAndDeployOnDemand": {"id": "p1", "desiredStatus": ["RUNNING"]}}}})
    with pytest.raises(LostAnswer, match=r"RunPod: mutation podFindAndDeployOnDemand: the answer's "
                                         r"data.podFindAndDeployOnDemand.desiredStatus is a list, not a string"):
        cloud.create("L4", CreateRequest(image="img", disk_gb=10, label="odd", public_key=runpod_fake.public_key))
    assert runpod_fake.state()["creates"] == 2


# ---- the setting -----------------------------------------------------------------------------

def test_the_setting(isolated):
    assert train("config", "get", "cloud.api_timeout").stdout.strip() == "30s"
    assert train("config", "set", "cloud.api_timeout", "1m").returncode == 0
    assert train("config", "get", "cloud.api_timeout").stdout.strip() == "1m"
    r = train("config", "set", "cloud.api_timeout", "soon")
    assert r.returncode == 2 and "cloud.api_timeout" in r.stderr and "Traceback" not in r.stderr


def test_the_fakes_refuse_a_fault_they_do_not_know(vast, runpod_fake):
    import json
    import urllib.error
    import urllib.request

    for url in (vast.url, runpod_fake.url):
        for bad in ({"garble_reply": "shred"}, {"delay": "soon"}, {"wrong_shape": 5}):
            req = urllib.request.Request(f"{url}/_fake/control", data=json.dumps(bad).encode(), method="POST")
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)
            assert e.value.code == 400 and list(bad)[0] in e.value.read().decode()
    # and the control paths themselves answer whatever the faults
    vast.control(delay=30, trickle=5, bad_status=True)
    runpod_fake.control(delay=30, trickle=5, bad_status=True)
    t = time.monotonic()
    assert vast.state()["faults"]["bad_status"] == "HTTP/1.1 2OO WHAT"
    assert runpod_fake.state()["faults"]["delay"] == 30
    assert time.monotonic() - t < 5
