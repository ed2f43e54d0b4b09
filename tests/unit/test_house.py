"""The house's shape, read from the code's own imports: floors that import only downward, no
two modules importing each other (directly or through others), no module taking another's
private name, and the spec half of the host kinds free of everything but `numbers`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# From the ground up (ARCHITECTURE.md, "The house has floors"); a module may import its own
# floor and the floors below.
FLOORS = [
    ("trainsh.numbers", "trainsh.masking", "trainsh.visible", "trainsh.owargs", "trainsh.version"),
    ("trainsh.kinds",),
    ("trainsh.recipe",),
    ("trainsh.settings",),
    ("trainsh.remote",),
    ("trainsh.cloud", "trainsh.transfer"),
    ("trainsh.runtime",),
    ("trainsh.ui",),
    ("trainsh.program",),
    ("trainsh.cli",),
    # the package's face: `import trainsh as ts` loads trainsh.program on first use
    ("trainsh.owstart", "trainsh.__main__", "trainsh"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "trainsh").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, str]]:
    """(importer, imported module, name) for every import of the package, in functions too."""
    out = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainsh"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    out.append((name, full if full in modules else node.module, alias.name))
            elif isinstance(node, ast.Import):
                out += [(name, a.name, "") for a in node.names if a.name.startswith("trainsh")]
    return [(a, b, n) for a, b, n in out if a != b]


def _floor(module: str) -> int:
    best = max((p for floor in FLOORS for p in floor if module == p or module.startswith(p + ".")), key=len)
    return next(i for i, floor in enumerate(FLOORS) if best in floor)


def test_every_import_runs_down_or_level():
    up = [(a, b) for a, b, _ in _imports(_modules()) if _floor(b) > _floor(a)]
    assert up == [], up


def test_no_two_modules_import_each_other():
    modules = _modules()
    edges: dict[str, set[str]] = {}
    for a, b, _ in _imports(modules):
        edges.setdefault(a, set()).add(b)

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    circles = sorted(m for m in modules if m in reaches(m))
    assert circles == [], f"modules that import themselves through others: {circles}"


def test_no_module_takes_another_modules_private_name():
    taken = [(a, b, n) for a, b, n in _imports(_modules()) if n.startswith("_") and not n.startswith("__")]
    assert taken == [], taken


def test_the_spec_half_of_host_kinds_imports_only_numbers():
    kinds = {(a, b) for a, b, _ in _imports(_modules()) if a.startswith("trainsh.kinds")}
    assert {b for _, b in kinds} - {"trainsh.numbers"} <= {m for m in _modules() if m.startswith("trainsh.kinds")}


def test_each_host_kind_has_both_halves():
    from trainsh.kinds import KINDS
    from trainsh.runtime.reach import REACH

    assert set(KINDS) == set(REACH)
    for scheme, kind in KINDS.items():
        assert kind.SCHEME == scheme and kind.TITLE and callable(kind.problem)
