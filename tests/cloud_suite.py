"""What every GPU cloud provider must do, run against each provider's fake.

A provider joins by adding a harness to HARNESSES: a context manager that starts its fake and
yields a `Harness` (the provider pointed at the fake, a way to set faults, the rent count).
tests/integration/test_provider_suite.py runs every test here once per harness.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from trainsh.cloud.provider import (GONE, RUNNING, STARTING, STOPPED, AuthError, CreateRequest, Instance,
                                    NoCapacity, NotFound, Provider, Unavailable)


@dataclass
class Harness:
    name: str
    provider: Provider
    with_key: Callable[[str], Provider]       # the same provider with another API key
    fault: Callable[..., None]                # no_capacity=, fail_after_create=, down=
    rents: Callable[[], int]                  # machines rented so far, as the fake counts them
    identity: str                             # private key the fake's machines accept
    gpu: str                                  # a GPU name with several offers in the market
    image: str = "pytorch/pytorch:latest"


@contextlib.contextmanager
def vast_harness(tmp_path):
    from fakes.vast import FakeVast

    from trainsh.cloud.vast import VastProvider

    fake = FakeVast(start_delay=0.3)
    try:
        identity = tmp_path / "id_suite"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(identity)], check=True)
        fake.api("POST", "ssh/", {"ssh_key": (tmp_path / "id_suite.pub").read_text()})
        yield Harness(
            name="vast", provider=VastProvider(key=fake.key, url=fake.url),
            with_key=lambda key: VastProvider(key=key, url=fake.url),
            fault=lambda **kw: fake.control(**kw), rents=lambda: fake.state()["rents"],
            identity=str(identity), gpu="RTX_4090")
    finally:
        survivors = fake.stop()
        assert not survivors, f"sshd left running: {survivors}"


@contextlib.contextmanager
def runpod_harness(tmp_path):
    from fakes.runpod import serving

    from trainsh.cloud.runpod import RunPodProvider

    survivors: list[int] = []
    with serving() as fake:
        identity = tmp_path / "id_suite"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(identity)], check=True)
        # the account's key: a pod made with startSsh and no PUBLIC_KEY of its own gets it
        RunPodProvider(api_key=fake.api_key, base_url=fake.url).add_key((tmp_path / "id_suite.pub").read_text())
        try:
            yield Harness(
                name="runpod", provider=RunPodProvider(api_key=fake.api_key, base_url=fake.url),
                with_key=lambda key: RunPodProvider(api_key=key, base_url=fake.url),
                fault=lambda **kw: fake.set_faults(**kw), rents=lambda: fake.state()["creates"],
                identity=str(identity), gpu="RTX_4090",
                image="runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04")
        finally:  # the sshds running now must all be gone once the fake stops
            survivors = [pod.proc.pid for pod in list(fake.pods.values()) if pod.proc]
    assert not any(_alive(p) for p in survivors), f"sshd left running: {survivors}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


HARNESSES = {"vast": vast_harness, "runpod": runpod_harness}


# ---- helpers ----------------------------------------------------------------------------------

def wait_for(h: Harness, iid: str, status: str, timeout: float = 20) -> Instance:
    deadline = time.monotonic() + timeout
    while True:
        inst = h.provider.get(iid)
        if inst.status == status:
            return inst
        assert time.monotonic() < deadline, f"instance {iid} stayed {inst.status}, not {status}"
        time.sleep(0.1)


def ssh_run(h: Harness, inst: Instance, command: str = "echo login-ok") -> subprocess.CompletedProcess:
    """A real login through trainsh's ssh layer (its own known_hosts, accept-new)."""
    from trainsh.remote.sshspec import ssh_argv

    spec = inst.ssh_spec(h.identity)
    assert spec is not None, f"instance {inst.id} has no ssh endpoint"
    return subprocess.run(ssh_argv(spec, command) + [], capture_output=True, text=True, timeout=30)


def rent(h: Harness, label: str = "suite") -> Instance:
    cheapest = h.provider.search(gpu=h.gpu, limit=5)[0]
    return h.provider.create(cheapest.id, CreateRequest(image=h.image, disk_gb=20, label=label))


# ---- the suite --------------------------------------------------------------------------------

def check_search_sorted_and_filtered(h: Harness) -> None:
    p = h.provider
    offers = p.search(gpu=h.gpu, min_gpu_ram_gb=20, max_price=5, limit=10)
    assert len(offers) >= 2
    assert [o.price_per_hour for o in offers] == sorted(o.price_per_hour for o in offers)
    want = h.gpu.replace("_", " ").lower()
    assert all(o.gpu_name.lower() == want and o.gpu_ram_gb >= 20 and o.price_per_hour <= 5 for o in offers)
    assert all(o.num_gpus >= 2 for o in p.search(num_gpus=2))
    assert all(o.gpu_ram_gb >= 40 for o in p.search(min_gpu_ram_gb=40))
    everything = p.search(limit=100)
    assert len(everything) > len(offers) and everything[0].price_per_hour == min(o.price_per_hour for o in everything)
    assert len(p.search(limit=1)) == 1
    assert p.search(gpu="NO_SUCH_GPU") == []
    assert p.search(max_price=0.0001) == []


