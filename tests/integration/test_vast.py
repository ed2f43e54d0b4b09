"""`train vast ...` against the Vast.ai fake (real HTTP, real sshd machines), and the fake itself
against the official `vastai` CLI when that is installed."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from helpers import train, wait_until


def _list(fake) -> list[dict]:
    r = train("vast", "list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _running(fake, iid: str) -> dict:
    return wait_until(lambda: next((i for i in _list(fake) if i["id"] == iid and i["status"] == "running"), None),
                      what=f"instance {iid} running")


def _create(fake, offer="1002", label="t") -> str:
    r = train("vast", "create", offer, "--label", label, "--disk", "20")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1].rstrip(":")


def _one_line_error(r, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_search_filters_cheapest_first_and_json(vast):
    r = train("vast", "search", "--gpu", "RTX_4090", "--num-gpus", "2", "--min-gpu-ram", "24",
              "--max-dph", "0.8", "--limit", "20")
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0] for line in r.stdout.splitlines()[1:] if line[:1].isdigit()]
    assert rows == ["1003"]  # the only 2+ GPU RTX 4090 under $0.80/h
    offers = json.loads(train("vast", "search", "--limit", "4", "--json").stdout)
    assert len(offers) == 4
    prices = [o["price_per_hour"] for o in offers]
    assert prices == sorted(prices) and offers[0]["id"] == "1001"
    assert all(set(o) >= {"id", "gpu_name", "num_gpus", "gpu_ram_gb", "price_per_hour"} for o in offers)
    big = json.loads(train("vast", "search", "--min-gpu-ram", "48", "--json").stdout)
    assert big and all(o["gpu_ram_gb"] >= 48 for o in big)


def test_search_menu_and_machine_show_one_price_and_gpu_memory_as_the_card_is_named(vast):
    """Offer 1002: an RTX 4090 with gpu_ram 24564 (MiB) at dph_total $0.35, storage_cost
    $0.10/GB/month. Rented with config vast.disk (50 GB) it bills 0.35 + 0.10 x 50 / 720 =
    $0.357/h: search, the pick menu and the machine say that price, and "24 GB" for its GPU."""
    import io

    from trainsh.cloud.vast import VastProvider
    from trainsh.runtime import clouds

    r = train("vast", "search", "--gpu", "RTX_4090", "--num-gpus", "1", "--max-dph", "0.4")
    assert r.returncode == 0, r.stderr
    row = next(ln.split() for ln in r.stdout.splitlines() if ln.startswith("1002 "))
    assert row[1:6] == ["1x", "RTX", "4090", "24", "GB"] and row[6] == "0.357", r.stdout
    assert ("$/H: the machine with the 50 GB disk a create asks for (config vast.disk, --disk), "
            "which bills while stopped too; offer 1002: $0.350 + disk $0.007") in r.stdout, r.stdout
    r = train("vast", "search", "--gpu", "RTX_4090", "--max-dph", "0.355")  # $0.350 + disk is more
    assert r.returncode == 1 and "no Vast.ai offer matches" in r.stderr, r.stdout
    offers = json.loads(train("vast", "search", "--gpu", "RTX_4090", "--max-dph", "0.4", "--json").stdout)
    assert offers[0]["price_per_hour_with_disk"] == 0.356944 and offers[0]["rent_disk_gb"] == 50.0

    menu = io.StringIO()
    opts = {"gpu": "RTX_4090", "num_gpus": 1, "min_gpu_ram": None, "max_dph": 0.4, "limit": 5}
    with pytest.raises(LookupError):
        clouds.choose(VastProvider(), opts, out=menu, ask=lambda _: "q")
    line = next(ln for ln in menu.getvalue().splitlines() if " 1002 " in ln)
    assert "$0.36/h" in line and "24 GB/GPU" in line, menu.getvalue()

    r = train("vast", "create", "1002", "--label", "priced")
    assert r.returncode == 0, r.stderr
    iid = r.stdout.split()[1].rstrip(":")
    try:
        shown = train("vast", "show", iid).stdout
        assert "1x RTX 4090 (24 GB)" in shown and "$0.357/h" in shown, shown
    finally:
        assert train("vast", "destroy", iid, "--yes").returncode == 0


def _raw(vast, method: str, path: str, body=None, key: str | None = "") -> tuple[int, object]:
    """Status and JSON body of one call to the fake, errors included."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key or vast.key}"
    req = urllib.request.Request(f"{vast.url}/api/v0/{path}", method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_fake_answers_as_vast_documents_it(vast):
    """Vast's API reference (vast-ai/docs api-reference/openapi/yaml) and the official CLI's
    source (vast-ai/vast-cli), not our client, are what these answers follow."""
    def names(q: dict) -> set[str]:
        status, reply = _raw(vast, "POST", "bundles/", q)
        assert status == 200
        return {o["gpu_name"] for o in reply["offers"]}

    # gpu_name matches exactly: the CLI sends "RTX 4090" for gpu_name=RTX_4090 (parse_query turns
    # "_" into " "), and folds no case, so neither "rtx 4090" nor "RTX_4090" is a name
    assert names({"gpu_name": {"eq": "RTX 4090"}}) == {"RTX 4090"}
    assert names({"gpu_name": {"eq": "rtx 4090"}}) == set() == names({"gpu_name": {"eq": "RTX_4090"}})
    assert names({"gpu_name": {"in": ["RTX 3090", "RTX A6000"]}}) == {"RTX 3090", "RTX A6000"}
    # the names, as `GET gpu_names/unique/` gives them to the CLI (which sends no key)
    status, reply = _raw(vast, "GET", "gpu_names/unique/", key=None)
    assert status == 200 and {"RTX 4090", "RTX 3090", "H100 SXM"} <= set(reply["gpu_names"])
    # an id that is not on the account: show answers 200 {"instances": null} (the CLI prints
    # "not found" for it), manage (start/stop/label) 404 no_such_instance, destroy 404 not_found
    assert _raw(vast, "GET", "instances/4242/?owner=me") == (200, {"instances": None})
    for state in ("running", "stopped"):
        status, reply = _raw(vast, "PUT", "instances/4242/", {"state": state})
        assert status == 404 and reply["success"] is False and reply["error"] == "no_such_instance"
    status, reply = _raw(vast, "DELETE", "instances/4242/", {})
    assert (status, reply["success"], reply["error"]) == (404, False, "not_found")
    status, reply = _raw(vast, "PUT", "instances/reboot/4242/", {})  # reboot_instance.yaml
    assert (status, reply["success"], reply["error"]) == (400, False, "invalid_args")
    # a wrong or missing key, per endpoint: 401 mostly; search 404 "Unauthorized - invalid or
    # missing API key" (search_offers.yaml); charges 403 with no Authorization header, 404 with
    # a key that matches no user (show_charges.yaml)
    status, reply = _raw(vast, "GET", "instances/", key="wrong")
    assert (status, reply["error"]) == (401, "auth_error")
    assert _raw(vast, "GET", "instances/", key=None)[0] == 401
    assert _raw(vast, "PUT", "asks/1002/", {"image": "x"}, key="wrong")[0] == 401
    for key in ("wrong", None):
        status, reply = _raw(vast, "POST", "bundles/", {}, key=key)
        assert (status, reply["msg"]) == (404, "Invalid user key")
    day = urllib.parse.quote(json.dumps({"day": {"gte": 0, "lte": 2e9}}))
    assert _raw(vast, "GET", f"charges/?select_filters={day}", key=None)[0] == 403
    assert _raw(vast, "GET", f"charges/?select_filters={day}", key="wrong")[0] == 404


@pytest.mark.parametrize("q", [{"gpu_ram_gb": {"gte": 1e9}}, {"gpu_ram": {"atleast": 24000}},
                               {"num_gpus": 1}, {"num_gpus": {}}, {"type": "spot"}, ["num_gpus"]])
def test_a_search_the_docs_do_not_allow_is_400(vast, q):
    """search_offers.yaml: each filter is {operator: value} with the operators of its table,
    on its fields (and the CLI's `offers_fields`), `type` one of its enum (and the CLI's
    "on-demand"); else "400 Bad request - invalid query parameters", never every offer."""
    status, reply = _raw(vast, "POST", "bundles/", q)
    assert status == 400 and reply["error"] == "invalid_request" and reply["msg"], reply


def test_trainshs_query_is_what_filters_the_offers(vast, monkeypatch):
    """The client takes the server's answer as it comes, so the offers prove the query: each
    filter narrows them on the fake, by its field and unit (GPU RAM in MB, $/h)."""
    from trainsh.cloud.vast import VastProvider

    cloud = VastProvider()
    sent = []
    call = cloud._call
    monkeypatch.setattr(cloud, "_call", lambda *a, **k: sent.append(a) or call(*a, **k))
    every = [o.id for o in cloud.search(limit=50)]
    assert every == ["1001", "1002", "1007", "1003", "1004", "1006", "1005"]  # cheapest first
    assert [o.id for o in cloud.search(min_gpu_ram_gb=48)] == ["1007", "1004", "1005"]
    assert [o.id for o in cloud.search(min_gpu_ram_gb=81.6)] == ["1004"]  # 81559 MB is 81.559 GB
    assert [o.id for o in cloud.search(max_price=0.45)] == ["1001", "1002", "1007"]
    assert [o.id for o in cloud.search(num_gpus=2)] == ["1003", "1006", "1005"]
    assert [o.id for o in cloud.search(gpu="RTX 4090", num_gpus=2, max_price=1.0)] == ["1003"]
    assert [o.id for o in cloud.search(limit=2)] == ["1001", "1002"]
    assert all(a[:2] == ("POST", "bundles/") for a in sent)


def test_search_sends_vast_own_gpu_names(vast):
    """Any case and `_` for a space: the client sends Vast's spelling, from the names it knows
    or, for another GPU, from the API's list."""
    from trainsh.cloud.vast import VastProvider

    cloud = VastProvider()
    assert cloud.gpu_name("rtx_4090") == "RTX 4090" and cloud.gpu_name("h100 sxm") == "H100 SXM"
    assert {o.id for o in cloud.search(gpu="rtx_4090")} == {"1002", "1003", "1006"}
    assert [o.id for o in cloud.search(gpu="Rtx_3090")] == ["1001"]  # not in gpus.py: the API's list
    assert cloud.search(gpu="no_such_gpu") == []


def test_a_machine_from_rent_to_destroy(vast):
    iid = _create(vast, label="by-hand")
    row = _running(vast, iid)
    assert row["label"] == "by-hand" and row["gpu_name"] == "RTX 4090" and row["price_per_hour"] > 0.35
    assert row["ssh"]["user"] == "root" and row["host"] == f"vast:{iid}"

    table = train("vast", "list").stdout
    line = next(li for li in table.splitlines() if li.startswith(iid))
    assert "running" in line and "1x RTX 4090" in line and f"ssh -p {row['ssh']['port']} root@127.0.0.1" in line
    shown = train("vast", "show", iid)
    assert shown.returncode == 0 and f"vast:{iid}" in shown.stdout and "by-hand" in shown.stdout
    raw = json.loads(train("vast", "show", iid, "--json").stdout)
    assert raw["raw"]["id"] == int(iid) and raw["raw"]["gpu_ram"] == 24564  # MB, as the API has it

    r = train("vast", "ssh", iid, "echo", "on", "$CONTAINER_ID")
    assert r.returncode == 0 and r.stdout.strip() == f"on {iid}", r.stderr
    assert r.stderr == ""  # a new machine's host key is accepted quietly
    r = train("vast", "ssh", iid, "ls", "-a", "-d", "/")  # options go to the command, not to train
    assert r.returncode == 0 and r.stdout.strip() == "/", r.stderr

    assert train("vast", "stop", iid).returncode == 0
    assert next(i for i in _list(vast) if i["id"] == iid)["status"] == "stopped"
    _one_line_error(train("vast", "ssh", iid, "true"), 1, "stopped", f"train vast start {iid}")
    assert vast.state()["instances"][iid]["sshd_pid"] is None

    assert train("vast", "start", iid).returncode == 0
    _running(vast, iid)
    assert train("vast", "ssh", iid, "true").returncode == 0
    assert train("vast", "reboot", iid).returncode == 0
    _running(vast, iid)
    assert train("vast", "stop", iid).returncode == 0
    r = train("vast", "start", iid, "--wait")  # back when a login works
    assert r.returncode == 0 and f"vast {iid}: running: ssh -p" in r.stdout, r.stderr
    assert train("vast", "ssh", iid, "true").returncode == 0

    _one_line_error(train("vast", "destroy", iid), 2, "--yes")  # no terminal, no --yes: refused
    assert iid in [i["id"] for i in _list(vast)]
    r = train("vast", "destroy", iid, "--yes")
    assert r.returncode == 0, r.stderr
    assert _list(vast) == [] and int(iid) in vast.state()["destroyed"]
    assert "no Vast.ai instances" in train("vast", "list").stdout


def test_destroy_asks_on_a_terminal(vast):
    import pty

    from helpers import TRAIN

    iid = _create(vast)

    def ask(answer: str) -> tuple[int, str]:
        master, slave = pty.openpty()
        proc = subprocess.Popen([*TRAIN, "vast", "destroy", iid], stdin=slave, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        os.close(slave)
        os.write(master, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
        os.close(master)
        return proc.returncode, out

    code, out = ask("n")
    assert code == 1 and "not destroyed" in out and iid in [i["id"] for i in _list(vast)]
    code, out = ask("y")
    assert code == 0 and "destroyed" in out and _list(vast) == []


def test_errors_are_one_line_and_rent_nothing(vast, monkeypatch):
    _one_line_error(train("vast", "show", "4242"), 2, "no instance 4242")
    _one_line_error(train("vast", "stop", "4242"), 2, "no instance 4242")
    _one_line_error(train("vast", "search", "--gpu", "NO_SUCH_GPU"), 1, "no Vast.ai offer matches")
    _one_line_error(train("vast", "create", "31337"), 1, "offer 31337")
    vast.control(no_capacity=True)
    _one_line_error(train("vast", "create", "1002"), 1, "no longer available")
    vast.control(no_capacity=False)

    monkeypatch.setenv("VAST_API_KEY", "wrong-key-5555")
    r = train("vast", "list")
    _one_line_error(r, 1, "refused", "train secrets set VAST_API_KEY")
    assert "wrong-key-5555" not in r.stderr
    r = train("vast", "search")  # search refuses a key with 404 (search_offers.yaml)
    _one_line_error(r, 1, "the API key was refused (404", "train secrets set VAST_API_KEY")
    assert "wrong-key-5555" not in r.stderr
    monkeypatch.delenv("VAST_API_KEY")
    _one_line_error(train("vast", "list"), 1, "no API key", "train secrets set VAST_API_KEY")
    monkeypatch.setenv("VAST_API_KEY", vast.key)

    vast.control(down=True)
    t = time.monotonic()
    _one_line_error(train("vast", "list"), 1, "503")
    _one_line_error(train("vast", "create", "1002"), 1)
    assert time.monotonic() - t < 30
    vast.control(down=False)
    from sshd import free_port

    monkeypatch.setenv("VAST_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    _one_line_error(train("vast", "list"), 1, "cannot reach")
    assert time.monotonic() - t < 45
    assert vast.state()["rents"] == 0


def test_attach_key_uploads_the_ssh_key_identity_or_a_path(vast, tmp_path):
    before = vast.api("GET", "ssh/")
    r = train("vast", "attach-key")  # ssh.key (the fixture's identity) is there already: no double
    assert r.returncode == 0 and "id_vast.pub" in r.stdout, r.stderr
    assert vast.api("GET", "ssh/") == before

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "other-key", "-f", str(other)], check=True)
    (tmp_path / "other.pub").unlink()  # a private key alone: its public half is derived
    iid = _create(vast)
    _running(vast, iid)
    r = train("vast", "attach-key", str(other), "--instance", iid)
    assert r.returncode == 0, r.stderr
    assert len(vast.api("GET", "ssh/")) == len(before) + 1
    assert "other-key" in train("vast", "keys").stdout
    port = _list(vast)[0]["ssh"]["port"]
    login = subprocess.run(["ssh", "-i", str(other), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-p", str(port), "root@127.0.0.1", "echo", "yes"],
                           capture_output=True, text=True, timeout=30)
    assert login.stdout.strip() == "yes", login.stderr
    _one_line_error(train("vast", "attach-key", str(tmp_path / "nope")), 2, "no such key")


def test_keys_on_an_account_that_has_none(vast):
    """Vast answers GET ssh/ with 404 when the account has no key (its API reference): that is an
    empty list, and the first key goes up all the same."""
    for k in vast.api("GET", "ssh/"):
        vast.api("DELETE", f"ssh/{k['id']}/")
    assert _raw(vast, "GET", "ssh/")[0] == 404
    r = train("vast", "keys")
    assert r.returncode == 0 and "no ssh keys" in r.stdout, r.stderr
    r = train("vast", "attach-key")
    assert r.returncode == 0, r.stderr
    assert [k["key"] for k in vast.api("GET", "ssh/")] == [vast.identity.with_suffix(".pub").read_text().strip()]


def test_proxy_endpoint_when_there_is_no_direct_port(vast):
    vast.control(no_direct=True)
    iid = _create(vast)
    row = _running(vast, iid)
    assert row["ssh"]["port"] == vast.state()["instances"][iid]["proxy_port"]
    r = train("vast", "ssh", iid, "echo", "via-proxy")
    assert r.stdout.strip() == "via-proxy", r.stderr


def test_an_instance_key_reaches_only_its_own_instance(vast):
    """CONTAINER_API_KEY "can only start, stop, or destroy that specific instance" (Vast's docs,
    api-reference/hello-world.mdx): the fake lets it read, stop and destroy its own, nothing else."""
    from trainsh.cloud.provider import AuthError

    a, b = _create(vast, label="a"), _create(vast, offer="1001", label="b")
    _running(vast, a)
    r = train("vast", "ssh", a, "echo", "$CONTAINER_API_KEY")
    key = r.stdout.strip()
    assert len(key) >= 32 and key != vast.key
    assert vast.api("GET", f"instances/{a}/?owner=me", key=key)["instances"]["id"] == int(a)
    for method, path, body in (("GET", "instances/?owner=me", None), ("GET", f"instances/{b}/", None),
                               ("PUT", f"instances/{b}/", {"state": "stopped"}),
                               ("DELETE", f"instances/{b}/", {}), ("PUT", f"instances/{a}/", {"label": "x"}),
                               ("PUT", "asks/1001/", {"image": "x"})):
        with pytest.raises(AuthError):
            vast.api(method, path, body, key=key)
    vast.api("PUT", f"instances/{a}/", {"state": "stopped"}, key=key)
    assert {i["id"]: i["status"] for i in _list(vast)}[a] == "stopped"
    vast.api("DELETE", f"instances/{a}/", {}, key=key)
    assert [i["id"] for i in _list(vast)] == [b] and vast.state()["destroyed"] == [int(a)]


# The official CLI, pinned in ./dev, which installs it into a venv of its own (never imported).
VASTAI = Path(__file__).resolve().parents[2] / ".venv-clients" / "vastai" / "bin" / "vastai"


def _vastai() -> str:
    assert VASTAI.exists(), f"the official vastai CLI is not in {VASTAI.parent} (./dev test installs it)"
    return str(VASTAI)


def test_the_official_cli_works_against_the_fake(vast, tmp_path):
    env = {**os.environ, "VAST_URL": vast.url, "VASTAI_NO_UPDATE_CHECK": "1",
           **{f"XDG_{k}_HOME": str(tmp_path / "xdg" / k.lower()) for k in ("CONFIG", "CACHE", "DATA", "STATE")}}

    def cli(*args: str) -> str:
        r = subprocess.run([_vastai(), "--api-key", vast.key, *args], capture_output=True, text=True,
                           env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert "Traceback" not in r.stderr, r.stderr  # the CLI exits 0 on errors: read what it says
        return r.stdout

    offers = json.loads(cli("search", "offers", "gpu_name=RTX_4090 num_gpus>=2", "--raw"))
    assert {o["id"] for o in offers} == {1003, 1006}
    created = cli("create", "instance", "1001", "--image", "pytorch/pytorch", "--disk", "20",
                  "--label", "official", "--raw")
    iid = json.loads(created)["new_contract"]
    # the reply carries the instance's own key, the one its container gets (hello-world.mdx)
    assert json.loads(created)["instance_api_key"] == vast.state()["instances"][str(iid)]["container_api_key"]
    wait_until(lambda: vast.state()["instances"][str(iid)]["actual_status"] == "running", what="running")
    rows = json.loads(cli("show", "instances", "--raw"))
    assert [r["id"] for r in rows] == [iid] and rows[0]["label"] == "official"
    shown = json.loads(cli("show", "instance", str(iid), "--raw"))
    assert shown["actual_status"] == "running" and shown["gpu_name"] == "RTX 3090"
    port = vast.state()["instances"][str(iid)]["direct_port"]
    assert cli("ssh-url", str(iid)).strip() == f"ssh://root@127.0.0.1:{port}"
    cli("stop", "instance", str(iid))
    assert vast.state()["instances"][str(iid)]["intended_status"] == "stopped"
    cli("start", "instance", str(iid))
    wait_until(lambda: vast.state()["instances"][str(iid)]["actual_status"] == "running", what="running")
    cli("destroy", "instance", str(iid), "-y")
    assert vast.state()["instances"] == {} and iid in vast.state()["destroyed"]
    # interruptible: `--type bid` offers carry min_bid, `--bid_price` rents on a bid, `change bid` sets it
    bids = json.loads(cli("search", "offers", "gpu_name=RTX_4090 num_gpus=1", "--type", "bid", "--raw"))
    assert [o["min_bid"] for o in bids] == [0.175]
    spot = json.loads(cli("create", "instance", "1002", "--image", "pytorch/pytorch", "--disk", "20",
                          "--bid_price", "0.2", "--raw"))["new_contract"]
    assert vast.state()["instances"][str(spot)]["bid"] == 0.2
    assert "bid price changed" in cli("change", "bid", str(spot), "--price", "0.25")
    assert vast.state()["instances"][str(spot)]["bid"] == 0.25
    assert json.loads(cli("show", "instance", str(spot), "--raw"))["is_bid"] is True
    cli("destroy", "instance", str(spot), "-y")
    # and trainsh reads what the official CLI rented the same way
    assert train("vast", "list", "--json").stdout.strip() == "[]"


def test_fake_machines_run_onstart_and_start_tmux_on_an_interactive_login(vast):
    iid = vast.rent(onstart="echo started $CONTAINER_ID > ~/onstart.txt; sleep 300")
    home = vast.state()["instances"][iid]["home"]
    wait_until(lambda: os.path.exists(f"{home}/onstart.txt"), what="onstart ran")
    assert open(f"{home}/onstart.txt").read().strip() == f"started {iid}"
    port = vast.state()["instances"][iid]["direct_port"]
    tmux_sock = f"{os.path.dirname(home)}/tmux/tmux-0/default"
    login = subprocess.Popen(["ssh", "-tt", "-i", str(vast.identity), "-o", "BatchMode=yes",
                              "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                              "-p", str(port), "root@127.0.0.1"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "ssh_tmux" in subprocess.run(["tmux", "-S", tmux_sock, "ls"], capture_output=True,
                                                        text=True).stdout, what="tmux on login")
    finally:
        login.kill()
        login.wait()
    from fakes.vast import _marked

    marker = vast.state()["instances"][iid]["marker"]
    assert _marked(marker)  # the onstart's sleep runs on the machine
    assert train("vast", "stop", iid).returncode == 0
    assert _marked(marker) == []  # and ends with it


@pytest.mark.parametrize("args", [
    ("create", "1001", "--disk", "nan"), ("create", "1001", "--disk", "1e400"),
    ("create", "1001", "--disk", "inf"), ("create", "1001", "--disk", "0"),
    ("create", "1001", "--disk", "1e9"), ("search", "--num-gpus", "0"),
    ("search", "--num-gpus", "nan"), ("search", "--limit", "1e400"), ("search", "--max-dph", "nan"),
    ("search", "--max-dph", "-1"), ("search", "--min-gpu-ram", "inf"),
], ids=" ".join)
def test_non_finite_and_out_of_range_numbers_are_one_line_and_rent_nothing(vast, args):
    flag = next(a for a in args if a.startswith("--"))
    r = train("vast", *args)
    _one_line_error(r, 2, f"argument {flag}:", args[-1])
    assert r.stdout == "" and vast.state()["rents"] == 0


def test_pricing_convert_takes_finite_amounts_only():
    for amount in ("nan", "inf", "1e400"):
        _one_line_error(train("pricing", "convert", amount, "USD", "EUR"), 2, "amount", amount)


def _charges(vast) -> dict[str, float]:
    """The fake's own charges per instance since its rent (GET charges/, as Vast documents it)."""
    now = int(time.time())
    q = json.dumps({"day": {"gte": now - 86400, "lte": now + 86400}})
    from urllib.parse import quote

    reply = vast.api("GET", f"charges/?select_filters={quote(q)}")
    return {r["source"].split("-", 1)[1]: r["amount"] for r in reply["results"]}


def test_list_shows_a_stopped_machines_storage_and_a_total_that_survives_a_restart(vast):
    """A stopped machine bills its disk, not the GPU: its PER HOUR is the disk's storage
    (storage_total_cost). TOTAL is what it cost since it was rented, from Vast's charges, and
    does not start again at 0 with each start as THIS RUN does."""
    iid = _create(vast, offer="1005", label="dear")  # $19.20/h: seconds of it show in cents
    _running(vast, iid)
    wait_until(lambda: (next(i for i in _list(vast) if i["id"] == iid)["total_cost"] or 0) >= 0.02,
               timeout=30, what="a total of 2 cents")
    assert train("vast", "stop", iid).returncode == 0
    row = next(i for i in _list(vast) if i["id"] == iid)
    disk = 20 * 0.1 / 720  # --disk 20 at the offer's storage_cost, $/GB/month over 720 hours
    assert row["status"] == "stopped" and row["storage_per_hour"] == pytest.approx(disk, rel=1e-3)
    assert row["billing_per_hour"] == row["storage_per_hour"] and row["price_per_hour"] > 19
    assert row["total_cost"] >= 0.02 and row["total_cost"] == pytest.approx(_charges(vast)[iid], abs=0.002)
    table = train("vast", "list").stdout
    assert table.splitlines()[0].split() == ["ID", "STATUS", "GPU", "PER", "HOUR", "UPTIME", "THIS", "RUN",
                                             "TOTAL", "SSH"]
    line = next(li for li in table.splitlines() if li.startswith(iid))
    assert "$0.003 disk" in line and "$19." not in line, line
    stopped_total = row["total_cost"]

    assert train("vast", "start", iid, "--wait").returncode == 0
    row = next(i for i in _list(vast) if i["id"] == iid)
    assert row["cost_so_far"] < stopped_total <= row["total_cost"]  # this run is new; the total goes on
    shown = train("vast", "show", iid).stdout
    assert "since rented" in shown and "while stopped (its disk)" in shown, shown
    assert train("vast", "destroy", iid, "--yes").returncode == 0


def _pty(args: list[str], answer: str) -> tuple[int, str]:
    import pty

    from helpers import TRAIN

    master, slave = pty.openpty()
    proc = subprocess.Popen([*TRAIN, *args], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    os.close(slave)
    os.write(master, answer.encode() + b"\n")
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    return proc.returncode, out


def test_prune_destroys_only_stopped_machines_trainsh_rented_that_nobody_holds(tmp_path, vast):
    from helpers import write_recipe
    from test_ownership import _interrupted_job_holding

    held = _interrupted_job_holding(tmp_path, vast)  # a resumable job's machine: the job's still
    vast.api("PUT", f"instances/{held}/", {"state": "stopped"})
    r = write_recipe(tmp_path / "f.recipe", "host gpu = placeholder\nvast.pick @gpu gpu=RTX_3090\n"
                                            "tmux.open @gpu as w\n@w > exit 3\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 1, p.stderr
    failed = next(i for i, x in vast.state()["instances"].items() if x["label"].startswith("trainsh-")
                  and i != held)
    # the failed job's end names the bill its stopped machine leaves, and how to end it
    assert f"/h): stopped (the job failed); its disk still bills $0.007/h: train vast destroy {failed} " \
           "(or train vast prune) ends that" in p.stderr, p.stderr  # 50 GB (config vast.disk) at $0.1/GB/month
    created = _create(vast, offer="1007", label="by-create")  # in the rents ledger
    train("vast", "stop", created)
    running = _create(vast, offer="1003", label="trainsh-still-running")  # (1001: the failed job's)
    mine = vast.rent("1004", label="mine")  # rented outside trainsh
    vast.api("PUT", f"instances/{mine}/", {"state": "stopped"})

    before = set(vast.state()["instances"])
    r = train("vast", "prune")  # no terminal, no --yes: refused, nothing destroyed
    _one_line_error(r, 2, "--yes", f"vast:{failed}", f"vast:{created}")
    code, out = _pty(["vast", "prune"], "n")
    assert code == 1 and "nothing destroyed" in out, out
    assert f"vast:{failed} (1x RTX 3090" in out and "its disk bills $0.00" in out, out
    assert f"vast:{held}: stopped, held by job" in out and f"vast:{mine}" not in out, out
    assert set(vast.state()["instances"]) == before

    code, out = _pty(["vast", "prune"], "y")
    assert code == 0 and f"vast {failed}: destroyed" in out and f"vast {created}: destroyed" in out, out
    assert set(vast.state()["destroyed"]) == {int(failed), int(created)}
    assert set(vast.state()["instances"]) == {held, running, mine}
    r = train("vast", "prune", "--yes")
    assert r.returncode == 0 and "nothing to prune" in r.stdout and "1 held" in r.stdout, r.stdout


def test_a_non_finite_disk_in_the_config_is_refused_too(vast):
    from trainsh.settings import paths

    _one_line_error(train("config", "set", "vast.disk", "nan"), 2, "vast.disk", "finite")
    _one_line_error(train("config", "set", "vast.disk", "inf"), 2, "vast.disk", "finite")
    text = paths.config_file().read_text()
    paths.config_file().write_text(text + "\n[vast]\ndisk = nan\n")  # TOML has nan: written by hand
    _one_line_error(train("vast", "create", "1001"), 2, "vast.disk", "finite")
    assert vast.state()["rents"] == 0


def test_the_fake_keeps_each_endpoints_documented_rate_limit(vast):
    """x-rate-limit of each reference page (vast-ai/docs api-reference/openapi/yaml), "a minimum
    interval between requests for a given endpoint and identity", 429 without Retry-After
    (api-reference/rate-limits-and-errors.mdx): on with the `rate_limits` fault."""
    import urllib.error
    import urllib.request

    vast.control(rate_limits=True)

    def call(method, path, body=None):
        req = urllib.request.Request(f"{vast.url}/api/v0/{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {vast.key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    assert call("GET", "instances/?owner=me")[0] == 200
    status, body, headers = call("GET", "instances/?owner=me")  # 1.0/s (show_instances.yaml)
    assert (status, body) == (429, b"API requests too frequent: endpoint threshold=1.0")
    assert headers.get("Retry-After") is None
    assert call("PUT", "asks/1001/", {"image": "x", "label": "a"})[0] == 200
    status, body, _ = call("PUT", "asks/1002/", {"image": "x", "label": "b"})  # 4.5/s (create_instance.yaml)
    assert (status, json.loads(body)) == (429, {"detail": "API requests too frequent endpoint threshold=4.5"})
    assert vast.state()["rents"] == 1  # refused before anything was done
    searches = [call("POST", "bundles/", {})[0] for _ in range(11)]  # 10 a minute (search_offers.yaml)
    assert searches == [200] * 10 + [429]
    vast.control(rate_limits=False)
    assert call("GET", "instances/?owner=me")[0] == 200 == call("GET", "instances/?owner=me")[0]


def test_trainsh_backs_off_a_rate_limit_within_its_deadline_and_never_rents_twice(vast):
    from trainsh.cloud.provider import CreateRequest, LostAnswer
    from trainsh.cloud.vast import VastProvider

    iid = vast.rent("1001")
    vast.control(rate_limits=True)
    p = VastProvider(timeout=10)
    t = time.monotonic()
    for _ in range(4):  # show_instances 1.0/s and show_instance 2.0/s: each call waits its turn
        assert [i.id for i in p.list()] == [iid] and p.get(iid).id == iid
    assert time.monotonic() - t < 10

    # a create answered 429 did nothing; trainsh cannot tell, so it looks for the label (twice)
    # and, finding none, says the rent may have happened: it never rents again on its own
    vast.api("PUT", "asks/1007/", {"client_id": "me", "image": "fake/image", "label": "other"})
    t = time.monotonic()
    with pytest.raises(LostAnswer) as e:
        p.create("1002", CreateRequest(image="fake/image", label="once", disk_gb=10))
    assert "429" in str(e.value) and "once" in str(e.value) and time.monotonic() - t < 10
    st = vast.state()
    assert st["rents"] == 2 and "once" not in {m["label"] for m in st["machines"].values()}
