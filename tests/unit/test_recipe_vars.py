"""Variables that refer to each other in a loop are a mistake found by the parser."""

from __future__ import annotations

import pytest

from trainsh.recipe.model import RecipeErrors
from trainsh.recipe.parser import parse


def test_a_loop_between_variables_is_one_error_at_its_first_definition():
    text = "var A = x$B\nvar B = $C/y\nvar C = ${A}\nvar D = ok\ntmux.open @local as w\n"
    with pytest.raises(RecipeErrors) as e:
        parse(text, "loop.recipe")
    assert [str(err) for err in e.value.errors] == [
        "loop.recipe:1:5: variables refer to each other in a loop: A -> B -> C -> A"]


def test_variables_that_refer_to_others_without_a_loop_are_fine():
    r = parse("var A = $B/$B\nvar B = ${C}x\nvar C = c\nvar H = $HOME\n", "ok.recipe")
    assert r.variables["A"] == "$B/$B"
