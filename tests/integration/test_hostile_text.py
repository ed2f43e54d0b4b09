"""A cloud whose words are hostile: escape sequences, an OSC title, a carriage return and a
bidi override in a GPU name, a label and a place, a shell command in a host name. Every path
that shows them shows them as text (trainsh/visible.py), and every command line shown for copying is
quoted for the shell. Against the Vast fake, its `strings` fault."""

from __future__ import annotations

import shlex

from helpers import train, write_recipe

HOSTILE = "RTX\x1b[2J 4090\x1b]0;pwned\x07\r\nrow\u202eevil"
RAW = ("\x1b", "\x07", "\r", "\u202e")


def _clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


def test_cloud_text_is_shown_not_acted_on_and_ssh_lines_are_quoted(tmp_path, vast):
    iid = vast.rent("1001", label="mine")
    pwned = tmp_path / "pwned-host"
    vast.control(strings={"gpu_name": HOSTILE, "geolocation": HOSTILE, "label": HOSTILE,
                          "ssh_host": f"x;touch {pwned}", "public_ipaddr": f"x;touch {pwned}"})
    for args in (["search"], ["list"], ["show", iid]):
        p = train("vast", *args, timeout=60)
        assert p.returncode == 0, p.stderr
        _clean(p.stdout + p.stderr)
        assert "\\x1b[2J" in p.stdout, p.stdout  # shown, as text
    line = next(ln for ln in train("vast", "show", iid).stdout.splitlines() if ln.startswith("ssh"))
    words = shlex.split(line.split(None, 1)[1])
    assert words[-1] == f"root@x;touch {pwned}" and words[0] == "ssh", words  # one word, not a command
    assert not pwned.exists()


def test_a_jobs_lines_status_and_logs_show_cloud_text_as_text(tmp_path, vast):
    vast.control(strings={"gpu_name": HOSTILE, "geolocation": HOSTILE})
    r = write_recipe(tmp_path / "p.recipe", "host gpu = placeholder\nvast.pick @gpu\nvast.cost\n")
    p = train("recipe", "run", str(r), "--no-visual", "--autostop", "0", timeout=120)
    assert p.returncode == 0, p.stderr
    _clean(p.stdout + p.stderr)
    assert "RTX\\x1b[2J 4090" in p.stderr, p.stderr  # the pick line names the GPU, as text
    for args in (["status", "--all"], ["logs", "--last"]):
        out = train("recipe", *args)
        assert out.returncode == 0, out.stderr
        _clean(out.stdout + out.stderr)
