"""`train pricing`: rates fetched from a local rates server, cached, and the fallbacks when it
is slow, failing, talking nonsense or gone; currency, conversion and the Colab table."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import train

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "rates.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def rates_server(monkeypatch, isolated):
    """The fake, run on its own as a person would run it, with pricing.rates_url pointing at it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    assert "rates fake" in proc.stdout.readline()
    url = f"http://127.0.0.1:{port}"
    assert train("config", "set", "pricing.rates_url", url + "/v1").returncode == 0

    class Server:
        base = url

        def mode(self, m: str) -> None:
            urllib.request.urlopen(urllib.request.Request(url + "/_fake/mode", data=m.encode()), timeout=5)

        def hits(self) -> int:
            return json.load(urllib.request.urlopen(url + "/_fake/hits", timeout=5))["hits"]

        def stop(self) -> None:
            proc.terminate()
            proc.wait(10)

    s = Server()
    yield s
    s.stop()


def cache(isolated) -> Path:
    return isolated / "trainsh" / "rates.json"


def age_cache(isolated, days: float) -> None:
    data = json.loads(cache(isolated).read_text())
    data["fetched_at"] -= days * 86400
    cache(isolated).write_text(json.dumps(data))


def test_rates_fetched_then_cached_then_refreshed(rates_server, isolated):
    r = train("pricing", "rates")
    assert r.returncode == 0, r.stderr
    assert "fetched now, rates of 2026-11-24" in r.stdout
    assert "CNY" in r.stdout and "7.0000" in r.stdout
    assert json.loads(cache(isolated).read_text())["rates"]["CNY"] == 7.0
    assert rates_server.hits() == 1

    r = train("pricing", "rates")  # within a day: the cache, no request
    assert "cached rates of 2026-11-24" in r.stdout
    assert rates_server.hits() == 1

    r = train("pricing", "rates", "--refresh")
    assert "fetched now" in r.stdout and rates_server.hits() == 2

    age_cache(isolated, 1.5)  # a day old: fetched again on its own
    assert "fetched now" in train("pricing", "rates").stdout
    assert rates_server.hits() == 3


@pytest.mark.parametrize("mode", ["error", "garbage", "wrong"])
def test_bad_answers_keep_the_last_good_rates(rates_server, isolated, mode):
    assert train("pricing", "rates").returncode == 0
    before = cache(isolated).read_text()
    rates_server.mode(mode)
    r = train("pricing", "rates", "--refresh")
    assert r.returncode == 1, r.stderr  # the refresh failed: said, and the table still shown
    assert "cached rates of 2026-11-24" in r.stdout
    assert cache(isolated).read_text() == before
    why = {"error": "500", "garbage": "not JSON", "wrong": "not a rates table"}[mode]
    assert why in r.stdout
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("train: the refresh failed") and why in line
    assert "showing the cached rates of 2026-11-24 instead" in line


def test_offline_without_cache_uses_the_dated_builtin_table(rates_server, isolated):
    rates_server.stop()
    r = train("pricing", "rates")
    assert r.returncode == 0, r.stderr
    assert "built-in table of 20" in r.stdout and "approximate" in r.stdout
    assert "cannot reach" in r.stdout
    assert not cache(isolated).exists()


def test_a_slow_server_does_not_hang(rates_server, isolated):
    rates_server.mode("slow")
    t = time.monotonic()
    r = train("pricing", "rates", timeout=60)
    assert r.returncode == 0 and "built-in table" in r.stdout
    assert time.monotonic() - t < 25  # a timeout of a few seconds per try, not the server's 30 s


def test_convert_and_currency(rates_server, isolated):
    r = train("pricing", "convert", "10", "usd", "cny")
    assert r.returncode == 0 and "10.00 USD = 70.00 CNY" in r.stdout
    r = train("pricing", "convert", "9", "EUR", "USD")
    assert "9.00 EUR = 10.00 USD" in r.stdout

    r = train("pricing", "convert", "10", "USD", "XYZ")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "unknown currency 'XYZ'" in r.stderr and "CNY" in r.stderr and "Traceback" not in r.stderr
    r = train("pricing", "convert", "ten", "USD", "CNY")
    assert r.returncode == 2 and "not an amount" in r.stderr

    assert "display currency: USD" in train("pricing", "currency").stdout
    r = train("pricing", "currency", "--set", "cny")
    assert r.returncode == 0 and "CNY" in r.stdout
    assert train("config", "get", "ui.currency").stdout.strip() == "CNY"
    assert "1 USD = 7.0000 CNY" in train("pricing", "currency").stdout

    config = (isolated / "trainsh" / "config.toml").read_text()
    r = train("pricing", "currency", "--set", "ABC")
    assert r.returncode == 2 and "unknown currency 'ABC'" in r.stderr
    assert (isolated / "trainsh" / "config.toml").read_text() == config  # nothing written


