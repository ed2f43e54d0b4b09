"""How Vast.ai's instance and offer fields map onto the shared records (no network)."""

from __future__ import annotations

import pytest

from trainsh.cloud import provider as pv
from trainsh.cloud.vast import instance, offer, ssh_endpoint, state


@pytest.mark.parametrize("actual,intended,cur,want", [
    (None, "running", "running", pv.STARTING),          # being provisioned
    ("loading", "running", "running", pv.STARTING),
    ("running", "running", "running", pv.RUNNING),
    ("running", "stopped", "stopped", pv.STOPPING),     # asked to stop, not yet stopped
    ("exited", "stopped", "stopped", pv.STOPPED),
    ("stopped", "stopped", "stopped", pv.STOPPED),
    ("exited", "running", "running", pv.STARTING),      # a start on its way
    ("exited", "running", "stopped", pv.STOPPED),
    ("rebooting", "running", "running", pv.STARTING),
    ("offline", "running", "running", pv.UNKNOWN),
    ("running", "running", "deleted", pv.GONE),
])
def test_states(actual, intended, cur, want):
    assert state({"actual_status": actual, "intended_status": intended, "cur_state": cur}) == want


def test_ssh_prefers_the_direct_port_then_the_proxy():
    raw = {"public_ipaddr": "1.2.3.4", "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40123"}]},
           "ssh_host": "ssh5.vast.ai", "ssh_port": 12345}
    assert ssh_endpoint(raw) == pv.SshEndpoint("root", "1.2.3.4", 40123)
    assert ssh_endpoint({**raw, "ports": {}}) == pv.SshEndpoint("root", "ssh5.vast.ai", 12345)
    assert ssh_endpoint({**raw, "public_ipaddr": ""}) == pv.SshEndpoint("root", "ssh5.vast.ai", 12345)
    assert ssh_endpoint({"ports": None}) is None


def test_units_mb_to_gb_and_uptime():
    o = offer({"id": 7, "gpu_name": "RTX 4090", "num_gpus": 2, "gpu_ram": 24564, "dph_total": 0.7,
               "reliability2": 0.99, "geolocation": "Sweden, SE", "disk_space": 100})
    assert (o.id, o.gpu_ram_gb, o.price_per_hour, o.reliability, o.location) == ("7", 24.564, 0.7, 0.99, "Sweden, SE")
    i = instance({"id": 9, "actual_status": "running", "intended_status": "running", "cur_state": "running",
                  "dph_total": 3.6, "uptime_mins": 10.0, "start_date": 1.0, "label": None, "num_gpus": 1})
    assert i.id == "9" and i.host_spec == "vast:9" and i.label == ""
    assert 599 < i.uptime() < 602 and abs(i.cost_so_far() - 0.6) < 0.01
    stopped = instance({"id": 9, "actual_status": "exited", "intended_status": "stopped", "dph_total": 3.6})
    assert stopped.uptime() == 0 and stopped.cost_so_far() == 0
