"""The Python recipe API without running anything: the lazy face of the package, secrets as
names, fingerprints, and --var typing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainsh.program import api
from trainsh.program.engine import fingerprint
from trainsh.program.load import Program, ProgramError, typed
from trainsh.recipe import model as m


def test_import_trainsh_loads_the_api_only_when_used():
    code = ("import sys, trainsh; from trainsh import masking\n"
            "assert 'trainsh.program' not in sys.modules and 'trainsh.runtime' not in sys.modules\n"
            "trainsh.Job; assert 'trainsh.program' in sys.modules\n"
            "try:\n    trainsh.nothing\nexcept AttributeError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "module 'trainsh' has no attribute 'nothing'\n"


def test_a_secret_is_its_name_wherever_text_goes():
    s = api.secret("HF_TOKEN")
    assert str(s) == f"{s}" == "${secret:HF_TOKEN}" and "Bearer " + s == "Bearer ${secret:HF_TOKEN}"
    assert "HF_TOKEN" in api.NAMED
    with pytest.raises(ValueError, match="bad secret name"):
        api.secret("HF-TOKEN")


def test_a_fingerprint_is_the_kind_and_arguments_not_the_place_or_timeout():
    def cmd(text, line=3, timeout=None, background=False):
        return m.Command(m.Pos(line, 1), f"@w > {text}", "w", text, background,
                         m.Duration.of(timeout) if timeout else None)

    base = fingerprint(cmd("echo ${secret:A}"))
    assert fingerprint(cmd("echo ${secret:A}", line=9, timeout=30)) == base
    assert fingerprint(cmd("echo ${secret:B}")) != base
    assert fingerprint(cmd("echo ${secret:A}", background=True)) != base
    opened = m.TmuxOpen(m.Pos(1, 1), "tmux.open @h as w", "h", "w")
    assert fingerprint(opened, ("local",)) != fingerprint(opened, ("root@box",))


def test_vars_are_typed_from_mains_parameters():
    prog = Program("p.py", "", lambda job: None, {"lr": float, "n": int, "on": bool, "tag": str},
                   {"lr"})
    assert typed(prog, {"lr": "1e-4", "n": "-3", "on": "Yes", "tag": " x "}) == \
        {"lr": 1e-4, "n": -3, "on": True, "tag": " x "}
    for given, said in [({"lr": "1", "n": "١٢"}, "--var n=١٢: n is an int (a whole number)"),
                        ({"lr": "0x10"}, "--var lr=0x10: lr is a float (a number like 1e-4)"),
                        ({"lr": "1", "on": "maybe"}, "--var on=maybe: on is a bool (true or false)"),
                        ({}, "main() needs --var lr=... (a float)")]:
        with pytest.raises(ProgramError) as e:
            typed(prog, given)
        assert str(e.value) == said
    assert typed(prog, {}, required=False) == {}
