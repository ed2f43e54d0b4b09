"""Text from outside is shown, never acted on by the terminal (trainsh/visible.py), on every path that
prints it: the console's lines (so the journal and job.log too) and every table."""

from __future__ import annotations

import io

from trainsh.ui import table
from trainsh.ui.console import Console
from trainsh.visible import visible

HOSTILE = "RTX\x1b[2J 4090\x1b]0;pwned\x07\r\nrow\u202eevil\x9b31m"


def test_controls_escapes_and_bidi_overrides_are_made_visible():
    shown = visible(HOSTILE)
    assert shown == "RTX\\x1b[2J 4090\\x1b]0;pwned\\x07\\r\\nrow\\u202eevil\\x9b31m"
    assert all(c.isprintable() for c in shown)
    assert visible("two\nlines\tand a tab", lines=True) == "two\nlines\tand a tab"
    assert visible("plain text, ünïcode and 中文 stay") == "plain text, ünïcode and 中文 stay"


def test_the_console_and_tables_show_what_they_are_given():
    out = io.StringIO()
    c = Console(stream=out, visual=False)
    c.ok(f"@gpu = vast 7: 1x {HOSTILE}")
    c.info(HOSTILE)
    c.warn(HOSTILE)
    c.plain(HOSTILE)
    printed = out.getvalue()
    assert "\x1b" not in printed and "\r" not in printed and "\u202e" not in printed, printed
    assert printed.count("\\x1b[2J") == 4
    lines = table.render(["GPU", "WHERE"], [[HOSTILE, "x\ny"]])
    assert len(lines) == 2 and "\x1b" not in lines[1] and "x\\ny" in lines[1], lines
