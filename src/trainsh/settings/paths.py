"""Where trainsh keeps its files: one settings folder, moved as a whole by TRAINSH_HOME.

Layout (as the seed describes): config.toml, hosts.toml, storages.toml, jobs/, recipes/.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("TRAINSH_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tmux-trainsh"


def config_file() -> Path:
    return home() / "config.toml"


def hosts_file() -> Path:
    return home() / "hosts.toml"


def storages_file() -> Path:
    return home() / "storages.toml"


def jobs_dir() -> Path:
    return home() / "jobs"


def recipes_dir() -> Path:
    return home() / "recipes"


def ensure(path: Path) -> Path:
    """Create a folder (private to the user) if missing, and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
