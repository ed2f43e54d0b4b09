"""The README and docs/ stay true to the code: the reference is what the parsers give now,
every recipe shown passes `train recipe check`, and every `train`/`ow` line shown parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers import train

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\s*$")
# The fence tags the pages use: a recipe is ```recipe, a command line ```sh or ```console.
TAGS = {"recipe", "python", "sh", "console", "text", "toml"}
SHELL_TAGS = {"sh", "console"}
# Where a shell line's first command ends: what follows is another command or a redirect.
OPERATORS = {"|", "||", "&", "&&", ";", ";;", ">", ">>", "<", "<<", "(", ")"}


def blocks():
    """(page, line of the opening fence, tag, [(line number, text)]) for each fenced block."""
    found = []
    for page in PAGES:
        open_at, tag, body = None, "", []
        for n, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
            m = FENCE.match(line)
            if open_at is None and m:
                open_at, tag, body = n, m.group(1), []
            elif open_at is not None and line.startswith("```"):
                found.append((page, open_at, tag, body))
                open_at = None
            elif open_at is not None:
                body.append((n, line))
        assert open_at is None, f"{page.relative_to(ROOT)}:{open_at}: a fence that is never closed"
    return found


def where(page: Path, line: int) -> str:
    return f"{page.relative_to(ROOT)}:{line}"


BLOCKS = blocks()
RECIPES = [pytest.param(page, body, id=where(page, n)) for page, n, tag, body in BLOCKS if tag == "recipe"]
PROGRAMS = [pytest.param(page, body, id=where(page, n)) for page, n, tag, body in BLOCKS if tag == "python"]


def command_lines():
    """Each line of a shell block that runs `train` or `ow`, with `\\` continuations joined."""
    found = []
    for page, _, tag, body in BLOCKS:
        if tag not in SHELL_TAGS:
            continue
        joined: list[tuple[int, str]] = []
        for n, line in body:
            if joined and joined[-1][1].endswith("\\"):
                joined[-1] = (joined[-1][0], joined[-1][1][:-1] + " " + line.strip())
            else:
                joined.append((n, line))
        for n, line in joined:
            text = line.strip().removeprefix("$ ")
            if text.startswith(("train ", "ow ")):
                found.append(pytest.param(text, id=where(page, n)))
    return found


def test_the_reference_is_what_the_parsers_give():
    from trainsh.cli.reference import generate

    on_disk = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert on_disk == generate(), "docs/reference.md is stale: run ./dev docs"


def test_every_fence_says_what_it_holds():
    # An untagged block would slip past the checks below.
    for page, n, tag, _ in BLOCKS:
        assert tag in TAGS, f"{where(page, n)}: fence tag {tag!r}, not one of {sorted(TAGS)}"
    assert len(RECIPES) >= 5


def test_the_readme_starts_with_demo_and_test():
    page, n, tag, body = BLOCKS[0]
    assert page.name == "README.md" and tag == "sh"
    assert [line.split()[:2] for _, line in body[:2]] == [["./dev", "demo"], ["./dev", "test"]]


def test_the_readme_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f"(docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
        second = page.read_text(encoding="utf-8").split("\n")[2]
        assert second.strip(), f"docs/{page.name}: the line after the title says what it covers"


@pytest.mark.parametrize("page, body, suffix", [pytest.param(*p.values, ".recipe", id=p.id) for p in RECIPES]
                         + [pytest.param(*p.values, ".py", id=p.id) for p in PROGRAMS])
def test_each_recipe_shown_checks(page, body, suffix, tmp_path):
    # (a Python recipe is imported and its main() and --vars checked: nothing runs)
    recipe = tmp_path / f"shown{suffix}"
    recipe.write_text("".join(line + "\n" for _, line in body), encoding="utf-8")
    r = train("recipe", "check", str(recipe))
    assert r.returncode == 0, f"{where(page, body[0][0] - 1)}: the recipe does not check:\n{r.stderr}{r.stdout}"


def words(line: str) -> list[str]:
    """The first command's words, split as a shell would; a comment and what follows an
    operator (a pipe, `&&`, a redirect) are left out."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    out = []
    for word in lex:
        if word in OPERATORS:
            break
        out.append(word)
    return out


@pytest.mark.parametrize("line", command_lines())
def test_each_command_line_shown_parses(line):
    argv = words(line)
    try:
        if argv[0] == "train":
            from trainsh.cli import build_parser

            args, extra = build_parser().parse_known_args(argv[1:])
            assert not extra, f"{line!r}: train does not take {extra}"
        else:
            from trainsh.cli.ow import build_parser, split_command

            own, command = split_command(argv[1:])
            args = build_parser().parse_args(own)
            assert args.cmd != "exec" or command, f"{line!r}: ow exec without a command"
    except SystemExit as e:
        pytest.fail(f"{line!r} does not parse (exit {e.code})")


def test_lines_split_as_a_shell_splits_them():
    assert words("train completion fish | source") == ["train", "completion", "fish"]
    assert words("train exec '@gpu1 > nvidia-smi'   # note") == ["train", "exec", "@gpu1 > nvidia-smi"]
    assert words("train host add a b && echo done") == ["train", "host", "add", "a", "b"]
