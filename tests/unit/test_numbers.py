"""trainsh/numbers.py: numbers and cloud ids are ASCII, whatever str.isdigit(), int() and float()
take (`int("١٢")` is 12, `"²".isdigit()` is true)."""

from __future__ import annotations

import argparse

import pytest

from trainsh import numbers

OTHER_DIGITS = ("²", "١٢٣", "１２", "߁", "12 ", " 12", "1\n2", "", "+1", "-1", "1.0", "1e3")


@pytest.mark.parametrize("text", OTHER_DIGITS)
def test_digits_and_vast_ids_are_ascii_digits_only(text):
    assert not numbers.digits(text) or text.strip() != text
    with pytest.raises(ValueError) as e:
        numbers.vast_id(text)
    assert "\n" not in str(e.value)
    with pytest.raises(argparse.ArgumentTypeError):
        numbers.IDS["vast"](text)
    with pytest.raises(argparse.ArgumentTypeError, match="not an offer id"):
        numbers.OFFERS["vast"](text)


def test_good_ids():
    assert numbers.digits("0123") and numbers.vast_id("12345") == "12345"
    assert numbers.pod_id("8988868d61e0c4") == "8988868d61e0c4"
    with pytest.raises(ValueError):
        numbers.vast_id("1" * 20)  # (more than a 64-bit id)


@pytest.mark.parametrize("text", ["²", "١٢٣", "ａｂｃ", "é", "a b", "a/b", "", "x" * 65, "a\n"])
def test_pod_ids_are_ascii(text):
    with pytest.raises(ValueError) as e:
        numbers.pod_id(text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["²", "١٢", "１２", "1\n2", "nan", "inf", "1e400", "0"])
def test_counts_and_amounts_refuse_other_digits_and_non_finite(text):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        numbers.GPUS(text)
    assert "\n" not in str(e.value)
    with pytest.raises(argparse.ArgumentTypeError):
        numbers.DISK_GB(text)


def test_counts_and_amounts_take_plain_numbers():
    assert numbers.GPUS(" 2 ") == 2 and numbers.DISK_GB("12.5") == 12.5 and numbers.MONEY("-3") == -3.0
