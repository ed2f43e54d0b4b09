"""Columns for `recipe status` and `recipe jobs` that fit the terminal: on a terminal the
flexible column (a path) gives up its start first, then the others their ends; into a pipe
rows stay whole, for grep and scripts. Plain text, no dependency."""

from __future__ import annotations

import shutil
import sys
from trainsh.visible import visible


def width(stream=None) -> int | None:
    """The terminal's width, or None when output goes to a pipe."""
    stream = stream or sys.stdout
    if hasattr(stream, "isatty") and stream.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def cut(text: str, n: int, keep_end: bool = False) -> str:
    if len(text) <= n:
        return text
    if n <= 1:
        return text[:n]
    return "…" + text[-(n - 1):] if keep_end else text[: n - 1] + "…"


def render(headers: list[str], rows: list[list[str]], flex: int | None = -1, right: set[int] = frozenset(),
           limit: int | None = None, gap: int = 2) -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell; with `limit`, no line
    is longer: the `flex` column shrinks first (keeping its end), then the others from the
    right (keeping their starts), each to no less than its header (or 4 characters). With
    `flex=None` every column shrinks from the right, keeping its start."""
    n = len(headers)
    flex = n if flex is None else flex % n  # (n: no column is the flex one)
    rows = [[visible(c) for c in r] for r in rows]  # what the cells hold is shown, never acted on
    widths = [max([len(headers[i])] + [len(r[i]) for r in rows]) for i in range(n)]
    if limit is not None:
        over = sum(widths) + gap * (n - 1) - limit
        for i in [j for j in [flex] if j < n] + [j for j in reversed(range(n)) if j != flex]:
            if over <= 0:
                break
            give = min(over, max(0, widths[i] - max(4, len(headers[i]))))
            widths[i] -= give
            over -= give

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            c = cut(c, widths[i], keep_end=(i == flex))
            out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return (" " * gap).join(out).rstrip()

    return [line(headers)] + [line(r) for r in rows]
