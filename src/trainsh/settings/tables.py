"""Files of named TOML tables (hosts.toml, storages.toml): load, save one, remove one.
Edits go through tomlkit, so the user's comments and layout stay."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from trainsh.settings import paths


def load(path: Path, error: type[Exception]) -> dict[str, dict]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(e))
        raise error(f"{path}:{m[2]}:{m[3]}: {m[1]} (fix the file)" if m else f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _document(path: Path, error: type[Exception]):
    """The file as an editable document; a damaged file is an error naming it and the line,
    and the edit stops before anything is written."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return tomlkit.document()
    except ParseError as e:
        raise error(f"{path}:{e.line}:{e.col + 1}: {str(e).split(' at line ')[0]} "
                    "(fix the file; nothing changed)") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file (nothing changed)") from None


def save(path: Path, name: str, entry: dict, fields: tuple[str, ...],
         error: type[Exception] = ValueError) -> None:
    """Write one table (only the given fields that have a value), replacing any of that name."""
    import tomlkit

    doc = _document(path, error)
    paths.ensure(path.parent)
    table = tomlkit.table()
    for k in fields:
        if entry.get(k) not in (None, "", []):
            table[k] = entry[k]
    doc[name] = table
    write_atomic(path, tomlkit.dumps(doc))


def remove(path: Path, name: str, error: type[Exception] = ValueError) -> bool:
    import tomlkit

    doc = _document(path, error)
    if name not in doc:
        return False
    del doc[name]
    write_atomic(path, tomlkit.dumps(doc))
    return True


def write_atomic(path: Path, text: str) -> None:
    """Replace the file whole or not at all: a crash never leaves half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
