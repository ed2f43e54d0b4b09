"""Secret masking: every known secret value becomes *** wherever text is shown or stored.

One process-wide registry, so the shell layer, the journal, the logs and the console all mask
the same values without passing the set around.
"""

from __future__ import annotations

import re
import threading

MASK = "***"
_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(value: str) -> None:
    """Mask this value from now on (values shorter than 4 characters would mask too much)."""
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _values:
            return
        _values.add(value)
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def mask(text: str) -> str:
    p = _pattern
    return p.sub(MASK, text) if p and text else text


def clear() -> None:
    """Forget all values (tests only)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None
