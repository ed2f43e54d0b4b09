"""config.toml: typed, validated settings with defaults.

Keys are dotted (`notify.urls`, `defaults.command_timeout`). Every key has a type, a default and
a one-line description; reading an unknown key or a value of the wrong type is a ConfigError
with the close matches.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from typing import Any

from trainsh.settings import paths


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
    Key("tmux.options", "table", {"history-limit": "50000"}, "tmux options applied by `tmux.config @host`"),
    Key("ui.currency", "str", "USD", "display currency for prices"),
    Key("ssh.key", "str", "", "default ssh identity file for hosts that name none"),
    Key("secrets.store", "choice", "auto", "where secrets are kept", ("auto", "keyring", "file")),
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
    from trainsh.recipe.model import Duration  # the one duration grammar

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
    if t == "duration":
        try:
            Duration.parse(str(value))
        except ValueError as e:
            raise ConfigError(f"{key.name}: {e}") from None
    return value


def get(name: str) -> Any:
    key = check_key(name)
    try:
        value = _dig(_load_file(), name)
    except KeyError:
        return key.default
    return validate(key, value)


def duration(name: str) -> float:
    from trainsh.recipe.model import Duration

    return Duration.parse(str(get(name))).seconds
