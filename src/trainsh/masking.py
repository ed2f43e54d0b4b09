"""Secret masking: every known secret value becomes *** wherever text is shown or stored.

One process-wide registry, so the shell layer, the journal, the logs and the console all mask
the same values without passing the set around.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
SAFE_LENGTH = 8  # shorter values are masked too, but they are easy to guess and mask other text
_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Mask this value from now on, whatever its length (see `too_short`)."""
    global _pattern
    if not value:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def too_short(name: str, value: str) -> str | None:
    """Why a value is unsafe to mask, for a warning; None when it is long enough."""
    if len(value) >= SAFE_LENGTH:
        return None
    return (f"the secret {name} is only {len(value)} character{'s' if len(value) != 1 else ''} "
            f"long: every occurrence of it in output is masked, other text included, and so "
            f"short a value is easy to guess; use one of {SAFE_LENGTH} or more")


def mask(text: str) -> str:
    p = _pattern
    return p.sub(MASK, text) if p and text else text


def clear() -> None:
    """Forget all values (tests only)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None
