"""Malformed recipes: every mistake is reported at the right file:line:col with a useful message.

The corpus lives in tests/unit/malformed/: one `.recipe` file per mistake, and expected.toml
giving the line, column and a piece of the message of the single error each must produce.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from trainsh.recipe.model import Pos, RecipeError, RecipeErrors
from trainsh.recipe.parser import parse

CORPUS = Path(__file__).parent / "malformed"
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text())
FILES = sorted(p.name for p in CORPUS.glob("*.recipe"))


def errors_of(text: str, file: str = "t.recipe", **kw) -> list[RecipeError]:
    with pytest.raises(RecipeErrors) as info:
        parse(text, file, **kw)
    return info.value.errors


def test_corpus_and_expectations_match():
    assert len(FILES) >= 45
    assert sorted(EXPECTED) == FILES


@pytest.mark.parametrize("name", FILES)
def test_malformed_recipe(name):
    text = (CORPUS / name).read_bytes().decode()  # as written: no newline translation
    want = EXPECTED[name]
    errors = errors_of(text, name)
    assert [(e.pos.line, e.pos.col) for e in errors] == [(want["line"], want["col"])], \
        "\n".join(e.render() for e in errors)
    (err,) = errors
    assert want["message"] in err.message
    assert err.file == name
    # The position is inside the file and the caret line is the line it names.
    lines = text.removesuffix("\n").split("\n")  # the lines an editor shows
    assert 1 <= err.pos.line <= len(lines)
    assert err.source_line == lines[err.pos.line - 1]
    # Each corpus file is otherwise valid: its position is never the trivial one.
    assert (err.pos.line, err.pos.col) != (1, 1)


def test_error_is_reported_in_train_exec_mode_too():
    # allow_host_commands only changes `@host > cmd`; other mistakes stay mistakes.
    (path,) = CORPUS.glob("*-duration-unknown-unit.recipe")
    text = path.read_text()
    (err,) = errors_of(text, allow_host_commands=True)
    assert (err.pos.line, err.pos.col) == (8, 7)


SEVERAL = """\
var MODEL = llama
host gpu = placeholder
vra X = 1
tmux.open @gpu as work
@work timeout=5x > python train.py
wait @work "loss (" timeout=1h
@gpu > nvidia-smi
@gpu:/out -> @nowhere:/x
sleep
"""


def test_several_mistakes_are_all_reported_in_line_order():
    errors = errors_of(SEVERAL)
    got = [(e.pos.line, e.pos.col) for e in errors]
    assert got == [(3, 1), (5, 15), (6, 12), (7, 1), (8, 14), (9, 6)]
    assert got == sorted(got)
    messages = [e.message for e in errors]
    assert "unknown command 'vra'" in messages[0]
    assert "bad duration '5x'" in messages[1]
    assert "bad regex" in messages[2]
    assert "@gpu is a host" in messages[3]
    assert "undefined host or storage @nowhere" in messages[4]
    assert "expected 'sleep DURATION'" in messages[5]


def test_errors_on_one_line_are_sorted_by_column():
    # A transfer with two bad endpoints: both are reported, left one first.
    text = "host gpu = placeholder\n@nope:/a -> @nada:/b\n"
    errors = errors_of(text)
    assert [(e.pos.line, e.pos.col) for e in errors] == [(2, 1), (2, 13)]


def test_the_exception_text_lists_every_error():
    info = errors_of(SEVERAL, "train.recipe")
    text = str(RecipeErrors(info))
    assert text.splitlines()[0] == "train.recipe:3:1: unknown command 'vra' (did you mean 'var'?)"
    assert len(text.splitlines()) == 6


def test_render_shows_location_source_line_and_caret():
    text = "var A = 1\nhost gpu = placeholder\n  sleep 5x\n"
    (err,) = errors_of(text, "my.recipe")
    assert str(err) == "my.recipe:3:9: bad duration '5x': unknown unit 'x' (use s, m, h or d)"
    first, source, caret = err.render().split("\n")
    assert first == str(err)
    assert source.strip() == "sleep 5x"
    assert source.endswith("  sleep 5x")
    # The caret stands under the column, in the same indentation as the source line.
    assert caret.strip() == "^"
    assert source[caret.index("^"):].startswith("5x")


def test_render_caret_lines_up_with_tabs():
    text = "host gpu = placeholder\n\tsleep 5x\n"
    (err,) = errors_of(text)
    assert (err.pos.line, err.pos.col) == (2, 8)
    _, source, caret = err.render().split("\n")
    assert source[caret.index("^"):] == "5x"


def test_render_points_past_the_end_for_missing_things():
    (err,) = errors_of("host gpu = placeholder\ntmux.open @gpu\n")
    _, source, caret = err.render().split("\n")
    assert caret.index("^") == len(source)


def test_render_without_source_line_is_one_line():
    err = RecipeError("x.recipe", Pos(4, 2), "boom")
    assert err.render() == "x.recipe:4:2: boom"


def test_error_inside_a_continued_statement_names_the_physical_line():
    text = "host gpu = placeholder\nvast.pick @gpu \\\n    num_gpus=2 \\\n    max_dph=lots\n"
    (err,) = errors_of(text)
    assert (err.pos.line, err.pos.col) == (4, 13)
    assert err.source_line == "    max_dph=lots"


def test_heredoc_bodies_are_not_parsed_as_statements():
    # The body holds things that would be errors as statements; the mistake after it is
    # reported on its own line.
    text = ("host gpu = placeholder\ntmux.open @gpu as w\n@w > cat <<EOF\nslep 1\n@nope > x\n"
            "EOF\nslep 2\n")
    (err,) = errors_of(text)
    assert (err.pos.line, err.pos.col) == (7, 1)


def test_shell_arithmetic_shift_is_not_a_heredoc():
    text = "host gpu = placeholder\ntmux.open @gpu as w\n@w > echo $((1<<4))\nslep 2\n"
    (err,) = errors_of(text)
    assert (err.pos.line, err.pos.col) == (4, 1)
    assert "heredoc" not in err.message


def test_continuation_into_blank_line_is_no_statement():
    r = parse("var A = 1\n\\\n\nvar B = 2\n", "t.recipe")
    assert r.variables == {"A": "1", "B": "2"}


def test_duration_option_of_vast_wait_reads_like_other_durations():
    (err,) = errors_of("vast.wait timeout=5m poll=0s\n")
    assert err.message == "bad duration '0s': must be more than zero"
    assert (err.pos.line, err.pos.col) == (1, 27)
