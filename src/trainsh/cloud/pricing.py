"""Money: exchange rates (fetched, cached, or built in), conversion, and costs shown in the
user's currency with USD beside them.

Rates come from a frankfurter-style API (`pricing.rates_url` + `/latest?base=USD`), are cached
on disk with their date and refreshed when a day old. Without a network the cache serves, then
a dated built-in table; every answer says which of the three it is. A bad answer from the
server never replaces good rates.
"""

# Imports inside functions load the HTTP client and tables only when rates are needed (start-up).

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from trainsh.settings import config, paths

DAY = 86400.0

# Approximate USD rates, for when no rates were ever fetched. Dated, and labelled when used.
BUILTIN_DATE = "2025-11-03"
BUILTIN = {
    "USD": 1.0, "EUR": 0.868, "GBP": 0.761, "CNY": 7.12, "JPY": 154.0, "KRW": 1437.0,
    "INR": 88.8, "CAD": 1.405, "AUD": 1.530, "NZD": 1.752, "CHF": 0.806, "HKD": 7.772,
    "SGD": 1.303, "SEK": 9.52, "NOK": 10.14, "DKK": 6.48, "PLN": 3.69, "CZK": 21.1,
    "HUF": 334.0, "RON": 4.41, "ISK": 126.0, "TRY": 42.1, "BRL": 5.37, "MXN": 18.5,
    "ZAR": 17.4, "ILS": 3.26, "THB": 32.4, "IDR": 16650.0, "MYR": 4.19, "PHP": 58.9,
    "BGN": 1.698,
}

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "¥", "JPY": "¥"}


class PricingError(Exception):
    """Bad input (an unknown currency, a bad amount); one line."""


@dataclass
class Rates:
    base: str
    date: str                 # the date the rates are for
    rates: dict[str, float]   # units of each currency per 1 USD
    source: str               # "fetched" | "cache" | "built-in"
    note: str = ""            # why this source, when it is not a fresh fetch

    def label(self) -> str:
        what = {"fetched": f"fetched now, rates of {self.date}",
                "cache": f"cached rates of {self.date}",
                "built-in": f"built-in table of {self.date}, approximate: no rates fetched yet"}[self.source]
        return what + (f"; {self.note}" if self.note else "")

    def rate(self, code: str) -> float:
        code = code.upper()
        if code not in self.rates:
            raise PricingError(f"unknown currency '{code}' (known: {', '.join(sorted(self.rates))})")
        return self.rates[code]

    def convert(self, amount: float, src: str, dst: str) -> float:
        return amount / self.rate(src) * self.rate(dst)


def cache_file():
    return paths.home() / "rates.json"


def _valid(data) -> dict[str, float] | None:
    """The rates of a server's answer, or None when it is not a usable answer."""
    if not isinstance(data, dict) or not isinstance(data.get("rates"), dict):
        return None
    if str(data.get("base", "USD")).upper() != "USD" or not isinstance(data.get("date"), str):
        return None
    rates: dict[str, float] = {"USD": 1.0}
    for k, v in data["rates"].items():
        if not (isinstance(k, str) and len(k) == 3 and k.isalpha()):
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            return None
        rates[k.upper()] = float(v)
    return rates if len(rates) > 1 else None


def _read_cache() -> dict | None:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if _valid(data) is None or not isinstance(data.get("fetched_at"), (int, float)):
        return None
    return data


def fetch(timeout: float = 5.0) -> dict:
    """Ask the rates server; a dict like the cache's, or PricingError saying what went wrong."""
    from trainsh.cloud.http import request
    from trainsh.cloud.provider import ProviderError

    url = str(config.get("pricing.rates_url")).rstrip("/") + "/latest?base=USD"
    try:
        data = request("GET", url, what="the rates server", timeout=timeout, retries=1)
    except ProviderError as e:
        raise PricingError(str(e)) from None
    rates = _valid(data)
    if rates is None:
        raise PricingError("the rates server gave an answer that is not a rates table")
    return {"base": "USD", "date": data["date"], "rates": rates, "fetched_at": time.time()}


def rates(refresh: bool = False, *, offline: bool = False) -> Rates:
    """The best rates at hand: fresh from the cache, else fetched, else the cache however old,
    else the built-in table. `refresh` fetches whatever the cache's age."""
    cached = _read_cache()
    fresh = cached is not None and time.time() - cached["fetched_at"] < DAY
    if cached and fresh and not refresh:
        return Rates("USD", cached["date"], _valid(cached), "cache")
    note = ""
    if not offline:
        try:
            got = fetch()
        except PricingError as e:
            note = str(e)
        else:
            try:
                from trainsh.settings.tables import write_atomic

                paths.ensure(cache_file().parent)
                write_atomic(cache_file(), json.dumps(got, indent=1, sort_keys=True))
            except OSError as e:
                note = f"could not keep them in {cache_file()}: {e.strerror or e}"
            return Rates("USD", got["date"], got["rates"], "fetched", note)
    if cached:
        return Rates("USD", cached["date"], _valid(cached), "cache", note)
    return Rates("USD", BUILTIN_DATE, dict(BUILTIN), "built-in", note)


def currency() -> str:
    return str(config.get("ui.currency")).upper()


def check_currency(code: str, table: Rates | None = None) -> str:
    code = code.strip().upper()
    (table or rates(offline=True)).rate(code)  # raises with the known codes
    return code


def display_table() -> tuple[str, Rates | None]:
    """The display currency and, unless it is USD, the rates to show it in (looked up once per
    command, not once per price)."""
    code = currency()
    return code, (None if code == "USD" else rates())


def money(usd: float, code: str | None = None, table: Rates | None = None, digits: int = 2) -> str:
    """`$1.23`, or in another display currency `8.76 CNY ($1.23)`."""
    code = (code or currency()).upper()
    plain = f"${usd:,.{digits}f}"
    if code == "USD":
        return plain
    try:
        value = (table or rates()).convert(usd, "USD", code)
    except PricingError:
        return plain
    return f"{value:,.{digits}f} {code} ({plain})"


@dataclass
class ColabPlan:
    name: str
    usd: float       # price of the plan (or of the unit pack)
    units: float     # compute units it brings
    monthly: bool

    @property
    def usd_per_unit(self) -> float:
        return self.usd / self.units


def colab_plans() -> list[ColabPlan]:
    out = []
    for name, entry in config.get("pricing.colab_plans").items():
        if isinstance(entry, str):  # set as text on the command line: "9.99/100"
            price, _, units = entry.partition("/")
            entry = {"usd": price, "units": units}
        try:
            out.append(ColabPlan(name, float(entry["usd"]), float(entry["units"]),
                                 bool(entry.get("monthly", False))))
        except (KeyError, TypeError, ValueError):
            raise PricingError(f"pricing.colab_plans.{name} must look like {{usd = 9.99, units = 100}}") from None
        if out[-1].units <= 0:
            raise PricingError(f"pricing.colab_plans.{name}: units must be more than 0")
    return out


def colab_units() -> dict[str, float]:
    out = {}
    for gpu, units in config.get("pricing.colab_units").items():
        try:
            out[gpu] = float(units)
        except (TypeError, ValueError):
            raise PricingError(f"pricing.colab_units.{gpu} must be a number of units per hour") from None
    return out
