"""`colab:NAME`: a Colab runtime that `train colab connect NAME` saved in hosts.toml."""

from __future__ import annotations

SCHEME, TITLE = "colab", "Colab"
INLINE = True
LOGIN = False


def problem(rest: str) -> str | None:
    return None  # any saved name; whether it is saved is asked when it is reached
