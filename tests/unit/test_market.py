"""cloud/market.py without a network: offers ranked per GPU hour, clouds chosen by their keys,
a cloud that fails its look left out with a note; and `clouds=`'s names."""

from __future__ import annotations

import pytest

from trainsh.cloud import market
from trainsh.cloud.provider import AuthError, Offer, ProviderError, Unavailable
from trainsh.recipe.model import cloud_names


def offer(cloud: str, oid: str, n: int, dph: float) -> Offer:
    return Offer(cloud, oid, "RTX 4090", n, 24.0, dph)


class Cloud:
    def __init__(self, name: str, offers=(), key: str | None = "k", fails: Exception | None = None):
        self.name, self.offers, self.fails, self._key = name, list(offers), fails, key
        self.asked = []

    def key_problem(self):
        return None if self._key else f"{self.name}: no API key"

    def search(self, **kw):
        self.asked.append(kw)
        if self.fails:
            raise self.fails
        return self.offers


@pytest.fixture
def clouds(monkeypatch):
    made = {}
    monkeypatch.setattr(market, "cloud_provider", lambda name: made[name])
    return made


def test_offers_rank_per_gpu_hour_then_per_machine_hour():
    two, four, cheap_two = offer("a", "2", 2, 0.80), offer("b", "4", 4, 1.44), offer("a", "c", 2, 0.72)
    # 4 GPUs at $1.44/h and 2 at $0.72/h are both $0.36/GPU/h: the cheaper machine first
    assert [o.id for o in market.ranked([two, four, cheap_two])] == ["c", "4", "2"]
    assert market.row(four) == {"cloud": "b", "id": "4", "gpu": "RTX 4090", "num_gpus": 4,
                                "$/h": 1.44, "$/GPU/h": 0.36}


def test_every_cloud_with_a_key_is_compared_and_the_rest_noted(clouds):
    clouds["a"] = Cloud("a", [offer("a", "1", 2, 0.80)])
    clouds["b"] = Cloud("b", key=None)
    clouds["c"] = Cloud("c", [offer("c", "9", 2, 0.60)])
    found = market.compare(None, ("a", "b", "c"), market.Want(gpu="RTX_4090", num_gpus=2, max_dph=1.0))
    assert [o.id for o in found.offers] == ["9", "1"] and list(found.clouds) == ["a", "c"]
    assert found.notes == ["b left out: b: no API key"]
    assert clouds["a"].asked == [{"gpu": "RTX_4090", "num_gpus": 2, "min_gpu_ram_gb": None,
                                  "max_price": 1.0, "limit": 10}]
    assert {k: o.id for k, o in found.cheapest().items()} == {"c": "9", "a": "1"}


def test_a_named_cloud_without_a_key_is_an_error_and_one_that_fails_is_a_note(clouds):
    clouds["a"] = Cloud("a", [offer("a", "1", 1, 0.3)])
    clouds["b"] = Cloud("b", key=None)
    with pytest.raises(ProviderError, match="b: no API key"):
        market.compare(("a", "b"), ("a", "b"), market.Want())
    clouds["b"] = Cloud("b", fails=Unavailable("b: the API is down"))
    found = market.compare(("a", "b"), ("a", "b"), market.Want())
    assert [o.id for o in found.offers] == ["1"] and found.notes == ["b left out: b: the API is down"]
    clouds["a"] = Cloud("a", fails=AuthError("a: the key was refused"))
    with pytest.raises(ProviderError, match="a left out: a: the key was refused; b left out"):
        market.compare(None, ("a", "b"), market.Want())


def test_want_words_and_cloud_names():
    assert market.Want(gpu="RTX_4090", num_gpus=2, max_dph=0.8).words() == "gpu=RTX_4090 num_gpus=2 max_dph=0.8"
    assert cloud_names("vast,runpod") == ("vast", "runpod") and cloud_names("runpod") == ("runpod",)
    for bad, why in (("aws", "unknown cloud 'aws'"), ("vast,vast", "named twice"), ("", "comma-separated"),
                     ("vast,", "comma-separated")):
        with pytest.raises(ValueError, match=why):
            cloud_names(bad)
