"""A Python recipe's file: importing it, its `main(job, ...)` and the `--var`s it takes.

Parameters after the job are the recipe's variables, typed by their annotations (int, float,
str, bool; none is str); `--var NAME=VALUE` gives one. Every mistake is one line.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import sys
import traceback
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

from trainsh.program import api

TYPES = {"int": int, "float": float, "str": str, "bool": bool}
INT = re.compile(r"[+-]?[0-9]+\Z")  # ASCII only: int() takes other scripts' digits
FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
BOOLS = {"true": True, "yes": True, "on": True, "1": True,
         "false": False, "no": False, "off": False, "0": False}


class ProgramError(Exception):
    """A Python recipe that cannot run as asked: one line."""


@dataclass
class Program:
    path: str
    text: str
    main: Callable
    params: dict[str, type]  # the variables, in order
    required: set[str]
    any_name: bool = False  # main takes **kwargs: any --var, as text
    values: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{n}: {t.__name__}" for n, t in self.params.items()) or "none"


def load(path: str, main: Callable | None = None) -> Program:
    """Import the file (unless its `main` is given: `python sweep.py` ran it already)."""
    path = os.path.abspath(path)
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ProgramError(f"{name}: {getattr(e, 'strerror', None) or e}") from None
    api.NAMED.update(secret_names(text))  # before any tmux server starts
    if main is None:
        main = _import(path, text).get("main")
        if main is None:
            raise ProgramError(f"{name}: a Python recipe defines main(job, ...); this file has none")
    return _signature(name, path, text, main)


def secret_names(text: str) -> set[str]:
    """The names of `secret("NAME")` calls written in the program."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "secret") or (isinstance(f, ast.Name) and f.id == "secret"):
                found.add(node.args[0].value)
    return found


def _import(path: str, text: str) -> dict:
    name = os.path.basename(path)
    try:
        code = compile(text, path, "exec")
    except SyntaxError as e:
        raise ProgramError(f"{name}:{e.lineno}: {e.msg}") from None
    mod_name = "trainsh_recipe_" + re.sub(r"\W", "_", os.path.splitext(name)[0])
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(path)
    if folder not in sys.path:  # its own helper modules beside it import as in `python FILE`
        sys.path.insert(0, folder)
    sys.modules[mod_name] = module
    try:
        exec(code, module.__dict__)
    except SystemExit:
        raise ProgramError(f"{name}: importing it exited; keep work in main(job, ...)") from None
    except Exception as e:  # noqa: BLE001 - the program's own error, said in one line
        line = next((n for f, n in reversed(list(traceback.walk_tb(e.__traceback__)))
                     if os.path.abspath(f.f_code.co_filename) == path), None)
        where = f"{name}:{line}" if line else name
        raise ProgramError(f"{where}: importing it raised {type(e).__name__}: {e}") from None
    return module.__dict__


def _signature(name: str, path: str, text: str, main: Callable) -> Program:
    if not callable(main):
        raise ProgramError(f"{name}: main is not a function")
    try:
        sig = inspect.signature(main)
    except (TypeError, ValueError):
        raise ProgramError(f"{name}: cannot read main()'s parameters") from None
    try:
        hints = typing.get_type_hints(main)
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate: read it as written
        hints = {}
    params: dict[str, type] = {}
    required: set[str] = set()
    any_name = False
    ps = list(sig.parameters.values())
    if not ps or ps[0].kind not in (ps[0].POSITIONAL_ONLY, ps[0].POSITIONAL_OR_KEYWORD):
        raise ProgramError(f"{name}: main's first parameter is the job: def main(job, ...)")
    for p in ps[1:]:
        if p.kind == p.VAR_KEYWORD:
            any_name = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            raise ProgramError(f"{name}: main's parameter {p.name} cannot be given by name with --var")
        t = _type(hints.get(p.name, p.annotation))
        if t is None:
            shown = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", p.annotation)
            raise ProgramError(f"{name}: main's parameter {p.name} is a {shown}; --var gives "
                               "int, float, str or bool")
        params[p.name] = t
        if p.default is p.empty:
            required.add(p.name)
    return Program(path, text, main, params, required, any_name)


def _type(annotation) -> type | None:
    if annotation is inspect.Parameter.empty:
        return str
    if isinstance(annotation, str):
        annotation = annotation.replace(" ", "")
        for suffix in ("|None", "None|"):
            annotation = annotation.replace(suffix, "")
        return TYPES.get(annotation.removeprefix("Optional[").removesuffix("]"))
    if annotation in TYPES.values():
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and args[0] in TYPES.values():  # Optional[int], int | None
        return args[0]
    return None


def typed(program: Program, given: dict[str, str], required: bool = True) -> dict[str, Any]:
    """--var NAME=VALUE pairs -> main's keyword arguments; ProgramError on the first mistake
    (a parameter without default left out is one, when `required`)."""
    out: dict[str, Any] = {}
    for key, text in given.items():
        t = program.params.get(key)
        if t is None:
            if program.any_name:
                out[key] = text
                continue
            raise ProgramError(f"--var {key}: main() has no parameter {key} "
                               f"(its parameters: {program.describe()})")
        out[key] = convert(key, text, t)
    missing = [n for n in program.params if n in program.required and n not in out]
    if missing and required:
        n = missing[0]
        raise ProgramError(f"main() needs --var {n}=... ({article(program.params[n].__name__)})")
    return out


def convert(key: str, text: str, t: type):
    s = text.strip()
    if t is str:
        return text
    if t is bool and s.lower() in BOOLS:
        return BOOLS[s.lower()]
    if t is int and INT.match(s):
        return int(s)
    if t is float and (FLOAT.match(s) or s.lower() in ("inf", "-inf", "+inf")):
        return float(s)
    hint = {"bool": " (true or false)", "int": " (a whole number)", "float": " (a number like 1e-4)"}[t.__name__]
    raise ProgramError(f"--var {key}={text}: {key} is {article(t.__name__)}{hint}")


def article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word
