"""Rents in flight: a rent whose answer is held, lost or damaged after the cloud made the
machine, and a signal that arrives while it is held. Whatever happens, the machines the fake
has left are exactly the ones trainsh named as left: `train CLOUD create` and `ow` end what the
cloud made, an interrupted recipe keeps it (resume goes on there) and says what bills, and a
lost answer whose machine turns up is the answer. Against both clouds' fakes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from helpers import TRAIN, signalled, train, write_recipe

OW = [sys.executable, "-m", "trainsh.owstart"]
CLOUDS = ["vast", "runpod"]
OFFER = {"vast": "1002", "runpod": "RTX4090"}


@pytest.fixture(params=CLOUDS)
def cloud(request):
    """(name, fake) for each cloud."""
    fake = request.getfixturevalue("vast" if request.param == "vast" else "runpod_fake")
    return request.param, fake


def _named(text: str, name: str) -> set[str]:
    """The ids of machines trainsh names as `NAME ID` in its output."""
    return set(re.findall(rf"\b{name} ([0-9a-z]*[0-9][0-9a-z]*)\b", text))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_create_cut_short_by_a_signal_ends_what_the_cloud_made(cloud, sig):
    name, fake = cloud
    fake.control(slow_create=30)
    p = signalled([*TRAIN, name, "create", OFFER[name]], sig, lambda: fake.state()["creating"] >= 1)
    assert p.returncode == 128 + sig, p.stderr
    assert "Traceback" not in p.stderr
    (made,) = fake.state()["machines"]  # the cloud did make one
    assert not fake.live(), fake.state()["machines"]  # ... and it is gone again
    assert f"{name} {made} was rented as the create was cut short: destroyed it" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("train: interrupted")


@pytest.mark.parametrize("garble", ["truncate", "badjson", "500", "drop"])
def test_a_lost_or_damaged_answer_names_the_machine_the_cloud_made(cloud, garble):
    name, fake = cloud
    fake.control(garble_create=garble, list_lag=2)  # and the list lags the create
    p = train(name, "create", OFFER[name], timeout=120)
    assert p.returncode == 0, p.stderr
    live = fake.live()
    assert len(live) == 1, fake.state()["machines"]
    (made,) = live
    assert f"{name} {made}" in p.stdout  # named as what was rented
    assert "Traceback" not in p.stderr


def test_a_lost_answer_then_failing_calls_still_finds_the_machine(vast):
    vast.control(garble_create="drop", down_after_create=4)
    p = train("vast", "create", "1002", timeout=120)
    assert p.returncode == 0, p.stderr
    (made,) = vast.live()
    assert f"vast {made}" in p.stdout and vast.state()["rents"] == 1


PICK = {"vast": "host gpu = placeholder\nvast.pick @gpu gpu=RTX_4090\ntmux.open @gpu as w\n"
                "@w > echo on the machine\n",
        "runpod": "host gpu = placeholder\nrunpod.pick @gpu gpu=RTX4090\ntmux.open @gpu as w\n"
                  "@w > echo on the machine\n"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_pick_cut_short_keeps_the_machine_names_it_and_resume_uses_it(cloud, tmp_path, sig):
    name, fake = cloud
    r = write_recipe(tmp_path / "p.recipe", PICK[name])
    fake.control(slow_create=30)
    p = signalled([*TRAIN, "recipe", "run", str(r), "--no-visual", "--autostop", "0"], sig,
                  lambda: fake.state()["creating"] >= 1)
    (made,) = fake.state()["machines"]
    assert set(fake.live()) == {made}  # kept: an interrupted job's work goes on
    if sig != signal.SIGKILL:
        assert p.returncode == 130, p.stderr
        assert "Traceback" not in p.stderr
        said = [ln for ln in p.stderr.splitlines() if "billing" in ln]
        assert _named("\n".join(said), name) == {made}, p.stderr
    status = train("recipe", "status")
    assert f"{name} {made}" in status.stdout, status.stdout  # named after a kill -9 too
    fake.control(slow_create=0)
    p = train("recipe", "resume", "--no-visual", timeout=120)
    assert p.returncode == 0, p.stderr
    assert set(fake.live()) == {made} and len(fake.state()["machines"]) == 1  # no second rent
    assert "on the machine" in p.stdout + p.stderr


def test_ow_exec_cut_short_while_renting_leaves_nothing(cloud, tmp_path):
    name, fake = cloud
    fake.control(slow_create=30)
    argv = [*OW, "exec", "--provider", name, "--gpu", "RTX4090", "--no-sync", "true"]
    p = signalled(argv, signal.SIGINT, lambda: fake.state()["creating"] >= 1)
    assert p.returncode == 130, p.stderr
    assert len(fake.state()["machines"]) == 1 and not fake.live(), fake.state()["machines"]
    assert "Traceback" not in p.stderr


def test_a_create_killed_in_flight_is_named_by_list(cloud):
    name, fake = cloud
    fake.control(slow_create=30)
    p = signalled([*TRAIN, name, "create", OFFER[name]], signal.SIGKILL, lambda: fake.state()["creating"] >= 1)
    assert p.returncode == -signal.SIGKILL
    (made,) = fake.state()["machines"]
    fake.control(slow_create=0)
    listed = train(name, "list")
    assert listed.returncode == 0, listed.stderr
    named = [ln for ln in listed.stdout.splitlines() if "was rented by a train" in ln]
    assert len(named) == 1 and f"train {name} destroy {made}" in named[0], listed.stdout


def test_the_next_ow_ends_what_a_killed_ow_rented(cloud, tmp_path):
    name, fake = cloud
    fake.control(slow_create=30)
    argv = [*OW, "exec", "--provider", name, "--gpu", "RTX4090", "--no-sync", "true"]
    p = signalled(argv, signal.SIGKILL, lambda: fake.state()["creating"] >= 1)
    assert p.returncode == -signal.SIGKILL
    (orphan,) = fake.live()
    fake.control(slow_create=0)
    if name == "vast":  # the orphan holds the one 1x RTX 4090 ask: a rented ask is off the market
        argv[argv.index("RTX4090")] = "A6000"
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert f"terminated {name}:{orphan}, left running by an ow that was killed" in r.stderr
    assert not fake.live() and len(fake.state()["machines"]) == 2
