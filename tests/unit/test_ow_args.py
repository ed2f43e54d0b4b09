"""ow's own words against the command's: where the command starts, how it is passed on, and
how an env file reads."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from trainsh.owargs import split_command
from trainsh.runtime.ow import OwError, command_text, parse_env_file


@pytest.mark.parametrize("argv,own,cmd", [
    (["exec", "python", "-u", "t.py", "--gpu", "x"], ["exec"], ["python", "-u", "t.py", "--gpu", "x"]),
    (["exec", "--gpu", "L40", "--mount", ".:/w", "ls", "-la"], ["exec", "--gpu", "L40", "--mount", ".:/w"],
     ["ls", "-la"]),
    (["exec", "--gpu=L40", "--no-sync", "--", "--weird", "arg"], ["exec", "--gpu=L40", "--no-sync"],
     ["--weird", "arg"]),
    (["exec", "--no-terminate", "-"], ["exec", "--no-terminate"], ["-"]),
    (["exec", "--spot", "--bid", "0.5", "--recover", "2", "python", "t.py"],
     ["exec", "--spot", "--bid", "0.5", "--recover", "2"], ["python", "t.py"]),
    (["--debug", "exec", "true"], ["--debug", "exec"], ["true"]),
    (["exec", "--gpu"], ["exec", "--gpu"], []),
    (["ssh", "--gpu", "L40"], ["ssh", "--gpu", "L40"], []),
])
def test_the_command_starts_at_the_first_word_that_is_not_ows(argv, own, cmd):
    assert split_command(argv) == (own, cmd)


def test_several_words_are_passed_exactly_one_word_is_a_shell_line():
    words = ["printf", "%s|", "it's", 'a "b"', "$HOME", "x;y"]
    out = subprocess.run(["sh", "-c", command_text(words)], capture_output=True, text=True).stdout
    assert out == "it's|a \"b\"|$HOME|x;y|"
    assert subprocess.run(["sh", "-c", command_text(["echo a && echo b"])],
                          capture_output=True, text=True).stdout == "a\nb\n"
    assert command_text(["true"]) == "true" and shlex.split(command_text(["a b", "c"]))[1:] == ["a b", "c"]


def test_env_file_forms(tmp_path):
    f = tmp_path / ".env"
    f.write_text("# comment\n\nA=1\nexport B = two words \nC='single $x # not a comment'\n"
                 'D="double \\"q\\" \\n end"\nE=value # comment\nF=\n')
    assert parse_env_file(str(f)) == {"A": "1", "B": "two words", "C": "single $x # not a comment",
                                      "D": 'double "q" \n end', "E": "value", "F": ""}
    f.write_text('A="C:\\\\new\\\\table"\nB="a \\\\\\"b\\\\\\" \\\\\\\\n"\n')
    assert parse_env_file(str(f)) == {"A": "C:\\new\\table", "B": 'a \\"b\\" \\\\n'}


@pytest.mark.parametrize("text,line,words", [
    ("A=1\nnot an assignment\n", 2, "KEY=VALUE"),
    ("1A=x\n", 1, "KEY=VALUE"),
    ("A='open\n", 1, "unclosed"),
    ('A="open\n', 1, "unclosed"),
])
def test_env_file_mistakes_name_the_line(tmp_path, text, line, words):
    f = tmp_path / "bad.env"
    f.write_text(text)
    with pytest.raises(OwError) as e:
        parse_env_file(str(f))
    assert str(e.value).startswith(f"{f}:{line}: ") and words in str(e.value) and e.value.code == 2
