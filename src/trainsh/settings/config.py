"""config.toml: typed, validated settings with defaults.

Keys are dotted (`notify.urls`, `defaults.command_timeout`). Every key has a type, a default and
a one-line description; reading an unknown key or a value of the wrong type is a ConfigError
with the close matches.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainsh import numbers
from trainsh.settings import paths
from trainsh.settings.tables import write_atomic


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # str | int | float | bool | duration | list | table | choice
    default: Any
    help: str
    choices: tuple[str, ...] = ()


KEYS: dict[str, Key] = {k.name: k for k in [
    Key("defaults.command_timeout", "duration", "10m", "how long `@s > cmd` may run unless timeout= says"),
    Key("defaults.wait_timeout", "duration", "10m", "how long a `wait` may take unless timeout= says"),
    Key("notify.urls", "list", [], "apprise URLs that `notify` sends to (the console always gets it)"),
    Key("notify.on", "list", [], "also notify when a job ends on its own: \"done\", \"failed\"; "
        "when it has replaced a lost machine (recover=N): \"recovered\""),
    Key("tmux.options", "table", {"history-limit": "50000"}, "tmux options applied by `tmux.config @host`"),
    Key("ui.currency", "str", "USD", "display currency for prices"),
    Key("ssh.key", "str", "", "default ssh identity file for hosts that name none"),
    Key("vast.image", "str", "pytorch/pytorch:latest", "docker image of Vast.ai machines trainsh rents"),
    Key("vast.disk", "float", 50.0, "disk in GB of Vast.ai machines trainsh rents"),
    Key("vast.bid_margin", "float", 0.10, "what `--bid` with no price adds to an offer's minimum bid "
        "(a fraction: 0.10 is 10%)"),
    Key("runpod.bid_margin", "float", 0.10, "what `--bid` with no price adds to a spot pod's minimum "
        "bid (a fraction)"),
    Key("runpod.image", "str", "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
        "container image of RunPod pods trainsh rents (ow)"),
    Key("runpod.disk", "float", 50.0, "container disk in GB of RunPod pods trainsh rents (ow)"),
    Key("cloud.autostop", "duration", "30m", "stop a job's cloud machine after it has been idle, "
        "with no train connected, this long (0 = never)"),
    Key("cloud.lost_after", "duration", "5m", "a job's cloud machine with recover=N counts as lost "
        "when ssh cannot reach it this long while its cloud says it runs"),
    Key("cloud.api_timeout", "duration", "30s", "how long one cloud API call may take in all, "
        "retries and their waits included"),
    Key("ow.autostop", "duration", "5m", "destroy a machine ow rented once it has been idle this long "
        "(no ow connected, no command running), should ow be gone without ending it (0 = never)"),
    Key("secrets.store", "choice", "auto", "where secrets are kept", ("auto", "keyring", "file")),
    Key("pricing.rates_url", "str", "https://api.frankfurter.dev/v1",
        "exchange-rates API (frankfurter style: URL/latest?base=USD)"),
    Key("pricing.colab_date", "str", "2025-11", "when the Colab tables below were last checked"),
    Key("pricing.colab_plans", "table", {
        "pay-as-you-go": {"usd": 9.99, "units": 100},
        "pro": {"usd": 9.99, "units": 100, "monthly": True},
        "pro+": {"usd": 49.99, "units": 500, "monthly": True},
    }, "Colab plans: price in USD and the compute units it brings"),
    Key("pricing.colab_units", "table", {"T4": 1.96, "V100": 5.36, "L4": 3.72, "A100": 12.29},
        "Colab compute units used per hour by each GPU"),
]}


def _load_file() -> dict[str, Any]:
    path = paths.config_file()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def _dig(data: dict, dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def check_key(name: str) -> Key:
    if name not in KEYS:
        close = difflib.get_close_matches(name, list(KEYS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(KEYS)})"
        raise ConfigError(f"unknown config key '{name}'{hint}")
    return KEYS[name]


def validate(key: Key, value: Any) -> Any:
    """Check (and normalise) a value for a key; raise ConfigError when it does not fit."""
    t = key.type
    ok = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list),
        "table": lambda v: isinstance(v, dict),
        "choice": lambda v: v in key.choices,
        "duration": lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),
    }[t]
    if not ok(value):
        want = f"one of {', '.join(key.choices)}" if t == "choice" else f"a {t}"
        raise ConfigError(f"{key.name} must be {want}, got {value!r}")
    if t == "float" and not math.isfinite(value):  # (TOML and float() both take nan and inf)
        raise ConfigError(f"{key.name} must be a finite number, got {value!r}")
    if t == "duration" and not (key.name in OFF_OK and _off(value)) and _plain_seconds(value) is None:
        try:
            numbers.seconds(str(value))
        except ValueError as e:
            raise ConfigError(f"{key.name}: {e}") from None
    return value


def get(name: str) -> Any:
    key = check_key(name)
    try:
        value = _dig(_load_file(), name)
    except KeyError:
        return key.default
    value = validate(key, value)
    if key.type == "table":  # entries set by the user on top of the default ones
        value = {**key.default, **value}
    return value


OFF_OK = {"cloud.autostop", "ow.autostop"}  # durations where 0 means "never"


def _off(value: Any) -> bool:
    return str(value).strip() in ("0", "off")


def off_or_duration(name: str) -> float:
    """A duration where 0 (or `off`) turns the thing off: 0.0 then."""
    value = get(name)
    return 0.0 if _off(value) else duration(name)


def duration(name: str) -> float:
    value = get(name)
    seconds = _plain_seconds(value)
    if seconds is not None:
        return seconds
    return numbers.seconds(str(value))


def _plain_seconds(value: Any) -> float | None:
    """Seconds written plainly (`30`, `30s`, `2.5s`), read without the duration grammar's module
    (a cloud call reads its timeout at each call); None for anything else, which the grammar
    reads or refuses."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", str(value)) if not isinstance(value, bool) else None
    seconds = float(m.group(1)) if m else None
    return seconds if seconds is not None and 0 < seconds <= 366 * 86400 else None