def test_colab_table_in_the_display_currency(rates_server, isolated):
    r = train("pricing", "colab")
    assert r.returncode == 0, r.stderr
    assert "pay-as-you-go" in r.stdout and "pro+" in r.stdout
    t4 = next(line for line in r.stdout.splitlines() if line.strip().startswith("T4"))
    assert "$0.20" in t4  # 1.96 units/h x 9.99/100 USD

    train("pricing", "currency", "--set", "CNY")
    t4 = next(line for line in train("pricing", "colab").stdout.splitlines() if line.strip().startswith("T4"))
    assert "1.37 CNY ($0.20)" in t4

    # the table is the user's to edit
    assert train("config", "set", "pricing.colab_units.H100", "20").returncode == 0
    assert any(line.strip().startswith("H100") for line in train("pricing", "colab").stdout.splitlines())
    assert train("config", "set", "pricing.colab_plans.pro", "lots").returncode == 0
    r = train("pricing", "colab")
    assert r.returncode == 2 and "pricing.colab_plans.pro" in r.stderr and "Traceback" not in r.stderr


def test_bad_input(isolated):
    for args in (["pricing", "convert", "10", "USD"], ["pricing", "nope"], ["pricing", "rates", "--x"]):
        r = train(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, args


def test_vast_costs_in_the_display_currency(rates_server, vast, isolated):
    """`train pricing vast`, `train vast list/show` against the Vast fake: every cost in CNY with
    USD beside it, totals for running and stopped machines, the cheapest offer of each GPU."""
    running = vast.rent(offer="1002", label="run")   # RTX 4090, $0.35/h
    # (not 1001: a rented ask leaves the market, and the cheapest RTX 3090 is asserted below)
    stopped = vast.rent(offer="1007", label="stop")  # RTX A6000, $0.45/h
    assert train("vast", "stop", stopped).returncode == 0
    assert train("pricing", "currency", "--set", "CNY").returncode == 0
    from trainsh.cloud.vast import VastProvider

    price = VastProvider().get(running).price_per_hour  # the offer's, with its storage
    shown = f"{price * 7:,.2f} CNY (${price:,.2f})/h"

    r = train("pricing", "vast")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith(running))
    assert "running" in line and shown in line
    line = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith(stopped))
    assert line.split()[1] == "stopped" and "/h (disk)" in line and "$0.45" not in line  # its disk, not the GPU
    assert f"running: {shown}" in r.stdout and "stopped: 1, their disks bill" in r.stdout
    assert "train vast prune" in r.stdout
    cheapest = r.stdout.split("cheapest offer of each GPU kind")[1]
    assert "RTX 3090" in cheapest and "CNY ($0.2" in cheapest
    assert "RTX 4090               2.38 CNY ($0.34)/h  (offer 1003)" in cheapest  # per GPU: 0.68 for 2

    r = train("vast", "list")
    assert r.returncode == 0 and f"{price * 7:,.3f} CNY (${price:,.3f})" in r.stdout
    r = train("vast", "show", running)
    assert f"{price * 7:,.3f} CNY (${price:,.3f})/h" in r.stdout


def test_runpod_costs_in_the_display_currency(rates_server, runpod_fake, isolated):
    from trainsh.cloud.provider import CreateRequest
    from trainsh.cloud.runpod import RunPodProvider

    cloud = RunPodProvider()
    pod = cloud.create("L40", CreateRequest(image="runpod/pytorch", disk_gb=20, label="cost",
                                            public_key=runpod_fake.public_key))
    cloud.wait_ready(pod.id, timeout=30)
    price = cloud.get(pod.id).price_per_hour
    # (the RunPod fixture wrote its own config.toml: point it at the rates server again)
    assert train("config", "set", "pricing.rates_url", rates_server.base + "/v1").returncode == 0
    assert train("pricing", "currency", "--set", "EUR").returncode == 0
    shown = f"{price * 0.9:,.2f} EUR (${price:,.2f})/h"
    r = train("pricing", "runpod")
    assert r.returncode == 0, r.stderr
    assert pod.id in r.stdout and shown in r.stdout
    assert "cheapest offer of each GPU kind" in r.stdout
    r = train("runpod", "list")
    assert r.returncode == 0 and f"{price * 0.9:,.3f} EUR (${price:,.3f})" in r.stdout
    cloud.destroy(pod.id)
