"""Interruptible rentals against both fakes: minimum bids in search, rents on a bid (Vast) and
spot pods (RunPod), changing a bid, and a machine the cloud takes back (POST /_fake/preempt)
shown in plain words by list, show and --json, and by Provider.get() in the shared words."""

from __future__ import annotations

import json

import pytest

from helpers import train, wait_until

from trainsh.cloud.provider import OUTBID, RECLAIMED, STOPPED, NotReady


def _one_line(r, code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def _rented_id(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1].rstrip(":")


def test_vast_search_create_bid_and_outbid(vast):
    r = train("vast", "search", "--interruptible", "--gpu", "RTX_4090", "--num-gpus", "1")
    assert r.returncode == 0, r.stderr
    assert "MIN BID $/H" in r.stdout and "0.175" in r.stdout and "0.350" in r.stdout  # beside on-demand
    offers = json.loads(train("vast", "search", "--interruptible", "--json").stdout)
    assert [o["min_bid"] for o in offers] == sorted(o["min_bid"] for o in offers)

    iid = _rented_id(train("vast", "create", "1002", "--bid", "--disk", "20", "--label", "spot"))
    assert vast.state()["instances"][iid]["bid"] == round(0.175 * 1.1, 4)  # min bid + 10% margin
    other = _rented_id(train("vast", "create", "1001", "--bid", "0.15", "--disk", "20"))
    assert vast.state()["instances"][other]["bid"] == 0.15
    assert train("vast", "bid", other, "0.2").returncode == 0
    assert vast.state()["instances"][other]["bid"] == 0.2

    wait_until(lambda: vast.state()["instances"][iid]["actual_status"] == "running", what="running")
    vast.preempt(iid)
    from trainsh.cloud.vast import VastProvider

    inst = VastProvider().get(iid)
    assert (inst.status, inst.preempted, inst.interruptible) == (STOPPED, OUTBID, True)
    with pytest.raises(NotReady) as e:
        VastProvider().wait_ready(iid, timeout=5, login=False)
    assert e.value.why == "preempted"
    row = next(i for i in json.loads(train("vast", "list", "--json").stdout) if i["id"] == iid)
    assert row["preempted"] == "outbid" and row["status_words"] == "paused: outbid" and row["interruptible"]
    assert "paused: outbid" in train("vast", "list").stdout
    assert "paused: outbid" in train("vast", "show", iid).stdout
    # a higher bid wins again: it resumes
    assert train("vast", "bid", iid, "0.5").returncode == 0
    wait_until(lambda: vast.state()["instances"][iid]["actual_status"] == "running", what="resumed")
    assert VastProvider().get(iid).preempted == ""


@pytest.mark.parametrize("args, code, words", [
    (("create", "1003", "--bid", "-1"), 2, ("-1",)),
    (("create", "1003", "--bid", "nan"), 2, ("nan",)),
    (("create", "1003", "--bid", "200"), 2, ("out of range",)),
    (("bid", "1", "inf"), 2, ("inf",)),
])
def test_vast_bad_bids_rent_nothing(vast, args, code, words):
    _one_line(train("vast", *args), code, *words)
    assert vast.state()["rents"] == 0


def test_vast_bid_on_an_on_demand_instance_is_refused(vast):
    iid = _rented_id(train("vast", "create", "1001", "--disk", "20"))
    _one_line(train("vast", "bid", iid, "0.3"), 1, "on-demand")
    assert vast.state()["instances"][iid]["bid"] is None
    _one_line(train("vast", "bid", "999999", "0.3"), 2, "999999")


def test_runpod_spot_search_create_and_reclaim(runpod_fake):
    fake = runpod_fake
    r = train("runpod", "search", "--spot")
    assert r.returncode == 0 and "MIN BID $/H" in r.stdout, r.stderr
    offers = json.loads(train("runpod", "search", "--spot", "--json").stdout)
    assert offers and all(o["min_bid"] for o in offers)
    offer = next(o for o in offers if o["location"] == "community")
    pod = _rented_id(train("runpod", "create", offer["id"], "--spot", "--bid", "0.5", "--disk", "20"))
    spec = fake.state()["pods"][pod]["spec"]
    assert spec["bidPerGpu"] == 0.5
    from trainsh.cloud.runpod import RunPodProvider

    inst = RunPodProvider().get(pod)
    assert inst.interruptible and inst.bid == 0.5 and inst.preempted == ""
    default = _rented_id(train("runpod", "create", offer["id"], "--spot", "--disk", "20"))
    assert fake.state()["pods"][default]["spec"]["bidPerGpu"] == round(offer["min_bid"] * 1.1, 4)

    wait_until(lambda: fake.state()["pods"][pod]["port"], what="pod up")
    assert fake.preempt(pod)[0] == 200
    inst = RunPodProvider().get(pod)
    assert (inst.status, inst.preempted) == (STOPPED, RECLAIMED)
    row = next(i for i in json.loads(train("runpod", "list", "--json").stdout) if i["id"] == pod)
    assert row["status_words"] == "stopped: reclaimed" and row["preempted"] == "reclaimed"
    assert "stopped: reclaimed" in train("runpod", "show", pod).stdout
    # a user's stop is no reclaim
    assert train("runpod", "stop", default).returncode == 0
    assert RunPodProvider().get(default).preempted == ""


def test_runpod_bad_spot_input_rents_nothing(runpod_fake):
    _one_line(train("runpod", "create", "RTX4090@COMMUNITY", "--bid", "0.5"), 2, "--spot")
    _one_line(train("runpod", "create", "RTX4090@COMMUNITY", "--spot", "--bid", "nan"), 2, "nan")
    assert runpod_fake.state()["creates"] == 0


def test_a_recipe_pick_on_a_bid_rents_the_cheapest_bid_at_its_minimum_plus_the_margin(vast, tmp_path):
    from helpers import write_recipe

    offers = json.loads(train("vast", "search", "--gpu", "RTX_4090", "--interruptible", "--json").stdout)
    cheapest = min(offers, key=lambda o: o["min_bid"])
    r = write_recipe(tmp_path / "bid.recipe", "host gpu = placeholder\n"
                                              "vast.pick @gpu gpu=RTX_4090 interruptible=true\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    (iid, inst), = vast.state()["instances"].items()
    assert inst["bid"] == pytest.approx(cheapest["min_bid"] * 1.10, rel=1e-3)
    assert vast.state()["rents"] == 1
    train("vast", "destroy", iid, "--yes")
