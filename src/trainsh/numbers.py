"""The one parser of numeric command-line values, durations and cloud ids, for `train` and `ow` alike:
argparse `type=` functions that take only finite numbers in a range, so `--disk nan`, `--disk
1e400` or `--num-gpus 0` is one line naming the flag (exit 2) before anything is asked or rented.

Numbers and ids are ASCII: Python's str.isdigit(), int() and float() also take other scripts'
digits (`int("١٢")` is 12, `"²".isdigit()` is true), which no cloud or port understands.
`digits()` is the check every `.isdigit()` on user input goes through; `vast_id()` and
`pod_id()` are each cloud's id, for the CLI's arguments and for the providers' own last check
alike (cloud/vast.py, cloud/runpod.py).

Imports nothing but argparse, math and re: the parsers are built at every start, and the host
kinds' spec checks (trainsh/kinds) read durations and ids from here.
"""

from __future__ import annotations

import argparse
import math
import re


def _bad(text: str, why: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text!r} {why}")  # (repr: a newline in it stays one line)


def digits(text: str) -> bool:
    """Only ASCII digits, at least one: a port, a job id, a Vast id, a menu's answer."""
    return text.isascii() and text.isdigit()


def vast_id(text: str, what: str = "instance") -> str:
    """A Vast.ai instance (or offer) id: ASCII digits, nothing around them. ValueError otherwise."""
    if not digits(text) or len(text) > 19:
        shows = "train vast search" if what == "offer" else "train vast list"
        raise ValueError(f"{text!r} is not {'an' if what[0] in 'aeiou' else 'a'} {what} id "
                         f"(a number, as `{shows}` shows)")
    return text


def pod_id(text: str) -> str:
    """A RunPod pod id: ASCII letters, digits, - and _. ValueError otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text or ""):  # (compiled when first used)
        raise ValueError(f"{text!r} is not a pod id (letters and digits, like 8988868d61e0c4)")
    return text


def _argument(check, name: str, *more):
    def parse(text: str) -> str:
        try:
            return check(text, *more)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = name
    return parse


def count(low: int = 1, high: int = 64):
    """A whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            if not text.isascii():
                raise ValueError
            n = int(text.strip())
        except ValueError:
            raise _bad(text, "is not a whole number") from None
        if not low <= n <= high:
            raise _bad(text, f"is out of range: a whole number at least {low} and at most {high}")
        return n

    parse.__name__ = "count"
    return parse


def amount(high: float, low: float = 0.0, *, above: bool = True):
    """A finite number up to `high`, and above `low` (or from `low` when not `above`)."""

    def parse(text: str) -> float:
        try:
            if not text.isascii():
                raise ValueError
            n = float(text.strip())
        except ValueError:
            raise _bad(text, "is not a number") from None
        if not math.isfinite(n) or n > high or n < low or (above and n == low):
            word = "more than" if above else "at least"
            raise _bad(text, f"is out of range: a finite number {word} {low:g} and at most {high:g}")
        return n

    parse.__name__ = "amount"
    return parse


# The ranges every command uses, so one flag means one range wherever it appears.
GPUS = count(1, 64)            # GPUs in one machine
LIMIT = count(1, 1000)         # rows of a listing
DISK_GB = amount(65536.0)      # a machine's disk, GB
GPU_RAM_GB = amount(4096.0, above=False)  # RAM per GPU, GB (0: any)
USD_PER_HOUR = amount(10000.0)  # a price cap
BID = amount(128.0)            # an interruptible bid, USD/h (Vast's create takes up to 128)
MONEY = amount(1e12, -1e12, above=False)  # an amount to convert

# Each cloud's ids, as arguments (`train vast show ID`, `--instance ID`, `create OFFER_ID`).
IDS = {"vast": _argument(vast_id, "id"), "runpod": _argument(pod_id, "id")}
OFFERS = {"vast": _argument(vast_id, "offer", "offer")}  # (a RunPod offer is a GPU type's name)


# ---- durations: `30s`, `5m`, `1h30m`, `1.5h`, `300` (recipes, config, Slurm time limits) -------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([smhd]?)", re.ASCII)  # (not ١٢m)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """A duration as written, in seconds: more than zero, at most a year."""
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    total, pos, units = 0.0, 0, []
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"bad duration {text!r} (use e.g. 30s, 5m, 2h, 1h30m, 1.5h or 300)")
        number, unit = m.groups()
        if not unit and m.end() != len(s):
            if s[m.end()].isalpha():
                raise ValueError(f"bad duration {text!r}: unknown unit {s[m.end()]!r} (use s, m, h or d)")
            raise ValueError(f"bad duration {text!r}: a number without unit must stand alone")
        if unit in units:
            raise ValueError(f"bad duration {text!r}: unit {unit!r} given twice")
        units.append(unit)
        total += float(number) * _UNIT_SECONDS[unit]
        pos = m.end()
    if not math.isfinite(total):
        raise ValueError(f"bad duration {text!r}: too long")
    if total <= 0:
        raise ValueError(f"bad duration {text!r}: must be more than zero")
    if total > 366 * 86400:
        raise ValueError(f"bad duration {text!r}: more than a year")
    return total


def format_seconds(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:g}s"
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def problem(check, text: str) -> str | None:
    """What `check` (vast_id, pod_id, seconds, ...) says is wrong with `text`, or None."""
    try:
        check(text)
    except ValueError as e:
        return str(e)
    return None
