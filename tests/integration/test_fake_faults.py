"""The fakes' faults for rents in flight (tests/fakes/inflight.py) do what they say.

Plain HTTP only (http.client, urllib), never trainsh's client: these pin the fakes themselves,
each test once against the Vast fake (REST) and once against the RunPod fake (GraphQL).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest


class Cloud:
    """One fake as a plain HTTP client sees it."""

    name: str
    fake: object

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.port = urlparse(url).port

    def call(self, method: str, path: str, body=None):
        """JSON answer of an API call; urllib.error.HTTPError for an error status."""
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def control(self, **faults) -> dict:
        req = urllib.request.Request(self.url + "/_fake/control", method="POST", data=json.dumps(faults).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def state(self) -> dict:
        with urllib.request.urlopen(self.url + "/_fake/state", timeout=10) as r:
            return json.loads(r.read())

    def send_create(self, label: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a rent on a connection of its own; the connection and its answer's head."""
        method, path, body = self.create_request(label)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        return conn, conn.getresponse()

    def create(self, label: str) -> str:
        """Rent with a normal answer; the new id."""
        conn, resp = self.send_create(label)
        try:
            assert resp.status == 200, resp.read()
            return self.new_id(json.loads(resp.read()))
        finally:
            conn.close()

    def made(self, label: str) -> list[str]:
        """Ids of the machines the fake made with this label (destroyed or not)."""
        return [i for i, m in self.state()["machines"].items() if m["label"] == label]


class Vast(Cloud):
    name = "vast"

    def create_request(self, label):
        # each rent takes an ask of its own: a rented ask leaves the market (1001, 1002, ...)
        self.asks = getattr(self, "asks", 0) + 1
        return ("PUT", f"/api/v0/asks/{1000 + self.asks}/",
                {"client_id": "me", "image": "fake/image", "disk": 10, "label": label})

    def new_id(self, reply) -> str:
        return str(reply["new_contract"])

    def listed(self) -> dict[str, str]:
        rows = self.call("GET", "/api/v0/instances/")["instances"]
        v1 = self.call("GET", "/api/v1/instances/")["instances"]
        assert {str(r["id"]) for r in v1} == {str(r["id"]) for r in rows}  # both lists lag alike
        return {str(r["id"]): r["label"] for r in rows}

    def by_id(self, iid: str) -> bool:
        return bool(self.call("GET", f"/api/v0/instances/{iid}/")["instances"])

    def destroy(self, iid: str) -> None:
        assert self.call("DELETE", f"/api/v0/instances/{iid}/")["success"]


class RunPod(Cloud):
    name = "runpod"

    def create_request(self, label):
        return "POST", "/graphql", {"query": (
            'mutation { podFindAndDeployOnDemand(input: {gpuTypeId: "NVIDIA GeForce RTX 4090", gpuCount: 1, '
            f'imageName: "fake/image", name: {json.dumps(label)}}}) {{ id name }} }}')}

    def new_id(self, reply) -> str:
        return reply["data"]["podFindAndDeployOnDemand"]["id"]

    def listed(self) -> dict[str, str]:
        reply = self.call("POST", "/graphql", {"query": "query { myself { pods { id name } } }"})
        pods = reply["data"]["myself"]["pods"]
        return {p["id"]: p["name"] for p in pods}

    def by_id(self, iid: str) -> bool:
        q = f'query {{ pod(input: {{podId: "{iid}"}}) {{ id }} }}'
        return bool(self.call("POST", "/graphql", {"query": q})["data"]["pod"])

    def destroy(self, iid: str) -> None:
        self.call("POST", "/graphql", {"query": f'mutation {{ podTerminate(input: {{podId: "{iid}"}}) }}'})


