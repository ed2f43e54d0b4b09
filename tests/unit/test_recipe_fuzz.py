"""Property tests: parse() on any text raises nothing but RecipeErrors, at sane positions."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from trainsh.recipe.model import Recipe, RecipeErrors
from trainsh.recipe.parser import parse

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of real recipes, glued together at random so that most lines get deep into the parser.
ATOMS = [
    "var", "host", "storage", "wait", "tmux.open", "tmux.close", "tmux.config", "vast.pick",
    "vast.wait", "vast.start", "vast.stop", "vast.cost", "notify", "sleep", "as", "idle",
    "@gpu", "@work", "@out", "@local", "@9x", "@", "@gpu:", "@gpu:/data", "@out:/x", "./local",
    ">", ">>", "->", "&", "&&", "2>&1", "|", "'", '"', "\\", "\\\\", "#", "=", "==",
    "<<EOF", "<<-EOF", "<<'EOF'", '<<"EOF"', "<<<", "EOF", "\tEOF", "$((1<<2))",
    "5m", "30s", "1h30m", "1.5h", "300", "0s", "5x", "1h1h", "-3m", "m5",
    "timeout=", "timeout=5m", "file=/tmp/f", "port=8080", "port=", "num_gpus=1", "gpu=",
    "delete=true", "exclude=*.pt", "-p", "22", "-i", "-J", "-o", "root@1.2.3.4", "r2:bucket",
    "x3:b", "placeholder", "$MODEL", "${MODEL}", "${secret:HF_TOKEN}", "\\$X", "(", "))",
    "work", "MODEL", "train.py", "\u00e9", "\u2028", "\r", "\x0c", "\x00", "\x85", "\ufeff",
]
SNIPPETS = [
    "var MODEL = llama", "host gpu = placeholder", "storage out = r2:b", "tmux.open @gpu as work",
    "@work > python train.py &", "wait @work idle timeout=2h", "@gpu:/a -> @out:/b",
    "tmux.close @work", "@work > cat <<EOF", "EOF",
]
SEP = st.sampled_from([" ", " ", "", "  ", "\t"])


@st.composite
def recipe_line(draw):
    atoms = draw(st.lists(st.sampled_from(ATOMS), max_size=7))
    out = ""
    for a in atoms:
        out += a + draw(SEP)
    if draw(st.booleans()):
        out = draw(st.sampled_from(SNIPPETS)) + " " + out
    return draw(st.sampled_from(["", "  ", "\t"])) + out


recipe_text = st.lists(st.one_of(recipe_line(), st.sampled_from(SNIPPETS)), max_size=10).map(
    lambda lines: "\n".join(lines)) | st.lists(recipe_line(), max_size=6).map(
    lambda lines: "\n".join(lines) + "\n")


def check(text: str, allow_host_commands: bool) -> None:
    try:
        result = parse(text, "fuzz.recipe", allow_host_commands=allow_host_commands)
    except RecipeErrors as e:
        assert e.errors, "RecipeErrors without errors"
        n = len(text.removeprefix("\ufeff").split("\n"))  # real lines: `\n` ends one, nothing else
        keys = [(err.pos.line, err.pos.col) for err in e.errors]
        assert keys == sorted(keys)
        for err in e.errors:
            assert 1 <= err.pos.line <= n, (err, text)
            assert err.pos.col >= 1, (err, text)
            assert err.message
            assert err.render().startswith(f"fuzz.recipe:{err.pos.line}:{err.pos.col}: ")
    else:
        assert isinstance(result, Recipe)


@FAST
@given(st.text(), st.booleans())
@example("\\\n\n", False)  # a continuation into a blank line once crashed the parser
@example("\\", False)
@example("@w > x <<EOF", True)
def test_arbitrary_text_raises_only_recipe_errors(text, allow):
    check(text, allow)


@FAST
@given(recipe_text, st.booleans())
def test_recipe_like_text_raises_only_recipe_errors(text, allow):
    check(text, allow)


STEPS = ["@work > python train.py &", "wait @work idle timeout=2h", "@gpu:/a -> @out:/b",
         "sleep 5m", "notify done", "@work > cat <<EOF\nbody\nEOF", "vast.pick @gpu num_gpus=1"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(STEPS), max_size=8), st.data())
def test_one_inserted_mistake_is_found_on_its_line(steps, data):
    # A valid recipe; a mistake put on any line must be reported on that line.
    body = ["var MODEL = llama", "host gpu = placeholder", "storage out = r2:b",
            "tmux.open @gpu as work"] + "\n".join(steps).splitlines() + ["tmux.close @work"]
    parse("\n".join(body) + "\n", "ok.recipe")  # the base is valid
    # Not inside a heredoc body, where anything goes.
    inside = {i for i, line in enumerate(body) if line in ("body", "EOF")}
    at = data.draw(st.sampled_from([i for i in range(len(body) + 1) if i not in inside]))
    bad = data.draw(st.sampled_from(["slep 5m", "sleep 5x", "wait @work", "@nobody > ls",
                                     "vast.pick @gpu num_gpus=x", "tmux.close @nobody",
                                     "@gpu:/a -> @nowhere:/b", "notify 'unclosed"]))
    broken = body[:at] + ["  " + bad] + body[at:]
    try:
        parse("\n".join(broken) + "\n", "bad.recipe")
    except RecipeErrors as e:
        assert at + 1 in [err.pos.line for err in e.errors], e
    else:
        raise AssertionError(f"no error for {bad!r} at line {at + 1}")
