"""RunPod: the client against the fake GraphQL API whose pods are real sshd on loopback, and
`train runpod ...` as a user meets it.

The provider checks (the first block) are the ones every cloud must pass: offers with prices,
create -> starting -> running with a real ssh login, list/get, stop (sshd gone), resume,
terminate, NotFound, a refused key, no capacity, a create that fails after making the machine,
an API that is down. They take a `cloud` fixture and a `fake` with `faults`, `pod_state`,
`state()`, so they can join a shared provider suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import train

from trainsh.cloud.provider import (RUNNING, STARTING, STOPPED, AuthError, CreateRequest, NoCapacity,
                                    NotFound, ProviderError, Unavailable)
from trainsh.cloud.runpod import RunPodProvider

IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
FAKE = Path(__file__).resolve().parent.parent / "fakes" / "runpod.py"


@pytest.fixture
def fake(runpod_fake):
    return runpod_fake


@pytest.fixture
def cloud(fake):
    return RunPodProvider()


def request(fake, label: str = "t-pod", **kw) -> CreateRequest:
    return CreateRequest(image=IMAGE, disk_gb=20, label=label, public_key=fake.public_key, **kw)


def login(cloud, inst, command: str = "echo ok") -> subprocess.CompletedProcess:
    from trainsh.remote.sshspec import ssh_argv

    return subprocess.run(ssh_argv(cloud.ssh_spec(inst), command), capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def sleeper(cloud, inst) -> int:
    """A process left running in the pod by a login; its pid."""
    return int(login(cloud, inst, "nohup sleep 1000 >/dev/null 2>&1 & echo $!").stdout.strip())


def dead(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


# ---- the provider checks -------------------------------------------------------------------

def test_offers_are_gpu_types_with_prices(cloud):
    offers = cloud.search()
    assert len(offers) >= 10
    assert [o.price_per_hour for o in offers] == sorted(o.price_per_hour for o in offers)
    l40 = cloud.search(gpu="L40")  # secure cloud only
    assert [(o.id, o.gpu_name, o.gpu_ram_gb) for o in l40] == [("NVIDIA L40@SECURE", "L40", 48.0)]
    assert l40[0].price_per_hour > 0 and l40[0].provider == "runpod"
    two = cloud.search(gpu="l40", num_gpus=2)
    assert two[0].num_gpus == 2 and two[0].price_per_hour == pytest.approx(2 * l40[0].price_per_hour)
    by_name = {o.id: o.price_per_hour for o in cloud.search(gpu="RTX_4090")}  # a display name
    assert by_name == {o.id: o.price_per_hour for o in cloud.search(gpu="NVIDIA GeForce RTX 4090")}
    assert by_name["NVIDIA GeForce RTX 4090@COMMUNITY"] < by_name["NVIDIA GeForce RTX 4090@SECURE"]
    assert cloud.search(gpu="NO_SUCH_GPU") == []
    big_cheap = cloud.search(min_gpu_ram_gb=80, max_price=2.0)
    assert big_cheap and all(o.gpu_ram_gb >= 80 and o.price_per_hour <= 2.0 for o in big_cheap)
    assert "NVIDIA H200" not in {o.id for o in big_cheap}
    types = {g["id"]: g for g in cloud.gpu_types()}
    assert types["NVIDIA H100 80GB HBM3"]["memoryInGb"] == 80
    assert types["NVIDIA H100 80GB HBM3"]["securePrice"] > types["NVIDIA H100 80GB HBM3"]["communityPrice"] > 0


def _gql(fake, query: str, variables: dict | None = None) -> dict:
    from trainsh.cloud.http import request as http

    return http("POST", f"{fake.url}/graphql", what="fake", key=fake.api_key, retries=0,
                body={"query": query, **({"variables": variables} if variables else {})})


def test_lowest_price_takes_the_input_the_official_clients_send(fake):
    """`lowestPrice` is asked with GpuLowestPriceInput and its gpuCount (runpod-python
    api/queries/gpus.py, runpodctl api/cloud.go); `secureCloud` picks a cloud, null both."""
    def ask(args: str) -> dict:
        return _gql(fake, 'query { gpuTypes(input: {id: "NVIDIA GeForce RTX 4090"}) { securePrice communityPrice '
                          f"lowestPrice{args} {{ uninterruptablePrice minMemory }} }} }}")

    def lowest(args: str) -> dict:
        return ask(args)["data"]["gpuTypes"][0]

    both, secure, community = (lowest(f"(input: {{gpuCount: 1{extra}}})")
                               for extra in ("", ", secureCloud: true", ", secureCloud: false"))
    assert secure["lowestPrice"]["uninterruptablePrice"] == secure["securePrice"]
    assert community["lowestPrice"]["uninterruptablePrice"] == community["communityPrice"]
    assert both["lowestPrice"]["uninterruptablePrice"] == min(both["securePrice"], both["communityPrice"])
    for bad in ("", "(input: {secureCloud: true})"):  # no input, no gpuCount: an error, no prices
        reply = ask(bad)
        assert "gpuCount" in reply["errors"][0]["message"] and not reply.get("data")
    # the availability query of RunPod's GraphQL docs (sdks/graphql/manage-pods.mdx), every input field
    doc = lowest("(input: {compliance: null, dataCenterId: null, globalNetwork: false, gpuCount: 1, minDisk: 0, "
                 "minMemoryInGb: 8, minVcpuCount: 2, secureCloud: true})")
    assert doc["lowestPrice"]["uninterruptablePrice"] == doc["securePrice"]
    from trainsh.cloud.http import HttpError

    with pytest.raises(HttpError, match="minDiskBandwidth"):  # not a field of the input: 400
        ask("(input: {gpuCount: 1, minDiskBandwidth: 1})")
    # runpodctl's `get cloud` form: a GpuLowestPriceInput! variable, sizes read back
    reply = _gql(fake, "query LowestPrice($input: GpuLowestPriceInput!) { gpuTypes { lowestPrice(input: $input) "
                       "{ gpuName gpuTypeId minimumBidPrice uninterruptablePrice minMemory minVcpu } } }",
                 {"input": {"gpuCount": 2, "secureCloud": None}})
    rows = {r["lowestPrice"]["gpuTypeId"]: r["lowestPrice"] for r in reply["data"]["gpuTypes"]}
    assert rows["NVIDIA L40"]["gpuName"] == "L40" and rows["NVIDIA L40"]["minMemory"] > 0
    fake.faults["sold_out"] = ["NVIDIA L40"]
    assert lowest("(input: {gpuCount: 1})")["lowestPrice"]["minMemory"] > 0
    reply = _gql(fake, 'query { gpuTypes(input: {id: "NVIDIA L40"}) { lowestPrice(input: {gpuCount: 1}) '
                       "{ uninterruptablePrice minMemory } } }")
    assert reply["data"]["gpuTypes"][0]["lowestPrice"] == {"uninterruptablePrice": None, "minMemory": None}


def test_the_variables_form_runpodctl_sends(fake):
    """runpodctl (api/user.go, api/pod.go) sends its inputs as GraphQL variables: a create with
    `env: null` and empty strings for what it leaves unset, stop by a `$podId`."""
    keys = _gql(fake, "mutation Mutation($input: UpdateUserSettingsInput) { updateUserSettings(input: $input) { id } }",
                {"input": {"pubKey": fake.public_key}})
    assert keys["data"]["updateUserSettings"]["id"]
    made = _gql(fake, "mutation createPod($input: PodFindAndDeployOnDemandInput!) { podFindAndDeployOnDemand("
                      "input: $input) { id costPerHr desiredStatus lastStatusChange } }",
                {"input": {"cloudType": "ALL", "containerDiskInGb": 10, "dockerArgs": "", "dataCenterId": "",
                           "env": None, "gpuCount": 1, "gpuTypeId": "NVIDIA L4", "imageName": IMAGE,
                           "minMemoryInGb": 0, "minVcpuCount": 0, "name": "ctl", "networkVolumeId": "",
                           "ports": "22/tcp", "supportPublicIp": True, "startSsh": True, "templateId": "",
                           "volumeInGb": 0, "volumeMountPath": ""}})
    pod = made["data"]["podFindAndDeployOnDemand"]
    assert pod["desiredStatus"] == "RUNNING" and pod["costPerHr"] > 0
    assert fake.state()["pods"][pod["id"]]["env"] == {"PUBLIC_KEY": fake.public_key}
    stopped = _gql(fake, "mutation stopPod($podId: String!) { podStop(input: {podId: $podId}) { id desiredStatus } }",
                   {"podId": pod["id"]})
    assert stopped["data"]["podStop"] == {"id": pod["id"], "desiredStatus": "EXITED"}
    _gql(fake, f'mutation {{ podTerminate(input: {{podId: "{pod["id"]}"}}) }}')


def _post(fake, query: str, variables: dict | None = None) -> tuple[int, dict]:
    """The fake's status and body as they come (no client between)."""
    import urllib.error
    import urllib.request

    body = json.dumps({"query": query, **({"variables": variables} if variables else {})}).encode()
    req = urllib.request.Request(f"{fake.url}/graphql", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {fake.api_key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_inputs_are_checked_as_a_graphql_server_checks_them(fake):
    """Every input object field, enum value and required field is checked before anything is
    done (graphql-js's rules); the refusal is `{"errors": [{"message"}]}`, which runpod-python
    raises as QueryError whatever the status (api/graphql.py), and nothing is made."""
    good = ('name: "v", imageName: "img", gpuTypeId: "NVIDIA GeForce RTX 4090", gpuCount: 1, '
            'cloudType: SECURE, startSsh: true, env: [{key: "A", value: "1"}]')

    def deploy(fields: str) -> tuple[int, dict]:
        return _post(fake, f"mutation {{ podFindAndDeployOnDemand(input: {{{fields}}}) {{ id }} }}")

    for fields, said in ((good + ", gpuTypeID: \"x\"", 'Field "gpuTypeID" is not defined'),  # misspelt
                         (good + ", colour: 1", 'Field "colour" is not defined'),             # unknown
                         (good.replace("SECURE", "MOON"), 'Value "MOON" does not exist'),     # enum value
                         (good.replace("SECURE", '"SECURE"'), 'cannot represent "SECURE"'),   # a string, not an enum
                         (good.replace('imageName: "img", ', ""), "imageName"),              # required
                         (good.replace("gpuCount: 1", 'gpuCount: "1"'), 'Int cannot represent "1"'),
                         (good.replace("startSsh: true", "startSsh: 1"), "Boolean cannot represent 1"),
                         (good.replace('value: "1"}', 'valu: "1"}'), 'Field "valu" is not defined')):
        status, body = deploy(fields)
        assert status == 400 and said in body["errors"][0]["message"], (fields, body)
        assert not body.get("data")
    assert fake.state()["creates"] == 0
    # arguments, and the inputs of the other mutations
    for query, said in (('query { pod(podId: "x") { id } }', 'Unknown argument "podId"'),
                        ("query { pod { id } }", 'argument "input"'),
                        ('mutation { podStop(input: {podId: "x", force: true}) { id } }', 'Field "force"'),
                        ('mutation { podResume(input: {podId: "x", gpuCount: 1.5}) { id } }', "Int cannot"),
                        ("mutation { podTerminate(input: {}) }", "podId")):
        status, body = _post(fake, query)
        assert status == 400 and said in body["errors"][0]["message"], (query, body)
    # every well-formed create passes: a bare enum, and a string in a variable (JSON has no enums)
    status, body = deploy(good)
    assert status == 200 and body["data"]["podFindAndDeployOnDemand"]["id"], body
    status, body = _post(fake, "mutation ($i: PodFindAndDeployOnDemandInput!) { podFindAndDeployOnDemand(input: $i) "
                               "{ id } }", {"i": {"imageName": "img", "gpuTypeId": "NVIDIA L4", "cloudType": "ALL"}})
    assert status == 200 and body["data"]["podFindAndDeployOnDemand"]["id"], body
    # a cloud that has none of the type (L4 is secure only here): RunPod's capacity error
    status, body = deploy(good.replace("NVIDIA GeForce RTX 4090", "NVIDIA L4").replace("SECURE", "COMMUNITY"))
    assert "no longer any instances available" in body["errors"][0]["message"] and fake.state()["creates"] == 2


def test_a_resume_takes_the_gpu_count_it_is_sent(cloud, fake):
    """podResume(input: {podId, gpuCount}) (runpod-python api/mutations/pods.py) resumes the pod
    with that many GPUs; without gpuCount (runpodctl api/pod.go) it keeps its own."""
    inst = cloud.create("L40", request(fake, "t-count"))
    price = cloud.get(inst.id).price_per_hour
    cloud.stop(inst.id)
    reply = _gql(fake, f'mutation {{ podResume(input: {{podId: "{inst.id}", gpuCount: 2}}) '
                       "{ id desiredStatus gpuCount costPerHr } }")["data"]["podResume"]
    assert reply["gpuCount"] == 2 and reply["costPerHr"] == pytest.approx(2 * price)
    assert cloud.get(inst.id).num_gpus == 2
    cloud.stop(inst.id)
    reply = _gql(fake, f'mutation {{ podResume(input: {{podId: "{inst.id}"}}) {{ gpuCount }} }}')
    assert reply["data"]["podResume"]["gpuCount"] == 2
    cloud.stop(inst.id)
    status, body = _post(fake, f'mutation {{ podResume(input: {{podId: "{inst.id}", gpuCount: 9}}) {{ id }} }}')
    assert "not enough free GPUs" in body["errors"][0]["message"]
    cloud.start(inst.id)  # trainsh resumes with the pod's own count
    assert cloud.get(inst.id).num_gpus == 2 and fake.state()["pods"][inst.id]["desiredStatus"] == "RUNNING"


def test_lifecycle_with_real_ssh(cloud, fake):
    fake.faults["start_delay"] = 1.5  # runtime stays null meanwhile
    inst = cloud.create("L40", request(fake, "t-life"))
    assert inst.status == STARTING and inst.ssh is None and inst.label == "t-life"
    got = cloud.get(inst.id)
    assert got.status == STARTING and got.provider_status == "RUNNING" and got.ssh is None

    ready = cloud.wait_ready(inst.id, timeout=30)
    assert ready.status == RUNNING and ready.ssh and ready.ssh.host == "127.0.0.1"  # the public port, not 10.x
    r = login(cloud, ready, 'echo "pod=$RUNPOD_POD_ID"')
    assert r.returncode == 0 and r.stdout.strip() == f"pod={inst.id}", r.stderr
    assert fake.state()["pods"][inst.id]["env"]["PUBLIC_KEY"] == fake.public_key
    from trainsh.settings import paths

    found = subprocess.run(["ssh-keygen", "-F", f"runpod-{inst.id}", "-f", str(paths.home() / "known_hosts")],
                           capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip()  # trainsh's known_hosts, under the pod's name
    assert not (Path(os.environ["HOME"]) / ".ssh" / "known_hosts").exists()

    listed = {i.id: i for i in cloud.list()}
    assert listed[inst.id].status == RUNNING and listed[inst.id].gpu_name == "L40"
    assert listed[inst.id].price_per_hour > 0 and listed[inst.id].host_spec == f"runpod:{inst.id}"

    assert cloud.shell(inst.id).run(["sh", "-c", "echo $RUNPOD_POD_ID"]).stdout.strip() == inst.id
    fake.faults["start_delay"] = 0
    left = sleeper(cloud, ready)
    assert not dead(left)
    cloud.stop(inst.id)
    stopped = cloud.get(inst.id)
    assert stopped.status == STOPPED and stopped.ssh is None
    assert refused(ready.ssh.port) and dead(left)  # its sshd is gone, and what its logins left running
    assert login(cloud, ready).returncode != 0  # the shared connection to it too
    with pytest.raises(ProviderError, match=f"pod {inst.id} is stopped, not running .train runpod start"):
        cloud.shell(inst.id)

    cloud.start(inst.id)
    back = cloud.wait_ready(inst.id, timeout=30)
    assert login(cloud, back).stdout.strip() == "ok"

    cloud.destroy(inst.id)
    with pytest.raises(NotFound):
        cloud.get(inst.id)
    assert inst.id not in {i.id for i in cloud.list()}
    assert fake.pod_state(inst.id) == "TERMINATED"
    assert refused(back.ssh.port)


def test_create_gives_the_pod_the_key_ssh_uses(cloud, fake):
    # No public_key in the request: the public half of config ssh.key (set by the fixture).
    inst = cloud.create("L4", CreateRequest(image=IMAGE, label="t-key"))
    assert fake.state()["pods"][inst.id]["env"]["PUBLIC_KEY"] == fake.public_key
    assert login(cloud, cloud.wait_ready(inst.id, timeout=30)).stdout.strip() == "ok"
    from trainsh.settings import paths

    found = subprocess.run(["ssh-keygen", "-F", f"runpod-{inst.id}", "-f", str(paths.home() / "known_hosts")],
                           capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip()  # trainsh's known_hosts, under the pod's name
    assert not (Path(os.environ["HOME"]) / ".ssh" / "known_hosts").exists()


def test_account_keys_reach_pods_that_name_none(cloud, fake, tmp_path):
    assert cloud.keys() == []
    cloud.add_key(fake.public_key + "\n")
    cloud.add_key(fake.public_key)  # once is enough
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOtherKeyOtherKeyOtherKe other@host"
    cloud.add_key(other)
    assert cloud.keys() == [{"id": "1", "key": fake.public_key}, {"id": "2", "key": other}]
    with pytest.raises(ProviderError, match="not a public key"):
        cloud.add_key("nonsense")
    # No ssh.key and no ~/.ssh keys here: the create sends no PUBLIC_KEY, RunPod adds the account's.
    from trainsh.settings import paths

    (paths.home() / "config.toml").write_text("")
    inst = cloud.create("L4", CreateRequest(image=IMAGE, label="t-acct"))
    assert "PUBLIC_KEY" not in fake.state()["pods"][inst.id]["spec"]["sentEnv"]
    ready = cloud.wait_ready(inst.id, timeout=30, key=str(fake.ssh_key))
    from trainsh.remote.sshspec import ssh_argv

    argv = ssh_argv(cloud.ssh_spec(ready, str(fake.ssh_key)), "echo acct")
    assert subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip() == "acct"
    # only a pod made with startSsh gets them (RunPod's docs: keys reach pods created with it)
    reply = _gql(fake, 'mutation { podFindAndDeployOnDemand(input: {name: "t-nossh", imageName: "x", '
                       'gpuTypeId: "NVIDIA L4", cloudType: ALL, startSsh: false}) { id } }')
    assert "PUBLIC_KEY" not in fake.state()["pods"][reply["data"]["podFindAndDeployOnDemand"]["id"]]["env"]


def test_unknown_pod_is_not_found(cloud, fake):
    for call in (cloud.get, cloud.stop, cloud.start, cloud.destroy):
        with pytest.raises(NotFound, match="nosuchpod1"):
            call("nosuchpod1")
    with pytest.raises(NotFound):
        cloud.get("not a pod id")


def test_wrong_key_is_refused(fake, monkeypatch):
    t = time.monotonic()
    with pytest.raises(AuthError, match="refused") as e:
        RunPodProvider(api_key="rpa_wrong").list()
    assert "rpa_wrong" not in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong_too")
    with pytest.raises(AuthError):
        RunPodProvider().search()
    assert time.monotonic() - t < 15
    assert fake.state()["creates"] == 0


def test_missing_key_says_how_to_set_it(fake, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY")
    with pytest.raises(AuthError, match="train secrets set RUNPOD_API_KEY"):
        RunPodProvider().list()


def test_no_capacity(cloud, fake):
    fake.faults["no_capacity"] = ["NVIDIA H200"]
    offer = cloud.search(gpu="H200")[0]  # still listed: listings lag behind
    with pytest.raises(NoCapacity, match=f"{offer.id}: There are no longer any instances available"):
        cloud.create(offer.id, request(fake, "t-full"))
    assert fake.state()["creates"] == 0 and cloud.find_by_label("t-full") == []
    fake.faults["sold_out"] = ["NVIDIA H200"]
    assert cloud.search(gpu="H200") == []
    assert cloud.search(gpu="L40")  # other types still there
    # one cloud sold out: its offer goes, the other stays (lowestPrice asked with secureCloud)
    fake.faults["sold_out"] = ["NVIDIA GeForce RTX 4090@COMMUNITY"]
    assert [o.id for o in cloud.search(gpu="RTX4090")] == ["NVIDIA GeForce RTX 4090@SECURE"]
    rtx = next(g for g in cloud.gpu_types() if g["id"] == "NVIDIA GeForce RTX 4090")
    assert rtx["clouds"] == ["SECURE"] and rtx["price"] == rtx["securePrice"]


def test_offer_ids_choose_the_cloud(cloud, fake):
    secure = cloud.create("NVIDIA GeForce RTX 4090@SECURE", request(fake, "t-sec"))
    community = cloud.create("RTX4090@community", request(fake, "t-com"))
    spec = {pid: p["spec"]["cloudType"] for pid, p in fake.state()["pods"].items()}
    assert spec == {secure.id: "SECURE", community.id: "COMMUNITY"}
    assert cloud.get(secure.id).price_per_hour > cloud.get(community.id).price_per_hour
    with pytest.raises(ProviderError, match="bad offer"):
        cloud.create("RTX4090@moon", request(fake, "t-moon"))


def test_reboot_is_stop_then_resume(cloud, fake):
    inst = cloud.wait_ready(cloud.create("L4", request(fake, "t-reboot")).id, timeout=30)
    login(cloud, inst, "touch ~/kept")
    left = sleeper(cloud, inst)
    cloud.reboot(inst.id)
    back = cloud.wait_ready(inst.id, timeout=30)
    assert dead(left)  # a new container
    assert login(cloud, back, "ls ~/kept").returncode == 0  # the same disk


def test_a_job_waiting_for_a_stopped_pod_gives_up_at_once(cloud, fake):
    """A stopped pod only runs again when someone starts it: `runpod.wait` (and reaching
    `runpod:ID`) says so at once rather than at its timeout."""
    from trainsh.runtime.reach import cloud as clouds

    inst = cloud.wait_ready(cloud.create("L4", request(fake, "t-wait-stopped")).id, timeout=30, login=False)
    cloud.stop(inst.id)
    begin = time.monotonic()
    with pytest.raises(TimeoutError, match=f"runpod {inst.id} is stopped .runpod.start or train runpod start"):
        clouds.wait_ready(cloud, inst.id, 60, poll=1)
    assert time.monotonic() - begin < 30  # (the timeout is 60 s)


def test_create_that_fails_after_making_the_pod_makes_one(cloud, fake):
    fake.faults["fail_create"] = 1  # the pod is made, then the API answers 500
    inst = cloud.create("A40", request(fake, "t-once"))
    state = fake.state()
    assert state["creates"] == 1 and list(state["pods"]) == [inst.id]
    assert [i.id for i in cloud.find_by_label("t-once")] == [inst.id]
    assert cloud.wait_ready(inst.id, timeout=30).status == RUNNING


def test_api_down_is_unavailable_and_bounded(cloud, fake):
    fake.faults["down"] = True
    t = time.monotonic()
    with pytest.raises(Unavailable, match="503"):
        cloud.list()
    assert time.monotonic() - t < 15
    with socket.socket() as s:  # nothing listens there
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    t = time.monotonic()
    with pytest.raises(Unavailable, match="cannot reach"):
        RunPodProvider(base_url=f"http://127.0.0.1:{closed}").get("abc")
    assert time.monotonic() - t < 15


def test_create_while_down_rents_nothing(cloud, fake):
    fake.faults["down"] = True
    with pytest.raises(Unavailable):
        cloud.create("L4", request(fake, "t-down"))
    assert fake.state()["creates"] == 0


def test_a_pod_of_the_same_name_does_not_answer_a_failed_create(cloud, fake):
    old = cloud.create("L4", request(fake, "t-same"))
    fake.faults["fail_create"] = 1
    new = cloud.create("L4", request(fake, "t-same"))
    assert new.id != old.id and fake.state()["creates"] == 2
    assert {i.id for i in cloud.find_by_label("t-same")} == {old.id, new.id}


# ---- the fake itself -----------------------------------------------------------------------

def test_fake_answers_only_selected_fields_and_rejects_unknown_ones(fake):
    from trainsh.cloud.http import HttpError, request as http

    url, key = f"{fake.url}/graphql", fake.api_key
    got = http("POST", url, what="t", key=key, body={"query": '{ gpuTypes(input: {id: "NVIDIA L4"}) { id } }'})
    assert got == {"data": {"gpuTypes": [{"id": "NVIDIA L4"}]}}
    with pytest.raises(HttpError, match='Cannot query field "nonsense"'):
        http("POST", url, what="t", key=key, body={"query": "{ myself { pods { id nonsense } } }"}, retries=0)
    with_vars = http("POST", url, what="t", key=key, body={
        "query": "query Q($id: String) { pod(input: {podId: $id}) { id } }", "variables": {"id": "none"}})
    assert with_vars == {"data": {"pod": None}}


def test_fake_runs_on_its_own_and_stops_its_pods(tmp_path, runpod_fake):
    # runpod_fake only for its key pair, config and skip rules; this test starts its own fake.
    import sshd

    from trainsh.cloud.http import request as http

    port = sshd.free_port()
    proc = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port), "--api-key", "k-alone", "--down",
                             "--no-capacity", "--start-delay", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        cloud = RunPodProvider(api_key="k-alone", base_url=f"http://127.0.0.1:{port}")
        with pytest.raises(Unavailable):
            cloud.list()
        http("POST", f"http://127.0.0.1:{port}/_fake/faults", what="fake", body={"down": False})
        with pytest.raises(NoCapacity):
            cloud.create("RTX4090", request(runpod_fake, "t-alone"))
        http("POST", f"http://127.0.0.1:{port}/_fake/faults", what="fake", body={"no_capacity": False})
        inst = cloud.create("RTX4090", request(runpod_fake, "t-alone"))
        assert cloud.get(inst.id).status == STARTING  # the start delay
        state = http("GET", f"http://127.0.0.1:{port}/_fake/state", what="fake")
        assert list(state["pods"]) == [inst.id] and state["creates"] == 1
        ready = cloud.wait_ready(inst.id, timeout=30)
        assert login(cloud, ready).stdout.strip() == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert refused(ready.ssh.port) and refused(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# The official SDK, pinned in ./dev, which installs it into a venv of its own (never imported here).
SDK_PYTHON = os.environ.get("RUNPOD_SDK_PYTHON",
                            str(Path(__file__).resolve().parents[2] / ".venv-clients" / "runpod" / "bin" / "python"))

SDK_SCRIPT = r"""
import json, os, sys, time
import runpod
runpod.api_key = os.environ["KEY"]
out = {"gpus": runpod.get_gpus(), "gpu": runpod.get_gpu("NVIDIA L40")}
out["settings"] = runpod.update_user_settings(os.environ["PUB"])
out["user"] = runpod.get_user()
pod = runpod.create_pod("sdk-pod", "runpod/base:0.6.2", "NVIDIA L40", ports="22/tcp",
                        env={"PUBLIC_KEY": os.environ["PUB"]})
out["created"] = pod
for _ in range(200):
    got = runpod.get_pod(pod["id"])
    if got["runtime"]:
        break
    time.sleep(0.05)
out["running"] = got
out["pods"] = runpod.get_pods()
out["stopped"] = runpod.stop_pod(pod["id"])
out["resumed"] = runpod.resume_pod(pod["id"], 1)
runpod.terminate_pod(pod["id"])
out["after"] = runpod.get_pod(pod["id"])
out["keyless"] = runpod.create_pod("sdk-keyless", "runpod/base:0.6.2", "NVIDIA L4")  # no env at all
runpod.terminate_pod(out["keyless"]["id"])
runpod.api_key = "wrong"
try:
    runpod.get_pods()
except runpod.error.AuthenticationError as e:
    out["auth_error"] = str(e)
print(json.dumps(out))
"""


def test_official_sdk_against_the_fake(fake):
    assert os.path.exists(SDK_PYTHON), f"no official runpod SDK at {SDK_PYTHON} (./dev test installs it)"
    env = {**os.environ, "KEY": fake.api_key, "PUB": fake.public_key}
    r = subprocess.run([SDK_PYTHON, "-c", SDK_SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"id": "NVIDIA L40", "displayName": "L40", "memoryInGb": 48} in out["gpus"]
    assert out["gpu"]["lowestPrice"]["uninterruptablePrice"] > 0
    assert out["settings"]["pubKey"] == out["user"]["pubKey"] == fake.public_key
    assert out["user"]["networkVolumes"] == []
    pod_id = out["created"]["id"]
    assert out["created"]["machine"]["podHostId"]
    ssh = [p for p in out["running"]["runtime"]["ports"] if p["isIpPublic"] and p["privatePort"] == 22]
    assert ssh and out["running"]["desiredStatus"] == "RUNNING" and out["running"]["name"] == "sdk-pod"
    assert [p["id"] for p in out["pods"]] == [pod_id]
    assert out["stopped"] == {"id": pod_id, "desiredStatus": "EXITED"}
    assert out["resumed"]["desiredStatus"] == "RUNNING"
    assert out["after"] is None and "API key" in out["auth_error"]
    # the SDK sends startSsh: true, so the account's keys (set above) went into PUBLIC_KEY
    assert fake.state()["terminated"][out["keyless"]["id"]]["env"]["PUBLIC_KEY"] == fake.public_key
    assert fake.pod_state(pod_id) == "TERMINATED"


# ---- train runpod ... ----------------------------------------------------------------------

def one_line(p: subprocess.CompletedProcess, code: int) -> str:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("train: "), p.stderr
    return lines[0]


def test_cli_list_show_ssh_stop_start_destroy(cloud, fake):
    inst = cloud.create("A6000", request(fake, "t-cli"))
    cloud.wait_ready(inst.id, timeout=30)

    p = train("runpod", "list")
    assert p.returncode == 0, p.stderr
    header, row = p.stdout.splitlines()[:2]
    assert header.split() == ["ID", "STATUS", "GPU", "PER", "HOUR", "UPTIME", "THIS", "RUN", "TOTAL", "SSH"]
    assert row.startswith(inst.id) and " running " in row and "RTX A6000" in row
    assert "ssh -p " in row and "root@127.0.0.1" in row
    rows = json.loads(train("runpod", "list", "--json").stdout)
    assert [(r["id"], r["status"], r["host"]) for r in rows] == [(inst.id, "running", f"runpod:{inst.id}")]
    assert rows[0]["price_per_hour"] > 0 and rows[0]["ssh"]["user"] == "root"
    shown = json.loads(train("runpod", "show", inst.id, "--json").stdout)
    assert shown["label"] == "t-cli" and shown["gpu_name"] == "RTX A6000" and shown["raw"]["id"] == inst.id
    assert "t-cli" in train("runpod", "show", inst.id).stdout

    p = train("runpod", "ssh", inst.id, input="echo from-$RUNPOD_POD_ID\nexit\n")
    assert f"from-{inst.id}" in p.stdout, p.stderr

    p = train("runpod", "stop", inst.id)
    assert p.returncode == 0 and "stopping" in p.stdout
    assert cloud.get(inst.id).status == STOPPED
    assert "is stopped" in one_line(train("runpod", "ssh", inst.id), 1)
    p = train("runpod", "start", inst.id, "--wait")
    assert p.returncode == 0 and "running: ssh -p" in p.stdout, p.stderr

    assert "--yes" in one_line(train("runpod", "destroy", inst.id), 2)
    assert cloud.get(inst.id).status == RUNNING  # not destroyed without --yes
    p = train("runpod", "destroy", inst.id, "--yes")
    assert p.returncode == 0 and "destroyed" in p.stdout
    assert fake.pod_state(inst.id) == "TERMINATED"
    assert train("runpod", "list").stdout.startswith("no RunPod pods")


def test_cli_has_every_cloud_verb(cloud, fake):
    """`train runpod` is the generic cloud group: search, create, reboot, keys and attach-key
    work as they do for `train vast`."""
    offers = json.loads(train("runpod", "search", "--gpu", "L40", "--json").stdout)
    assert offers[0]["id"] == "NVIDIA L40@SECURE" and offers[0]["gpu_ram_gb"] == 48.0
    p = train("runpod", "search", "--gpu", "L40")
    assert p.returncode == 0 and "NVIDIA L40@SECURE" in p.stdout, p.stderr
    p = train("runpod", "create", "NVIDIA L40@SECURE", "--label", "t-verbs", "--disk", "20")
    assert p.returncode == 0 and p.stdout.startswith("runpod "), p.stderr
    pid = p.stdout.split()[1].rstrip(":")
    assert cloud.get(pid).label == "t-verbs"
    cloud.wait_ready(pid, timeout=30)
    assert train("runpod", "reboot", pid).returncode == 0
    assert train("runpod", "start", pid, "--wait").returncode == 0  # (a reboot resumes it)
    assert train("runpod", "ssh", pid, "echo", "on-$RUNPOD_POD_ID").stdout.strip() == f"on-{pid}"
    p = train("runpod", "attach-key", str(fake.ssh_key) + ".pub")
    assert p.returncode == 0, p.stderr
    assert fake.public_key.split()[1][-12:] in train("runpod", "keys").stdout
    assert train("runpod", "destroy", pid, "--yes").returncode == 0


def test_search_help_names_gpus_as_runpod_takes_them(fake):
    text = train("runpod", "search", "--help").stdout
    assert "train runpod gpus" in text and "A100_SXM4" not in text, text  # (Vast's names)
    assert "RTX_4090" in train("vast", "search", "--help").stdout


def test_cli_gpus(fake):
    p = train("runpod", "gpus")
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("H100S "))
    assert "NVIDIA H100 80GB HBM3" in line and " 80 GB " in line
    line = next(ln for ln in train("runpod", "search", "--gpu", "RTX4090").stdout.splitlines()
                if ln.startswith("NVIDIA GeForce RTX 4090@"))
    assert "1x RTX 4090  24 GB  " in line, line  # as Vast's 24564 MiB card reads
    data = json.loads(train("runpod", "gpus", "--json", "--count", "2").stdout)
    l40 = next(g for g in data if g["short"] == "L40")
    assert l40["memory_gb"] == 48 and l40["price_now"] > 0


def test_cli_errors_are_one_line(fake, monkeypatch):
    assert "nosuchpod1" in one_line(train("runpod", "show", "nosuchpod1"), 2)
    assert "not a pod id" in one_line(train("runpod", "stop", "bad/id"), 2)
    assert "no RunPod offer matches" in one_line(train("runpod", "search", "--gpu", "NO_SUCH_GPU"), 1)
    for offer in ("L40@moon", "@SECURE", " "):
        assert "bad offer" in one_line(train("runpod", "create", offer), 2)
    assert not fake.state()["pods"]
    # a disk of part of a GB is rounded up: RunPod takes whole GBs, and 0 is no disk
    p = train("runpod", "create", "L4", "--disk", "0.5", "--label", "t-half")
    assert p.returncode == 0, p.stderr
    [spec] = [x["spec"] for x in fake.state()["pods"].values()]
    assert (spec["containerDiskInGb"], spec["volumeInGb"], spec["ports"]) == (1, 0, "22/tcp"), spec
    assert train("runpod", "destroy", p.stdout.split()[1].rstrip(":"), "--yes").returncode == 0
    fake.faults["down"] = True
    assert "503" in one_line(train("runpod", "list"), 1)
    fake.faults["down"] = False
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong")
    assert "train secrets set RUNPOD_API_KEY" in one_line(train("runpod", "list"), 1)  # refused
    monkeypatch.delenv("RUNPOD_API_KEY")
    assert "RUNPOD_API_KEY" in one_line(train("runpod", "gpus"), 1)


def test_cli_destroy_asks_on_a_terminal(cloud, fake):
    import pty

    from helpers import TRAIN

    inst = cloud.create("L4", request(fake, "t-ask"))

    def answer(text: str) -> subprocess.CompletedProcess:
        master, slave = pty.openpty()
        try:
            os.write(master, text.encode())
            return subprocess.run([*TRAIN, "runpod", "destroy", inst.id], stdin=slave, capture_output=True,
                                  text=True, timeout=60)
        finally:
            os.close(master)
            os.close(slave)

    p = answer("n\n")
    assert p.returncode == 1 and "not destroyed" in p.stdout and "[y/N]" in p.stdout, (p.stdout, p.stderr)
    assert fake.pod_state(inst.id) == "RUNNING"
    p = answer("y\n")
    assert p.returncode == 0 and "destroyed" in p.stdout, (p.stdout, p.stderr)
    assert fake.pod_state(inst.id) == "TERMINATED"


def test_a_pod_is_a_recipe_host(cloud, fake, tmp_path):
    """`runpod:ID` goes wherever a host goes: a recipe runs on the pod, files come back; a pod
    the job had to start is stopped again when the job fails (money never leaks)."""
    from helpers import write_recipe

    inst = cloud.create("L40", request(fake, "t-host"))
    cloud.wait_ready(inst.id, timeout=30)
    recipe = write_recipe(tmp_path / "pod.recipe", f"""
host gpu = runpod:{inst.id}
tmux.open @gpu as w
@w > echo "on $RUNPOD_POD_ID" > ~/made.txt
@gpu:~/made.txt -> ./back/
tmux.close @w
""")
    r = train("recipe", "run", str(recipe), "--no-visual", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "back" / "made.txt").read_text() == f"on {inst.id}\n"
    assert fake.pod_state(inst.id) == "RUNNING"  # the user's own pod: left as it was

    cloud.stop(inst.id)
    failing = write_recipe(tmp_path / "fail.recipe", f"""
host gpu = runpod:{inst.id}
tmux.open @gpu as w
@w > exit 3
""")
    r = train("recipe", "run", str(failing), "--no-visual", timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "stopped (the job failed)" in r.stderr and inst.id in r.stderr
    assert fake.pod_state(inst.id) == "EXITED"  # started by the job, stopped by its failure
    cloud.destroy(inst.id)


def test_pick_host_chooses_from_the_cloud_of_the_recipes_pick(cloud, fake, tmp_path):
    """`--pick-host gpu` on a recipe whose `runpod.pick @gpu` names RunPod chooses a RunPod
    offer before the run; the pick step then rents it, and the job's commands run there."""
    from helpers import write_recipe

    recipe = write_recipe(tmp_path / "pick.recipe", """
host gpu = placeholder
runpod.pick @gpu gpu=L40
tmux.open @gpu as w
@w > echo "on $RUNPOD_POD_ID"
tmux.close @w
""")
    r = train("recipe", "run", str(recipe), "--no-visual", "--pick-host", "gpu", "--autostop", "0",
              timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pods = [p for p in cloud.list() if p.status != "terminated"]
    assert len(pods) == 1, pods
    assert f"@gpu = runpod {pods[0].id}" in r.stderr and f"on {pods[0].id}" in r.stderr
    assert "L40" in pods[0].gpu_name
    cloud.destroy(pods[0].id)


def test_runpod_steps_take_the_users_stopped_pod_and_control_it(cloud, fake, tmp_path):
    """`runpod.pick @gpu gpu=RTX4090` (a short name; the pod says "RTX 4090") takes the user's
    own stopped pod rather than renting one, and starts it; `runpod.wait`, `.cost` and
    `.stop` act on it: the fake's state says so."""
    from helpers import write_recipe

    mine = cloud.create("RTX4090@community", request(fake, "mine"))
    cloud.wait_ready(mine.id, timeout=30)
    cloud.stop(mine.id)
    recipe = write_recipe(tmp_path / "steps.recipe", """
host gpu = placeholder
runpod.pick @gpu gpu=RTX4090
runpod.wait timeout=1m poll=1s
tmux.open @gpu as w
@w > echo "on $RUNPOD_POD_ID"
tmux.close @w
runpod.cost
runpod.stop
""")
    r = train("recipe", "run", str(recipe), "--no-visual", "--autostop", "0", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(fake.state()["pods"]) == 1  # nothing rented
    assert f"@gpu = runpod {mine.id}" in r.stderr and "your stopped instance" in r.stderr
    assert f"on {mine.id}" in r.stderr and "/h, running, up" in r.stderr
    assert fake.pod_state(mine.id) == "EXITED"
    cloud.destroy(mine.id)


def test_runpod_pick_that_matches_nothing_is_one_line_and_rents_nothing(fake, tmp_path):
    from helpers import write_recipe

    recipe = write_recipe(tmp_path / "none.recipe", "host gpu = placeholder\n"
                                                    "runpod.pick @gpu gpu=B200 num_gpus=9\n")
    r = train("recipe", "run", str(recipe), "--no-visual", timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no runpod offer matches gpu=B200 num_gpus=9" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and fake.state()["pods"] == {}


def test_runpod_pick_rents_as_many_gpus_as_asked(fake, tmp_path):
    from helpers import write_recipe

    recipe = write_recipe(tmp_path / "two.recipe", "host gpu = placeholder\n"
                                                   "runpod.pick @gpu gpu=A40 num_gpus=2\n")
    r = train("recipe", "run", str(recipe), "--no-visual", "--autostop", "0", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    (pid, pod), = fake.state()["pods"].items()
    assert pod["spec"]["gpuCount"] == 2 and "2x A40" in r.stderr, (pod, r.stderr)
    RunPodProvider().destroy(pid)


def test_create_of_a_listed_multi_gpu_offer_rents_what_was_listed(fake):
    """`search --num-gpus 2` lists a 2-GPU offer at twice the price: creating that id rents two
    GPUs, not one at half the price; --num-gpus gives a bare GPU type its count, and a count
    that contradicts the offer's is refused before anything is rented."""
    offers = json.loads(train("runpod", "search", "--gpu", "L40", "--num-gpus", "2", "--json").stdout)
    [two] = offers
    assert two["num_gpus"] == 2 and two["id"] == "2x NVIDIA L40@SECURE", two
    p = train("runpod", "create", two["id"], "--label", "t-two", "--disk", "10")
    assert p.returncode == 0, p.stderr
    [(pid, pod)] = fake.state()["pods"].items()
    assert pod["gpuCount"] == 2 and pod["gpuTypeId"] == "NVIDIA L40"
    listed = json.loads(train("runpod", "list", "--json").stdout)
    assert listed[0]["num_gpus"] == 2 and listed[0]["price_per_hour"] == pytest.approx(two["price_per_hour"])
    assert "2x L40" in p.stdout, p.stdout

    p = train("runpod", "create", "L4", "--num-gpus", "4", "--label", "t-four", "--disk", "10")
    assert p.returncode == 0, p.stderr
    assert sorted(x["gpuCount"] for x in fake.state()["pods"].values()) == [2, 4]

    creates = fake.state()["creates"]
    assert "is 2 GPUs" in one_line(train("runpod", "create", two["id"], "--num-gpus", "1"), 2)
    for bad in ("0", "65", "two", "nan"):
        assert "--num-gpus" in one_line(train("runpod", "create", "L4", "--num-gpus", bad), 2)
    assert fake.state()["creates"] == creates


def test_bad_numbers_are_refused_and_rent_nothing(fake):
    for args in (("create", "L4", "--disk", "nan"), ("create", "L4", "--disk", "1e400"),
                 ("create", "L4", "--disk", "-inf"), ("search", "--max-dph", "inf"),
                 ("search", "--min-gpu-ram", "nan"), ("gpus", "--count", "1e3")):
        flag = next(a for a in args if a.startswith("--"))
        line = one_line(train("runpod", *args), 2)
        assert f"argument {flag}" in line and "train runpod" in line, line
    assert fake.state()["creates"] == 0


def _billing(fake) -> dict:
    from trainsh.cloud.http import request as http

    return http("GET", f"{fake.url}/v2/billing/pods?bucketSize=year&lastN=5", what="fake",
                key=fake.api_key, retries=0)


def test_the_total_since_rented_comes_from_runpods_billing_and_survives_a_restart(cloud, fake):
    pod = cloud.create("8x NVIDIA H200@SECURE", request(fake, "t-dear"))  # $31.92/h: seconds show
    cloud.wait_ready(pod.id, timeout=30)

    def total() -> float:
        [row] = json.loads(train("runpod", "list", "--json").stdout)
        return row["total_cost"] or 0.0

    from helpers import wait_until

    wait_until(lambda: total() >= 0.02, timeout=30, what="a total of 2 cents")
    cloud.stop(pod.id)
    before = total()
    cloud.start(pod.id)
    cloud.wait_ready(pod.id, timeout=30)
    [row] = json.loads(train("runpod", "list", "--json").stdout)
    assert row["cost_so_far"] < before <= row["total_cost"]  # this run starts at 0; the total goes on
    assert "since rented" in train("runpod", "show", pod.id).stdout


def test_a_stopped_pod_bills_its_volume_and_prune_destroys_what_trainsh_rented(cloud, fake):
    """RunPod bills a stopped pod's volume disk at $0.20/GB/month and not its container disk
    (docs.runpod.io pods/pricing): that is what `list` shows for it. `prune` destroys the
    stopped pods trainsh rented that nobody holds: not a pod `ow` kept, not the user's own."""
    made = _gql(fake, 'mutation { podFindAndDeployOnDemand(input: {name: "trainsh-vol", imageName: "x", '
                      'gpuTypeId: "NVIDIA L4", gpuCount: 1, containerDiskInGb: 50, volumeInGb: 73, '
                      'startSsh: true}) { id } }')["data"]["podFindAndDeployOnDemand"]["id"]
    created = train("runpod", "create", "L4", "--disk", "10").stdout.split()[1].rstrip(":")  # trainsh-create-...
    kept = train("runpod", "create", "L4", "--label", "ow-0123abcd").stdout.split()[1].rstrip(":")
    mine = _gql(fake, 'mutation { podFindAndDeployOnDemand(input: {name: "mine", imageName: "x", '
                      'gpuTypeId: "NVIDIA L4", gpuCount: 1, startSsh: true}) { id } }'
                )["data"]["podFindAndDeployOnDemand"]["id"]
    for pod in (made, created, kept, mine):
        cloud.stop(pod)
    rows = {r["id"]: r for r in json.loads(train("runpod", "list", "--json").stdout)}
    assert rows[made]["status"] == "stopped"
    assert rows[made]["billing_per_hour"] == pytest.approx(73 * 0.20 / 730)  # the volume, not the 50 GB
    assert rows[created]["billing_per_hour"] == 0.0  # a container disk only: erased, not billed
    billed = {r["podId"]: r["totalAmount"] for r in _billing(fake)["records"]}
    assert rows[created]["total_cost"] == pytest.approx(billed[created], abs=1e-3) and billed[created] > 0
    assert "$0.020 disk" in next(li for li in train("runpod", "list").stdout.splitlines() if li.startswith(made))

    assert "--yes" in one_line(train("runpod", "prune"), 2)
    p = train("runpod", "prune", "--yes")
    assert p.returncode == 0, p.stderr
    assert f"runpod:{kept}: stopped, held by ow" in p.stdout, p.stdout
    assert set(fake.state()["terminated"]) == {made, created}
    assert set(fake.state()["pods"]) == {kept, mine}


def test_exec_on_a_stopped_pod_starts_it_and_stops_it_again(cloud, fake):
    """The exec started it, so its end stops it; with only a container disk (erased at the stop,
    not billed), the line says nothing of it bills and how to remove it."""
    pod = cloud.create("L4", request(fake, "t-exec"))
    cloud.wait_ready(pod.id, timeout=30)
    cloud.stop(pod.id)
    p = train("exec", "@gpu > echo on $RUNPOD_POD_ID", "--host", f"gpu=runpod:{pod.id}", "--autostop", "0",
              timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"on {pod.id}" in p.stdout
    assert fake.pod_state(pod.id) == "EXITED"
    assert (f"stopped (this exec started it; --keep-hosts keeps it); nothing of it bills now, "
            f"train runpod destroy {pod.id} (or train runpod prune) removes it") in p.stderr, p.stderr


def test_autostop_stops_an_idle_pod_after_train_leaves(fake, tmp_path):
    """RunPod jobs get the autostop watcher too: the pod stops itself with its own key (the
    fake's state says EXITED), not with the user's, once train is gone and nothing runs."""
    from helpers import wait_until, write_recipe

    recipe = write_recipe(tmp_path / "idle.recipe", "host gpu = placeholder\nrunpod.pick @gpu gpu=L40\n"
                                                    "tmux.open @gpu as w\n@w > echo hello\n")
    r = train("recipe", "run", str(recipe), "--no-visual", "--autostop", "3s", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "autostop after 3s" in r.stderr and "not available" not in r.stderr, r.stderr
    (pid, pod), = fake.state()["pods"].items()
    assert pod["desiredStatus"] == "RUNNING"  # the job itself stopped nothing
    wait_until(lambda: fake.pod_state(pid) == "EXITED", timeout=60, what="autostop to stop the pod")
    log = (Path(pod["home"]) / ".cache/trainsh/autostop").glob("*.log")
    assert any("idle for 3s: stopping" in f.read_text() for f in log)
    RunPodProvider().destroy(pid)


def test_a_pods_own_key_acts_on_that_pod_alone(cloud, fake):
    """RUNPOD_API_KEY in a pod is "limited in scope to only the pod" (RunPod's docs): it may
    stop or terminate its own pod, and nothing else; the fake holds to that."""
    from trainsh.cloud import http

    a = cloud.create("L40", request(fake, "a"))
    b = cloud.create("L40", request(fake, "b"))
    key_a = fake.state()["pods"][a.id]["pod_key"]
    as_a = RunPodProvider(api_key=key_a)
    with pytest.raises(ProviderError):
        as_a.list()  # the account's pods: not the pod key's
    for iid, allowed in ((b.id, False), (a.id, True)):
        method, url, body, names = cloud.self_stop(iid)
        assert names == ["RUNPOD_API_KEY"] and method == "POST"
        try:
            reply = http.request(method, url, what="RunPod", key=key_a, body=body, retries=0)
        except ProviderError:
            reply = None
        assert (reply is not None and "errors" not in reply) is allowed, reply
    assert fake.pod_state(a.id) == "EXITED" and fake.pod_state(b.id) == "RUNNING"
    method, url, body, _ = cloud.self_destroy(a.id)
    http.request(method, url, what="RunPod", key=key_a, body=body, retries=0)
    assert fake.pod_state(a.id) == "TERMINATED"
    cloud.destroy(b.id)