def check_lifecycle(h: Harness) -> None:
    p = h.provider
    inst = rent(h, "suite-life")
    assert inst.status in (STARTING, RUNNING) and inst.label == "suite-life"
    inst = wait_for(h, inst.id, RUNNING)
    assert inst.price_per_hour > 0 and inst.gpu_name and inst.num_gpus >= 1 and inst.ssh
    r = ssh_run(h, inst)
    assert r.returncode == 0 and "login-ok" in r.stdout, r.stderr
    assert inst.id in [i.id for i in p.list()]
    assert p.get(inst.id).label == "suite-life"
    assert [i.id for i in p.find_by_label("suite-life")] == [inst.id]

    p.stop(inst.id)
    wait_for(h, inst.id, STOPPED)
    r = ssh_run(h, inst)
    assert r.returncode != 0, "the machine still answers ssh after stop"

    p.start(inst.id)
    inst = wait_for(h, inst.id, RUNNING)
    r = ssh_run(h, inst)
    assert r.returncode == 0 and "login-ok" in r.stdout, r.stderr

    p.reboot(inst.id)
    inst = wait_for(h, inst.id, RUNNING)
    r = ssh_run(h, inst)
    assert r.returncode == 0 and "login-ok" in r.stdout, r.stderr

    p.destroy(inst.id)
    try:
        assert p.get(inst.id).status == GONE
    except NotFound:
        pass
    assert inst.id not in [i.id for i in p.list()]
    r = ssh_run(h, inst)
    assert r.returncode != 0, "the machine still answers ssh after destroy"


def check_not_found(h: Harness) -> None:
    for verb in (h.provider.get, h.provider.start, h.provider.stop, h.provider.destroy):
        try:
            verb("999999")
        except NotFound as e:
            assert "999999" in str(e)
        else:
            raise AssertionError(f"{verb.__name__} of an unknown id did not raise NotFound")


def check_wrong_key(h: Harness) -> None:
    wrong = h.with_key("not-the-key-0123")
    for call in (wrong.list, lambda: wrong.search(limit=1)):
        try:
            call()
        except AuthError as e:
            assert "not-the-key-0123" not in str(e) and "\n" not in str(e)
        else:
            raise AssertionError("a wrong key was accepted")


def check_no_capacity(h: Harness) -> None:
    h.fault(no_capacity=True)
    offer = h.provider.search(gpu=h.gpu, limit=1)[0]
    try:
        h.provider.create(offer.id, CreateRequest(image=h.image, label="suite-nocap"))
    except NoCapacity as e:
        assert offer.id in str(e)
    else:
        raise AssertionError("create succeeded without capacity")
    assert h.rents() == 0 and h.provider.list() == []


def check_create_error_after_creating_rents_once(h: Harness) -> None:
    h.fault(fail_after_create=1)
    inst = rent(h, "suite-once")
    assert h.rents() == 1
    assert [i.id for i in h.provider.list()] == [inst.id]
    assert inst.label == "suite-once"


def check_api_down(h: Harness) -> None:
    h.fault(down=True)
    t = time.monotonic()
    for call in (h.provider.list, lambda: h.provider.get("1"), lambda: h.provider.search(limit=1),
                 lambda: h.provider.create("1", CreateRequest(image=h.image, label="suite-down"))):
        try:
            call()
        except Unavailable as e:
            assert "\n" not in str(e)
        else:
            raise AssertionError("a call succeeded while the API is down")
    assert time.monotonic() - t < 60, "giving up on a down API took too long"
    h.fault(down=False)
    assert h.rents() == 0 and h.provider.list() == []


CHECKS = {name[len("check_"):]: fn for name, fn in dict(globals()).items() if name.startswith("check_")}


def check_slow_start(h: Harness) -> None:
    """A machine says it is starting (and takes no login) until it runs."""
    h.fault(start_delay=3)
    t = time.monotonic()  # before the rent: the machine's 3 s begin after this, however slow the rent
    inst = rent(h, "suite-slow")
    seen = h.provider.get(inst.id)
    if time.monotonic() - t < 3:  # asked inside the 3 s (always, unless the machine is swamped)
        assert seen.status == STARTING, seen
    inst = wait_for(h, inst.id, RUNNING)
    assert time.monotonic() - t > 2.5
    r = ssh_run(h, inst)
    assert r.returncode == 0 and "login-ok" in r.stdout, r.stderr


CHECKS["slow_start"] = check_slow_start


def check_login_gap(h: Harness) -> None:
    """A machine says it runs (with its ssh port) before its sshd and keys are ready, as a real
    container does (the fakes' ssh_delay); a wait with a login gets through that gap, and a
    login refused in it is a status to wait through, never a failure."""
    h.fault(ssh_delay=4)
    inst = wait_for(h, rent(h, "suite-gap").id, RUNNING)
    assert inst.ssh is not None
    assert ssh_run(h, inst).returncode != 0, "the gap was missed: a login worked at once"
    said: list[str] = []
    ready = h.provider.wait_ready(inst.id, 30, login=True, key=h.identity, say=said.append, poll=(0.2, 1.5, 1.0))
    assert ready.status == RUNNING and ready.ssh is not None
    assert said and said[-1] == "running, ssh not answering yet", said
    assert not any("fail" in s or "denied" in s.lower() for s in said), said
    r = ssh_run(h, ready)
    assert r.returncode == 0 and "login-ok" in r.stdout, r.stderr


CHECKS["login_gap"] = check_login_gap
