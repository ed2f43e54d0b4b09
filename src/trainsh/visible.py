"""Text from outside (a cloud's GPU names, labels and places, a host's output in a table, a
file name) shown as it is, never acted on by the terminal: control characters, escape
sequences and bidirectional overrides are made visible (`\\x1b`, `\\r`, `\\u202e`), so such
text can neither clear the screen, set the window's title, break a table's rows nor reverse
what is read. The one place every display path sends what it did not write itself through."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates, line and paragraph separators,
# and the zero-width marks that reorder or hide text.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_LINES = re.compile("[\n\t]")


def _shown(m: re.Match) -> str:
    c = m.group()
    return {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\x1b": "\\x1b"}.get(c) or (
        f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def visible(text, lines: bool = False) -> str:
    """`text` with what a terminal would act on made visible. With `lines`, newlines and tabs
    stay (a message of several lines); else they are shown too (a table's cell, one line)."""
    text = str(text)
    text = _HIDDEN.sub(_shown, text)
    return text if lines else _LINES.sub(_shown, text)