@pytest.fixture(params=["vast", "runpod"])
def cloud(request):
    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (the fakes' machines are real sshd servers)")
    if request.param == "vast":
        from fakes.vast import FakeVast

        fake = FakeVast(start_delay=0.3)
        try:
            c = Vast(fake.url, fake.key)
            c.fake = fake
            yield c
        finally:
            survivors = fake.stop()
            assert not survivors, f"the Vast fake left sshd running: {survivors}"
    else:
        from fakes.runpod import serving

        with serving() as fake:
            c = RunPod(fake.url, fake.api_key)
            c.fake = fake
            yield c


def wait_for(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def status_of(call) -> int:
    """The HTTP status an API call answers."""
    try:
        call()
    except urllib.error.HTTPError as e:
        e.close()
        return e.code
    return 200


def test_slow_create_makes_the_machine_before_it_answers(cloud):
    hold = 3.0
    cloud.control(slow_create=hold)
    answer: dict = {}

    def rent():
        started = time.monotonic()
        conn, resp = cloud.send_create("held")
        answer.update(status=resp.status, body=json.loads(resp.read()), took=time.monotonic() - started)
        conn.close()

    thread = threading.Thread(target=rent, daemon=True)
    thread.start()
    try:
        state = cloud.fake.wait_creating(timeout=15)   # the event: the cloud acted, no answer yet
        assert state["creating"] == 1 and not answer
        [iid] = cloud.made("held")
        assert state["machines"][iid]["destroyed"] is False
        assert cloud.listed() == {iid: "held"}           # the account shows it meanwhile
        assert list(cloud.fake.live()) == [iid] and not answer
    finally:
        thread.join(hold + 20)
    assert answer["status"] == 200 and cloud.new_id(answer["body"]) == iid
    assert answer["took"] >= hold
    assert cloud.state()["creating"] == 0
    cloud.control(slow_create=0)
    started = time.monotonic()
    cloud.create("quick")
    assert time.monotonic() - started < hold


@pytest.mark.parametrize("mode", ["truncate", "badjson", "500", "drop"])
def test_garbled_create_answer_after_the_machine_is_made(cloud, mode):
    assert cloud.control(garble_create=mode)["faults"]["garble_create"] == mode
    conn, resp = None, None
    try:
        if mode == "drop":
            with pytest.raises(http.client.RemoteDisconnected):
                cloud.send_create("garbled")
        else:
            conn, resp = cloud.send_create("garbled")
            if mode == "truncate":
                assert resp.status == 200 and int(resp.getheader("Content-Length")) > 0
                with pytest.raises(http.client.IncompleteRead):
                    resp.read()
            elif mode == "badjson":
                assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
                body = resp.read()
                assert body
                with pytest.raises(ValueError):
                    json.loads(body)
            else:
                assert resp.status == 500
                body = json.loads(resp.read())
                if cloud.name == "vast":  # each provider's documented error shape
                    assert body["success"] is False and body["error"] and body["msg"]
                else:
                    assert body["errors"][0]["message"]
    finally:
        if conn:
            conn.close()
    [iid] = cloud.made("garbled")                 # the cloud acted all the same
    assert cloud.fake.live() == {iid: cloud.state()["machines"][iid]["status"]}
    state = cloud.state()
    assert state["creating"] == 0 and state["faults"]["garble_create"] == ""  # used up: one rent
    assert cloud.create("clean") != iid


def test_garble_count_damages_that_many_rents(cloud):
    cloud.control(garble_create="badjson", garble_count=2)
    for _ in range(2):
        conn, resp = cloud.send_create("twice")
        with pytest.raises(ValueError):
            json.loads(resp.read())
        conn.close()
    assert len(cloud.made("twice")) == 2
    cloud.create("third")
    cloud.control(garble_create="500", garble_count=-1)  # every rent, until cleared
    for _ in range(2):
        conn, resp = cloud.send_create("always")
        assert resp.status == 500
        resp.read()
        conn.close()
    assert cloud.state()["faults"]["garble_create"] == "500"
    cloud.control(garble_create="")
    cloud.create("cleared")


def test_unknown_garble_is_refused(cloud):
    with pytest.raises(urllib.error.HTTPError) as e:
        cloud.control(garble_create="scramble")
    assert e.value.code == 400
    e.value.close()
    assert cloud.state()["faults"].get("garble_create", "") == ""


def test_list_lag_hides_a_new_machine_from_the_list_for_a_while(cloud):
    lag = 5.0  # long enough that the looks right after the create fall inside it on a busy machine
    cloud.control(list_lag=lag)
    started = time.monotonic()
    iid = cloud.create("lagging")
    assert iid not in cloud.listed() and "lagging" not in cloud.listed().values()  # a lookup at once misses it
    assert cloud.by_id(iid)                          # asked by its id, it is there
    assert cloud.state()["machines"][iid]["listed"] is False
    wait_for(lambda: iid in cloud.listed(), timeout=lag + 10, what="the instance in the list")
    assert time.monotonic() - started >= lag
    assert cloud.listed()[iid] == "lagging" and cloud.fake.wait_listed(iid, timeout=1)["listed"]
    cloud.control(list_lag=0)
    assert cloud.create("prompt") in cloud.listed()


def test_down_after_a_create_whose_answer_is_lost(cloud):
    down = 3.0
    cloud.control(down_after_create=down, garble_create="drop", slow_create=1.0)
    errors = []

    def rent():
        try:
            cloud.send_create("lost")
        except http.client.RemoteDisconnected as e:
            errors.append(e)

    started = time.monotonic()
    thread = threading.Thread(target=rent, daemon=True)
    thread.start()
    try:
        cloud.fake.wait_creating(timeout=15)
        assert status_of(cloud.listed) == 503             # while the answer is held, too
    finally:
        thread.join(20)
    assert errors, "the create's answer was not dropped"
    assert status_of(cloud.listed) == 503
    conn, resp = cloud.send_create("another")
    assert resp.status == 503 and json.loads(resp.read()) and cloud.made("another") == []
    conn.close()
    assert cloud.state()["machines"]                      # the fake's own endpoints still answer
    wait_for(lambda: status_of(cloud.listed) == 200, timeout=down + 15, what="the API back up")
    assert time.monotonic() - started >= down
    [iid] = cloud.made("lost")
    assert cloud.listed() == {iid: "lost"}


def test_state_shows_the_machines_left(cloud):
    a, b = cloud.create("one"), cloud.create("two")
    assert set(cloud.fake.live()) == {a, b}
    cloud.destroy(a)
    machines = cloud.state()["machines"]
    assert machines[a]["destroyed"] is True and machines[a]["label"] == "one"
    assert machines[b]["destroyed"] is False and machines[b]["label"] == "two" and machines[b]["status"]
    assert cloud.fake.live() == {b: machines[b]["status"]}


FLAGS = ["--slow-create", "1.5", "--garble-create", "drop", "--garble-count", "2", "--list-lag", "2.5",
         "--down-after-create", "0.5"]
WANT = {"slow_create": 1.5, "garble_create": "drop", "garble_count": 2, "list_lag": 2.5, "down_after_create": 0.5}


def test_the_faults_by_flag_when_a_fake_runs_on_its_own():
    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (the fakes' machines are real sshd servers)")
    import sshd

    fakes = Path(__file__).resolve().parent.parent / "fakes"
    port = sshd.free_port()
    for script in ("vast.py", "runpod.py"):
        proc = subprocess.Popen([sys.executable, str(fakes / script), "--port", str(port), "--api-key", "k", *FLAGS],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert f"127.0.0.1:{port}" in proc.stdout.readline()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/state", timeout=10) as r:
                state = json.loads(r.read())
            assert {k: state["faults"][k] for k in WANT} == WANT and state["creating"] == 0, script
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
