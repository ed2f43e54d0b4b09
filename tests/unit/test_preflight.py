"""What a run checks before its first step: steps this version cannot run, placeholders nothing
fills, --var/--host/--storage that name nothing."""

from __future__ import annotations

from trainsh.recipe.parser import parse
from trainsh.runtime import handlers, preflight, reach

CLOUD = "host gpu = placeholder\nvast.pick @gpu num_gpus=1\ntmux.open @gpu as w\n@w > nvidia-smi\n"


def test_a_placeholder_a_step_fills_needs_no_flag():
    r = parse(CLOUD, "c.recipe")
    assert preflight.unfilled(r, r.hosts, r.storages, r.variables) == []
    r = parse("host gpu = placeholder\ntmux.open @gpu as w\n", "p.recipe")
    assert preflight.unfilled(r, r.hosts, r.storages, r.variables) == [
        "p.recipe:1:6: host gpu is a placeholder: give it a machine with --host gpu=SPEC"]
    assert preflight.unfilled(r, {"gpu": "local"}, {}, {}) == []


def test_a_placeholder_behind_a_variable_is_one_too():
    r = parse("var GPU = placeholder\nhost gpu = $GPU\ntmux.open @gpu as w\n", "v.recipe")
    assert len(preflight.unfilled(r, r.hosts, r.storages, r.variables)) == 1
    assert preflight.unfilled(r, r.hosts, r.storages, {"GPU": "local"}) == []


def test_what_this_version_can_run_is_one_registry(monkeypatch):
    r = parse(CLOUD, "c.recipe")
    assert preflight.cannot_run(r) == []  # Vast.ai is in the registries in this version
    # without its entries, the same recipe is refused, and joining them is all it takes
    for name in [k for k in handlers.HANDLERS if k.startswith("vast.")]:
        monkeypatch.delitem(handlers.HANDLERS, name)
    monkeypatch.delitem(reach.REACH, "vast")
    assert [e.message for e in preflight.cannot_run(r)] == [
        "vast.pick: Vast.ai control is not supported yet in this version"]
    # a handler that joins the registry makes the step runnable, with no other change
    monkeypatch.setitem(handlers.HANDLERS, "vast.pick", lambda ctx, idx, step, resume=None: None)
    assert preflight.cannot_run(r) == []
    r = parse("host spare = vast:7\ntmux.open @spare as w\n", "h.recipe")
    assert [e.message for e in preflight.cannot_run(r)] == [
        "host @spare = vast:7: Vast.ai hosts are not supported yet in this version"]
    assert preflight.cannot_run(r, {"spare": "local"}) == []
    monkeypatch.setitem(reach.REACH, "vast", reach.Kind())
    assert preflight.cannot_run(r) == []


def test_unknown_vars_and_overrides():
    r = parse("var MODEL = a\nhost gpu = local\nstorage out = placeholder\n", "r.recipe")
    assert preflight.unknown_vars(r, {"MODEL": "b"}) == []
    assert preflight.unknown_vars(r, {"MODL": "b"}) == [
        "--var MODL=...: the recipe has no variable 'MODL' (did you mean MODEL?)"]
    assert preflight.unknown_overrides(r, {"out": "lake"}, {"gpu": "x"}) == [
        "--host out=...: out is a storage: give it with --storage out=lake",
        "--storage gpu=...: gpu is a host: give it with --host gpu=x"]
    assert preflight.unknown_overrides(r, {"tpu": "local"}, {}) == [
        "--host tpu=...: the recipe has no host 'tpu' (hosts: gpu)"]
    assert preflight.unknown_overrides(r, {"tpu": "local"}, {}, exec_mode=True) == []
    assert preflight.unknown_overrides(r, {}, {"out": "lake"}) == []
