"""The Vast fake checks a create as Vast documents it (create_instance.yaml's
x-input-validation and enums): what Vast refuses, the fake refuses, so a create trainsh sends
that Vast would refuse fails a test here. Plain calls to the fake's API."""

from __future__ import annotations

import pytest

from trainsh.cloud.provider import ProviderError


def _put(vast, offer: str, **body):
    return vast.api("PUT", f"asks/{offer}/", {"client_id": "me", "image": "fake/image", "disk": 10, **body})


@pytest.mark.parametrize("field,value", [
    ("label", "x" * 257), ("image", "i" * 1025), ("onstart", "o" * 4097), ("args_str", "a" * 4097),
    ("runtype", "bogus"), ("runtype", ""), ("disk", 7), ("env", {"K": "v" * 300}),
    ("env", "-e K=" + "v" * 300), ("env", ["-e", "K=V"]),
])
def test_what_vast_refuses_is_refused_and_rents_nothing(vast, field, value):
    with pytest.raises(ProviderError) as e:
        _put(vast, "1001", **{field: value})
    assert "400" in str(e.value) or "invalid" in str(e.value).lower(), e.value
    assert vast.state()["rents"] == 0


def test_env_as_docker_flags_and_as_the_clis_object_and_the_clis_runtypes(vast):
    a = _put(vast, "1001", env="-e HF_HOME=/data -e MODE='two words' -p 8000:8000",
             runtype="ssh_direc ssh_proxy")["new_contract"]
    b = _put(vast, "1002", env={"HF_HOME": "/data", "-p 8000:8000": "1"},
             runtype="jupyter_direc ssh_direc ssh_proxy")["new_contract"]
    for iid, want in ((a, {"HF_HOME": "/data", "MODE": "two words"}), (b, {"HF_HOME": "/data"})):
        env = dict(vast.api("GET", f"instances/{iid}/")["instances"]["extra_env"])
        assert env == want, env
    assert vast.state()["rents"] == 2