# ---- editing (comments and layout kept) ------------------------------------------------------

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


def resolve_key(name: str) -> tuple[Key, str | None]:
    """A key, or `TABLE.SUB` for a table key (`tmux.options.mouse`): (key, sub or None)."""
    if name in KEYS:
        return KEYS[name], None
    head, _, sub = name.rpartition(".")
    if head in KEYS and KEYS[head].type == "table" and sub:
        return KEYS[head], sub
    check_key(name)  # raises with the close matches
    raise AssertionError


def parse_value(key: Key, raw: str) -> Any:
    """A value typed on the command line -> the typed value for key (or ConfigError)."""
    t = key.type
    text = raw.strip()
    try:
        if t == "int":
            return validate(key, int(text))
        if t == "float":
            return validate(key, float(text))
        if t == "bool":
            if text.lower() in TRUE:
                return True
            if text.lower() in FALSE:
                return False
            raise ConfigError(f"{key.name} takes true or false, got '{raw}'")
        if t == "list":
            if text.startswith("["):
                return validate(key, tomllib.loads(f"v = {text}")["v"])
            return [part.strip() for part in text.split(",") if part.strip()]
        if t == "table":
            if not text.startswith("{"):
                raise ConfigError(f"{key.name} is a table: set one entry ({key.name}.NAME VALUE) "
                                  "or give an inline table like {mouse = \"on\"}")
            return validate(key, tomllib.loads(f"v = {text}")["v"])
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{key.name}: bad {t} '{raw}' ({e})") from None
    return validate(key, text)


def _document():
    import tomlkit

    path = paths.config_file()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return tomlkit.document()
    except Exception as e:  # tomlkit's parse errors
        raise ConfigError(f"{path}: {e}") from None


def _write(doc) -> None:
    import tomlkit

    path = paths.config_file()
    paths.ensure(path.parent)
    write_atomic(path, tomlkit.dumps(doc))


def set_value(name: str, raw: str) -> Any:
    """Set a key from command-line text; returns the stored value."""
    import tomlkit

    key, sub = resolve_key(name)
    value = str(raw) if sub is not None else parse_value(key, raw)
    doc = _document()
    table = doc
    parts = key.name.split(".")
    last = parts[-1] if sub is None else sub
    walk = parts[:-1] if sub is None else parts
    for part in walk:
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
        if not isinstance(table, dict):
            raise ConfigError(f"{paths.config_file()}: '{part}' is not a table")
    table[last] = value
    _write(doc)
    return value


def unset_value(name: str) -> bool:
    key, sub = resolve_key(name)
    doc = _document()
    table = doc
    parts = key.name.split(".") + ([sub] if sub else [])
    for part in parts[:-1]:
        if part not in table:
            return False
        table = table[part]
    if parts[-1] not in table:
        return False
    del table[parts[-1]]
    _write(doc)
    return True


def reset() -> Path | None:
    """Back config.toml up and start from the defaults. The backup is config.toml.bak, or
    config.toml.bak.N when that exists: a backup is never overwritten."""
    path = paths.config_file()
    if not path.exists():
        return None
    n = 0
    while True:
        backup = path.with_name("config.toml.bak" + (f".{n}" if n else ""))
        try:
            try:
                os.link(path, backup)  # fails if the name is taken: no check-then-write race
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: copy into a new file
                fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(path.read_bytes())
            break
        except FileExistsError:
            n += 1
    os.unlink(path)
    return backup


def unknown_keys() -> list[str]:
    """Keys in config.toml that trainsh does not know (a typo is otherwise silent)."""
    found: list[str] = []

    def walk(table: dict, prefix: str) -> None:
        for k, v in table.items():
            name = f"{prefix}{k}"
            if name in KEYS:
                continue
            if isinstance(v, dict) and any(key.startswith(name + ".") for key in KEYS):
                walk(v, name + ".")
            else:
                found.append(name)

    walk(_load_file(), "")
    return found


def effective() -> list[tuple[str, Any, str]]:
    """(key, value, 'config' | 'default') for every key."""
    data = _load_file()
    out = []
    for name, key in KEYS.items():
        try:
            _dig(data, name)
            out.append((name, get(name), "config"))
        except KeyError:
            out.append((name, key.default, "default"))
    return out
