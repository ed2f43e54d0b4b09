"""The ssh kind's specs: `[user@]host [-p PORT] [-i KEY] [-J JUMP] [-o OPT=VAL]`, an alias
from ~/.ssh/config, or a name from hosts.toml. remote/sshspec.py turns one into ssh's argv."""

from __future__ import annotations

import re

from trainsh.numbers import digits

_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")
_IPV6 = re.compile(r"\[?[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(%[\w.-]+)?\]?")
# a word: runs of unquoted characters and quoted strings ("..." may hold \" and \\)
_WORD = re.compile(r"""(?:[^\s'"]+|'[^']*'|"(?:\\["\\]|[^"\\])*")+""")
_UNCLOSED = re.compile(r"""(?:[^\s'"]+|'[^']*'|"(?:\\["\\]|[^"\\])*")*(['"])""")


def hostname_problem(host: str) -> str | None:
    """Why `host` (a name, an address or an ssh alias) cannot be one, or None."""
    if not host:
        return "no host name"
    if _HOSTNAME.fullmatch(host):
        return None
    if _IPV6.fullmatch(host) and host.count(":") >= 2 and host.startswith("[") == host.endswith("]"):
        return None
    if ":" in host:
        return f"bad host name '{host}' (a port goes in -p PORT, not after ':')"
    return f"bad host name '{host}' (letters, digits, '.', '-', '_')"


def words(spec: str) -> list[tuple[str, int]] | tuple[int, str]:
    """The spec's words with their offsets, quotes removed; (offset, message) for an unclosed quote."""
    out, pos = [], 0
    while pos < len(spec):
        if spec[pos] in " \t\n":
            pos += 1
            continue
        m = _WORD.match(spec, pos)
        if m is None or (m.end() < len(spec) and spec[m.end()] in "'\""):
            bad = _UNCLOSED.match(spec, pos)
            quote_at = bad.end() - 1 if bad else pos
            return quote_at, f"unclosed {spec[quote_at]} quote"
        text = re.sub(r"""'([^']*)'|"((?:\\["\\]|[^"\\])*)"|([^'"]+)""",
                      lambda q: q.group(1) if q.group(1) is not None else
                      re.sub(r'\\(["\\])', r"\1", q.group(2)) if q.group(2) is not None else q.group(3),
                      m.group())
        out.append((text, pos))
        pos = m.end()
    return out


def valid_port(v: str) -> bool:
    return digits(v) and 1 <= int(v) <= 65535


def problem(words: list[tuple[str, int]]) -> tuple[int, str] | None:
    """(offset, message) for an ssh destination that is malformed, from `words(spec)`."""
    if not words or not words[0][0]:
        return 0, "empty host spec (local, user@host, an ssh alias or a hosts.toml name)"
    first = words[0][0]
    if first.startswith("-"):
        return 0, "host spec must start with user@host (options come after)"
    if "$" in first:
        return None
    if "@" in first:
        user, _, hostname = first.rpartition("@")
        if not user or not hostname:
            return 0, f"bad ssh destination '{first}' (expected user@host)"
    elif len(words) > 1:
        return 0, f"bad ssh destination '{first}' (expected user@host)"
    else:
        hostname = first
    bad = hostname_problem(hostname)
    if bad:
        return len(first) - len(hostname), bad
    i = 1
    while i < len(words):
        text, start = words[i]
        if text in ("-p", "-i", "-J", "-o"):
            if i + 1 >= len(words):
                return start, f"{text} needs a value"
            value, at = words[i + 1]
            if text == "-p" and not (valid_port(value) or value.startswith("$")):
                return at, f"bad port '{value}' (1-65535)"
            if text == "-o" and "=" not in value and " " not in value:
                return at, f"-o takes Option=value, got '{value}'"
            i += 2
            continue
        if re.fullmatch(r"-p\d+", text) or text.startswith("-o") and len(text) > 2:
            i += 1
            continue
        return start, f"unknown host spec option '{text}' (-p PORT, -i KEY, -J JUMP, -o OPT=VAL)"
    return None
