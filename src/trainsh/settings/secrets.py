"""Secrets: looked up by name, an environment variable of the same name first."""

from __future__ import annotations

import os


def lookup(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None
