"""What is checked before a job starts, so that a run which cannot go through fails before its
first step: steps and hosts this version cannot run, `--var`/`--host`/`--storage` that name
nothing in the recipe, placeholders left unfilled. It also decides what the names in
`train exec` lines are. Nothing here reaches a host.
"""

from __future__ import annotations

import difflib

from trainsh.recipe.expand import ExpandError, expand
from trainsh.recipe.model import Recipe, RecipeError, Transfer
from trainsh.kinds import spec_problem
from trainsh.recipe.parser import check_storage_spec
from trainsh.runtime.handlers import cannot_run as cannot_run_step
from trainsh.runtime.reach import unsupported as unsupported_host
from trainsh.settings import hosts as hosts_toml
from trainsh.settings import storages as storages_toml


def cannot_run(recipe: Recipe, host_specs: dict[str, str] | None = None) -> list[RecipeError]:
    """Every step and host of the recipe that this version cannot run, as file:line:col
    errors. `host_specs` are the hosts as the run will have them (after --host)."""
    lines = recipe.text.splitlines()
    errors = []

    def error(pos, message: str) -> None:
        src = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
        errors.append(RecipeError(recipe.path, pos, message, src))

    defs = recipe.of_kind("host")
    for name, spec in (recipe.hosts if host_specs is None else host_specs).items():
        why = unsupported_host(name, spec)
        if why and name in defs:
            error(defs[name].pos, why)
    for step in recipe.steps:
        why = cannot_run_step(step)
        if why:
            error(step.pos, why)
    return sorted(errors, key=lambda e: (e.pos.line, e.pos.col))


def unknown_vars(recipe: Recipe, variables: dict[str, str]) -> list[str]:
    """A --var that names no variable of the recipe would change nothing: say so."""
    known = list(recipe.variables)
    problems = []
    for name in variables:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1) or \
            [k for k in known if k.lower() == name.lower()][:1]
        if close:
            hint = f"did you mean {close[0]}?"
        elif known:
            hint = f"its variables: {', '.join(known)}"
        else:
            hint = f"it defines none; add 'var {name} = ...'"
        problems.append(f"--var {name}=...: the recipe has no variable '{name}' ({hint})")
    return problems


def unknown_overrides(recipe: Recipe, hosts: dict[str, str], storages: dict[str, str],
                      exec_mode: bool = False) -> list[str]:
    """--host and --storage that name no host or storage of the recipe, or hold a bad spec.
    `train exec` lines need no definitions, so there any name goes."""
    problems = []
    for flag, given, kind, other in (("--host", hosts, "host", "storage"),
                                     ("--storage", storages, "storage", "host")):
        defined = recipe.of_kind(kind)
        for name, spec in given.items():
            if name in recipe.of_kind(other):
                problems.append(f"{flag} {name}=...: {name} is a {other}: give it with "
                                f"--{other} {name}={spec or 'SPEC'}")
                continue
            if name not in defined and not exec_mode:
                problems.append(f"{flag} {name}=...: the recipe has no {kind} '{name}' "
                                f"({kind}s: {', '.join(defined) or 'none'})")
                continue
            if not spec.strip():
                problems.append(f"{flag} {name}=: empty spec")
                continue
            if kind == "host":
                problem = spec_problem(spec)
                why = problem[1] if problem else None
            else:
                why = check_storage_spec(spec)
            if why:
                problems.append(f"{flag} {name}={spec}: {why}")
    return problems


def unfilled(recipe: Recipe, host_specs: dict[str, str], storage_specs: dict[str, str],
             variables: dict[str, str]) -> list[str]:
    """Placeholders nothing fills: not given with --host/--storage, and no step of the recipe
    gives them a machine (Step.fills, e.g. `vast.pick @gpu`)."""
    filled = {name for step in recipe.steps for name in step.fills}
    problems = []
    for kind, specs, flag in (("host", host_specs, "--host"), ("storage", storage_specs, "--storage")):
        defs = recipe.of_kind(kind)
        for name, spec in specs.items():
            try:  # `host gpu = $GPU` with `var GPU = placeholder` is one too
                value = expand(spec, variables, lambda _: "").strip()
            except ExpandError:
                value = spec.strip()
            if value != "placeholder" or name in filled:
                continue
            pos = defs[name].pos if name in defs else None
            where = f"{recipe.path}:{pos.line}:{pos.col}: " if pos else ""
            what = "a machine" if kind == "host" else "a storage"
            problems.append(f"{where}{kind} {name} is a placeholder: give it {what} with "
                            f"{flag} {name}=SPEC")
    return problems


def exec_names(recipe: Recipe) -> tuple[dict[str, str], dict[str, str]]:
    """The hosts and storages `train exec` lines name without defining them, as `train
    transfer` reads them: a hosts.toml name is a host, else a storages.toml name (only where a
    storage can stand: a side of a transfer) is a storage, else an ssh alias or destination."""
    defined = set(recipe.definitions) | {"local"}
    as_host = {step.host for step in recipe.steps if getattr(step, "host", None)} - defined
    sides = {ep.name for step in recipe.steps if isinstance(step, Transfer)
             for ep in (step.src, step.dst) if ep.name} - defined
    known_hosts = hosts_toml.load()
    known_storages = storages_toml.load() if sides else {}
    host_specs, storage_specs = {}, {}
    for name in sorted(as_host | sides):
        if name in sides and name not in as_host and name not in known_hosts \
                and name in known_storages:
            storage_specs[name] = name
        else:
            host_specs[name] = name
    return host_specs, storage_specs
