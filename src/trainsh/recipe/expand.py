"""Run-time expansion of `$NAME`, `${NAME}` and `${secret:NAME}` in recipe text.

Expansion happens when a step runs, never at parse time, so `--var` overrides and secrets
reach every step. A `$NAME` that is no recipe variable is left as written for the shell
(`$HOME` stays `$HOME`); `\\$NAME` is never expanded by us.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

_REF = re.compile(r"\\\$|\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ExpandError(Exception):
    """A reference that cannot be expanded (a missing secret, a cycle between variables)."""


def expand(text: str, variables: Mapping[str, str],
           secret: Callable[[str], str] | None = None, *, keep_escapes: bool = True) -> str:
    """Expand recipe variables (recursively) and secrets in text.

    `secret(name)` returns a secret's value or raises ExpandError. Variables' own values may
    refer to other variables; a cycle is an ExpandError.
    """
    return _expand(text, variables, secret, keep_escapes, ())


def _expand(text, variables, secret, keep_escapes, stack):
    def sub(m: re.Match) -> str:
        if m.group(0) == "\\$":
            return "\\$" if keep_escapes else "$"
        if m.group(1):
            if secret is None:
                raise ExpandError(f"secret {m.group(1)} is not available here")
            return secret(m.group(1))
        name = m.group(2) or m.group(3)
        if name not in variables:
            return m.group(0)
        if name in stack:
            raise ExpandError("variables refer to each other in a loop: " + " -> ".join((*stack, name)))
        return _expand(variables[name], variables, secret, keep_escapes, (*stack, name))

    return _REF.sub(sub, text)


def secret_names(text: str) -> list[str]:
    """The secrets a text refers to, in order of first use."""
    seen: list[str] = []
    for m in _REF.finditer(text):
        if m.group(1) and m.group(1) not in seen:
            seen.append(m.group(1))
    return seen
