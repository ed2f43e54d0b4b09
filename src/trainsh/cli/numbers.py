"""The one parser of numeric command-line values, for `train` and `ow` alike: argparse `type=`
functions that take only finite numbers in a range, so `--disk nan`, `--disk 1e400` or
`--num-gpus 0` is one line naming the flag (exit 2) before anything is asked or rented.

Imports nothing but argparse: the parsers are built at every start.
"""

from __future__ import annotations

import argparse
import math


def _bad(text: str, why: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"'{text}' {why}")


def count(low: int = 1, high: int = 64):
    """A whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
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
MONEY = amount(1e12, -1e12, above=False)  # an amount to convert
