"""The `train` command line as a user meets it: help, recipes by name, errors, exec, jobs, logs,
status after an interruption, resume, and notifications. Every test runs the real CLI."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import TRAIN, interrupted, tmux, train, wait_until, write_recipe

from trainsh import __version__
from trainsh.runtime.journal import Journal


# ---- helpers -------------------------------------------------------------------------------

def no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stderr, p.stderr
    assert "Traceback" not in p.stdout, p.stdout


def one_line_error(p: subprocess.CompletedProcess, code: int = 2) -> str:
    """A user error: exit `code`, exactly one line on stderr starting with `train:`."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    no_traceback(p)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("train: "), p.stderr
    return lines[0]


ERROR_HEAD = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>\S.*)$")


def recipe_errors(stderr: str, source_text: str) -> list[tuple[str, int, int, str]]:
    """Parse `file:line:col: message` + source line + caret blocks; check every line of stderr
    belongs to one (or is the 'N errors' summary) and each caret points at its column."""
    src_lines = source_text.splitlines()
    lines = stderr.splitlines()
    out = []
    i = 0
    while i < len(lines):
        if re.fullmatch(r"\d+ errors", lines[i]):
            assert i == len(lines) - 1, f"summary is not last: {stderr}"
            assert int(lines[i].split()[0]) == len(out)
            break
        m = ERROR_HEAD.match(lines[i])
        assert m, f"not an error line: {lines[i]!r}\n{stderr}"
        line, col = int(m["line"]), int(m["col"])
        assert i + 2 < len(lines), stderr
        assert lines[i + 1] == "    " + src_lines[line - 1].expandtabs(1), stderr
        caret = lines[i + 2]
        assert caret.strip() == "^", stderr
        assert caret.index("^") == 4 + col - 1, f"caret not under column {col}: {stderr}"
        out.append((m["file"], line, col, m["msg"]))
        i += 3
    return out


def jobs_table() -> dict[str, str]:
    """job id -> status, from `train recipe jobs`."""
    p = train("recipe", "jobs")
    assert p.returncode == 0, p.stderr
    rows = {}
    for ln in p.stdout.splitlines()[1:]:
        parts = ln.split()
        if parts:
            rows[parts[0]] = parts[1]
    return rows


def job_ids() -> list[str]:
    j = Journal()
    try:
        return [job.id for job in j.jobs()]
    finally:
        j.close()


def write_editor(tmp_path: Path, line: str) -> Path:
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{line}' >> \"$1\"\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(text: str) -> None:
    home = Path(os.environ["TRAINSH_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")


# ---- help and version ----------------------------------------------------------------------

def test_help_and_version_name_what_there_is():
    p = train("--help")
    assert p.returncode == 0 and not p.stderr
    for word in ("recipe", "exec", "transfer", "--version", "train recipe run"):
        assert word in p.stdout

    p = train("recipe", "--help")
    assert p.returncode == 0
    for sub in ("run", "check", "list", "show", "new", "edit", "logs", "status", "jobs", "resume"):
        assert re.search(rf"^\s+{sub}\s+\S", p.stdout, re.M), f"{sub} missing:\n{p.stdout}"

    p = train("recipe", "run", "--help")
    assert p.returncode == 0
    for flag in ("--var NAME=VALUE", "--host NAME=SPEC", "--no-visual", "--keep-sessions", "--pick-host"):
        assert flag in p.stdout

    p = train("--version")
    assert p.returncode == 0
    assert p.stdout.strip() == f"trainsh {__version__}"

    p = train()  # no command: the help, not an error
    assert p.returncode == 0 and "recipe" in p.stdout


def test_argparse_errors_are_one_line_pointing_at_the_help():
    for args, where in ((["recipe", "run"], "train recipe run --help"), (["bogus"], "train --help"),
                        (["recipe", "logs", "--nope"], "train recipe logs --help")):
        line = one_line_error(train(*args))
        assert f"(see '{where}')" in line, line


# ---- recipes by name -----------------------------------------------------------------------

def test_new_list_show_check_run_a_recipe_by_name(tmp_path):
    folder = Path(os.environ["TRAINSH_HOME"]) / "recipes"
    p = train("recipe", "list")
    assert p.returncode == 0 and "no recipes" in p.stdout

    p = train("recipe", "new", "demo")
    assert p.returncode == 0, p.stderr
    path = folder / "demo.recipe"
    assert path.is_file()
    assert str(path) in p.stdout
    original = path.read_text()

    # never overwrites
    line = one_line_error(train("recipe", "new", "demo"))
    assert "exists" in line
    assert path.read_text() == original

    p = train("recipe", "list")
    assert p.returncode == 0
    assert re.search(r"^demo\s", p.stdout, re.M), p.stdout

    p = train("recipe", "show", "demo")
    assert p.returncode == 0, p.stderr
    assert str(path) in p.stdout
    assert re.search(r"var\s+WORKDIR = /tmp/demo", p.stdout)
    assert re.search(r"host\s+gpu = local", p.stdout)
    assert "5 steps" in p.stdout
    assert "tmux.open @gpu as work" in p.stdout and "tmux.close @work" in p.stdout

    p = train("recipe", "check", "demo")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{path}: ok (5 steps)"

    # by name, not path; WORKDIR moved into tmp_path so the template writes nothing in /tmp
    p = train("recipe", "run", "demo", "--no-visual", "--var", f"WORKDIR={tmp_path}/work", timeout=30)
    assert p.returncode == 0, p.stderr
    assert "hello from demo" in p.stderr
    assert (tmp_path / "work").is_dir()
    assert list(jobs_table().values()) == ["done"]


@pytest.mark.parametrize("name", ["bad/name", "a b", "", "..", ".recipe", "../escape"])
def test_new_rejects_a_bad_name(name):
    line = one_line_error(train("recipe", "new", name))
    assert "bad recipe name" in line
    folder = Path(os.environ["TRAINSH_HOME"]) / "recipes"
    assert not folder.exists() or not any(folder.iterdir())


def test_run_check_show_of_a_missing_recipe_say_so_in_one_line():
    for cmd in ("run", "check", "show", "edit"):
        line = one_line_error(train("recipe", cmd, "missing-name"))
        assert "missing-name" in line


# ---- mistakes in recipes -------------------------------------------------------------------

BAD = """\
var X = 1
host gpu = local
tmux.opn @gpu as w
@w > touch ran
wait @w idle timeout=5x
sleep
"""


def test_check_reports_every_mistake_with_a_caret(tmp_path):
    write_recipe(tmp_path / "bad.recipe", BAD)
    p = train("recipe", "check", "bad.recipe")
    assert p.returncode == 2
    no_traceback(p)
    errors = recipe_errors(p.stderr, BAD)
    assert [(f, ln) for f, ln, _, _ in errors] == [("bad.recipe", 3), ("bad.recipe", 4),
                                                   ("bad.recipe", 5), ("bad.recipe", 6)]
    msgs = [m for *_, m in errors]
    assert "did you mean 'tmux.open'" in msgs[0]
    assert "session 'w'" in msgs[1]
    assert "5x" in msgs[2] and errors[2][2] == BAD.splitlines()[4].index("5x") + 1
    assert "sleep" in msgs[3]
    assert p.stdout == ""


def test_check_several_files_reports_each_and_fails_if_any_is_bad(tmp_path):
    write_recipe(tmp_path / "bad.recipe", BAD)
    write_recipe(tmp_path / "good.recipe", "tmux.open @local as w\n@w > true\n")
    p = train("recipe", "check", "good.recipe", "bad.recipe")
    assert p.returncode == 2
    assert "good.recipe: ok (2 steps)" in p.stdout
    assert len(recipe_errors(p.stderr, BAD)) == 4


PLACEHOLDERS = """
var EPOCHS = 3
host gpu = placeholder
storage out = placeholder
tmux.open @gpu as w
@w > echo $EPOCHS
@gpu:/tmp/x -> @out:/y
"""


def test_check_names_placeholders_and_with_run_flags_refuses_what_run_would(tmp_path):
    write_recipe(tmp_path / "p.recipe", PLACEHOLDERS)
    p = train("recipe", "check", "p.recipe")  # placeholders are for the run to fill
    assert p.returncode == 0, p.stderr
    assert "p.recipe: ok (3 steps)" in p.stdout
    assert "to fill when it runs: host gpu is a placeholder" in p.stdout
    assert "--storage out=SPEC" in p.stdout

    p = train("recipe", "check", "p.recipe", "--host", "gpu=vast:12", "--var", "EPOCH=4")
    assert one_line_error(p).startswith("train: --var EPOCH=...") and "did you mean EPOCHS?" in p.stderr
    p = train("recipe", "check", "p.recipe", "--host", "gpu=vast:12")
    assert one_line_error(p) == "train: p.recipe:3:9: storage out is a placeholder: give it a " \
                                "storage with --storage out=SPEC"
    p = train("recipe", "check", "p.recipe", "--host", "gpu=nope:x:y", "--storage", "out=/tmp/o")
    assert "--host gpu=nope:x:y: bad host name" in one_line_error(p)
    p = train("recipe", "check", "p.recipe", "--host", "gpu=vast:12", "--storage", "out=/tmp/o",
              "--var", "EPOCHS=4")
    assert p.returncode == 0 and p.stdout == "p.recipe: ok (3 steps)\n", p.stderr
    assert run_preflight_agrees(tmp_path)


def run_preflight_agrees(tmp_path) -> bool:
    """`run` with the flags check refused refuses them in the same words, before any step."""
    p = train("recipe", "run", "p.recipe", "--no-visual", "--host", "gpu=vast:12")
    return p.returncode == 2 and "storage out is a placeholder" in p.stderr and "job " not in p.stdout


def test_run_of_a_malformed_recipe_runs_nothing(tmp_path):
    write_recipe(tmp_path / "bad.recipe", BAD.replace("tmux.opn", "tmux.open"))
    p = train("recipe", "run", "bad.recipe", "--no-visual")
    assert p.returncode == 2
    no_traceback(p)
    errors = recipe_errors(p.stderr, BAD)
    assert [ln for _, ln, _, _ in errors] == [5, 6]
    assert not (tmp_path / "ran").exists()
    p = train("recipe", "jobs")
    assert p.returncode == 0 and "no jobs yet" in p.stdout


def test_unreadable_recipes_are_one_line_errors(tmp_path):
    (tmp_path / "binary.recipe").write_bytes(b"\xff\xfe\x00garbage")
    line = one_line_error(train("recipe", "check", "binary.recipe"))
    assert "UTF-8" in line
    (tmp_path / "folder.recipe").mkdir()
    one_line_error(train("recipe", "run", "folder.recipe"))


def test_a_command_hidden_after_a_comment_never_runs(tmp_path):
    marker = tmp_path / "touched"
    for sep in ("\r", "\u2028", "\x0c", "\x85", "\x00"):
        (tmp_path / "hide.recipe").write_bytes(
            f"tmux.open @local as w\n# note: nothing below runs{sep}@w > touch {marker}\n".encode())
        p = train("recipe", "run", "hide.recipe", "--no-visual")
        assert p.returncode == 2, (repr(sep), p.stdout, p.stderr)
        assert p.stderr.startswith("hide.recipe:2:27: "), p.stderr
        assert "Traceback" not in p.stderr and not marker.exists()
    # A byte-order mark and CRLF line ends are how some editors save: both are fine.
    (tmp_path / "crlf.recipe").write_bytes(f"\ufefftmux.open @local as w\r\n@w > touch {marker}\r\n".encode())
    p = train("recipe", "run", "crlf.recipe", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert marker.exists()


# ---- --var and --host ----------------------------------------------------------------------

PLACEHOLDER = """\
host gpu = placeholder
tmux.open @gpu as w
@w > echo ran-on-$((40+2)) > where.txt
tmux.close @w
"""


def test_bad_var_and_host_options_are_one_line_errors(tmp_path):
    write_recipe(tmp_path / "ph.recipe", PLACEHOLDER)
    line = one_line_error(train("recipe", "run", "ph.recipe", "--var", "NOEQUALS"))
    assert "--var" in line and "NAME=VALUE" in line and "NOEQUALS" in line
    line = one_line_error(train("recipe", "run", "ph.recipe", "--var", "=x"))
    assert "--var" in line
    line = one_line_error(train("recipe", "run", "ph.recipe", "--host", "tpu=local"))
    assert "tpu" in line and "gpu" in line  # names the wrong host and the ones there are
    line = one_line_error(train("recipe", "run", "ph.recipe", "--host", "gpu"))
    assert "--host" in line
    line = one_line_error(train("recipe", "run", "ph.recipe", "--host", "gpu="))
    assert "--host gpu=" in line
    line = one_line_error(train("recipe", "run", "ph.recipe", "--pick-host", "tpu"))
    assert "--pick-host tpu" in line and "gpu" in line
    line = one_line_error(train("recipe", "run", "ph.recipe", "--pick-host", "gpu", "--host", "gpu=local"))
    assert "--pick-host gpu" in line
    line = one_line_error(train("exec", "--var", "NOEQUALS", "@local > true"))
    assert "--var" in line
    assert not (tmp_path / "where.txt").exists()
    assert jobs_table() == {}


def test_host_override_fills_a_placeholder(tmp_path):
    write_recipe(tmp_path / "ph.recipe", PLACEHOLDER)
    line = one_line_error(train("recipe", "run", "ph.recipe", "--no-visual", timeout=30))
    assert line == "train: ph.recipe:1:6: host gpu is a placeholder: give it a machine with --host gpu=SPEC"
    assert jobs_table() == {}  # refused before anything ran

    p = train("recipe", "run", "ph.recipe", "--no-visual", "--host", "gpu=local", timeout=30)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "where.txt").read_text() == "ran-on-42\n"
    assert sorted(jobs_table().values()) == ["done"]


STORAGE_PLACEHOLDER = """\
var MODEL = small
storage out = placeholder
tmux.open @local as w
@w > touch ran
./data/ -> @out:/runs/
"""


def test_a_storage_placeholder_is_filled_with_storage_not_host(tmp_path):
    write_recipe(tmp_path / "st.recipe", STORAGE_PLACEHOLDER)
    line = one_line_error(train("recipe", "run", "st.recipe", "--host", "out=lake"))
    assert line == "train: --host out=...: out is a storage: give it with --storage out=lake"
    line = one_line_error(train("recipe", "run", "st.recipe"))
    assert line == ("train: st.recipe:2:9: storage out is a placeholder: give it a storage "
                    "with --storage out=SPEC")
    line = one_line_error(train("recipe", "run", "st.recipe", "--storage", "outt=local:/x"))
    assert "the recipe has no storage 'outt' (storages: out)" in line
    line = one_line_error(train("recipe", "run", "st.recipe", "--storage", "out=r3:b"))
    assert "--storage out=r3:b: unknown storage kind 'r3:'" in line
    line = one_line_error(train("recipe", "run", "st.recipe", "--storage", "out="))
    assert "--storage out=" in line
    write_recipe(tmp_path / "ph.recipe", PLACEHOLDER)
    line = one_line_error(train("recipe", "run", "ph.recipe", "--storage", "gpu=lake"))
    assert line == "train: --storage gpu=...: gpu is a host: give it with --host gpu=lake"
    assert not (tmp_path / "ran").exists() and not (tmp_path / "where.txt").exists()
    assert jobs_table() == {}

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "m.bin").write_bytes(b"weights")
    (tmp_path / "store").mkdir()
    p = train("recipe", "run", "st.recipe", "--no-visual", "--storage",
              f"out=local:{tmp_path}/store", timeout=60)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "store/runs/m.bin").read_bytes() == b"weights"


def test_every_unfilled_placeholder_is_named_at_once(tmp_path):
    write_recipe(tmp_path / "two.recipe", "host gpu = placeholder\nstorage out = placeholder\n"
                 "tmux.open @gpu as w\n./a -> @out:/a\n")
    p = train("recipe", "run", "two.recipe")
    assert p.returncode == 2
    no_traceback(p)
    assert p.stderr.splitlines() == [
        "train: two.recipe:1:6: host gpu is a placeholder: give it a machine with --host gpu=SPEC",
        "train: two.recipe:2:9: storage out is a placeholder: give it a storage with --storage out=SPEC"]
    assert jobs_table() == {}


def test_an_unknown_var_is_an_error_with_a_did_you_mean(tmp_path):
    write_recipe(tmp_path / "v.recipe", "var MODEL = small\nvar EPOCHS = 1\n"
                 "tmux.open @local as w\n@w > touch ran\n")
    line = one_line_error(train("recipe", "run", "v.recipe", "--var", "MODLE=big"))
    assert line == "train: --var MODLE=...: the recipe has no variable 'MODLE' (did you mean MODEL?)"
    line = one_line_error(train("recipe", "run", "v.recipe", "--var", "epochs=3"))
    assert "(did you mean EPOCHS?)" in line
    line = one_line_error(train("recipe", "run", "v.recipe", "--var", "NOPE=1"))
    assert "the recipe has no variable 'NOPE' (its variables: MODEL, EPOCHS)" in line
    line = one_line_error(train("exec", "--var", "NOPE=1", "@local > touch ran"))
    assert "no variable 'NOPE' (it defines none; add 'var NOPE = ...')" in line
    assert not (tmp_path / "ran").exists()
    assert jobs_table() == {}
    p = train("recipe", "run", "v.recipe", "--no-visual", "--var", "MODEL=big", timeout=30)
    assert p.returncode == 0, p.stderr


CLOUD = """\
host gpu = placeholder
host spare = runpod:4242
tmux.open @local as w
@w > touch ran
vast.pick @gpu num_gpus=1
vast.wait timeout=5m
"""


def test_check_passes_cloud_recipes_and_a_run_without_a_key_says_so(tmp_path, monkeypatch):
    # (what this version cannot run is refused by one registry: tests/unit/test_preflight.py
    # shows it with entries taken out; every step and host kind a recipe can name runs now)
    monkeypatch.delenv("VAST_API_KEY", raising=False)  # the key is missing: no request is made
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    write_recipe(tmp_path / "cloud.recipe", CLOUD)
    p = train("recipe", "check", "cloud.recipe")
    assert p.returncode == 0 and "ok" in p.stdout, p.stdout + p.stderr
    # the placeholder vast.pick fills is not reported as unfilled; a host given by --host is
    # no RunPod host any more (and without a Vast.ai key, the pick says so)
    p = train("recipe", "run", "cloud.recipe", "--host", "spare=local")
    assert "placeholder" not in p.stderr and "@spare" not in p.stderr and "vast.pick" in p.stderr
    assert p.returncode == 1 and "VAST_API_KEY" in p.stderr
    no_traceback(p)


# ---- edit ----------------------------------------------------------------------------------

def test_edit_checks_the_recipe_after_the_editor(tmp_path, monkeypatch):
    monkeypatch.delenv("VISUAL", raising=False)
    assert train("recipe", "new", "ed").returncode == 0
    path = Path(os.environ["TRAINSH_HOME"]) / "recipes" / "ed.recipe"

    monkeypatch.setenv("EDITOR", str(write_editor(tmp_path, 'notify "edited"')))
    p = train("recipe", "edit", "ed")
    assert p.returncode == 0, p.stderr
    assert path.read_text().endswith('notify "edited"\n')  # the editor really ran on the file
    assert p.stdout.strip() == f"{path}: ok (6 steps)"

    monkeypatch.setenv("EDITOR", str(write_editor(tmp_path, "tmux.opn @gpu as x")))
    p = train("recipe", "edit", "ed")
    assert p.returncode == 2
    no_traceback(p)
    text = path.read_text()
    errors = recipe_errors(p.stderr, text)
    assert len(errors) == 1
    assert errors[0][1] == len(text.splitlines())  # the line the editor added
    assert "did you mean 'tmux.open'" in errors[0][3]


def test_edit_with_a_failing_or_missing_editor_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("VISUAL", raising=False)
    assert train("recipe", "new", "ed").returncode == 0
    monkeypatch.setenv("EDITOR", "false")
    line = one_line_error(train("recipe", "edit", "ed"), code=1)
    assert "editor exited with code 1" in line
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    line = one_line_error(train("recipe", "edit", "ed"))
    assert "no-such-editor" in line and "Error:" not in line
    monkeypatch.setenv("EDITOR", "vim 'unbalanced")
    line = one_line_error(train("recipe", "edit", "ed"))
    assert "editor" in line


# ---- exec ----------------------------------------------------------------------------------

def test_exec_runs_a_command_on_the_host():
    p = train("exec", "@local > echo hi", timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hi\n"
    assert list(jobs_table().values()) == ["done"]
    # it ran in a throw-away session, closed when the command ended
    j = Journal()
    try:
        (job,) = j.jobs()
        assert [(s["name"], s["host"], s["status"]) for s in j.sessions(job.id)] == [
            ("local:1", "local", "closed")]
    finally:
        j.close()
    assert tmux("list-sessions", "-F", "#{session_name}").stdout == ""
    assert "left open" not in p.stderr


def test_an_interrupted_exec_resumes_in_its_throw_away_session(tmp_path):
    p = interrupted("exec", "--no-visual", "@local > touch started; "
                    "while [ ! -e release ]; do sleep 0.05; done; echo finished",
                    once=tmp_path / "started")
    assert p.returncode == 130, p.stderr
    (job_id,) = job_ids()
    assert tmux("list-sessions", "-F", "#{session_name}").stdout == f"local-{job_id}-1\n"
    (tmp_path / "release").touch()
    p = train("recipe", "resume", "--no-visual", timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "finished\n"
    assert jobs_table() == {job_id: "done"}
    assert tmux("list-sessions", "-F", "#{session_name}").stdout == ""


def test_exec_reports_the_exit_code_of_a_failed_command():
    p = train("exec", "@local > exit 3", timeout=30)
    assert p.returncode == 3  # as the command ended, for scripts that run train exec
    no_traceback(p)
    assert "exited with code 3" in p.stderr
    assert "<exec>:1" in p.stderr
    assert list(jobs_table().values()) == ["failed"]


def test_exec_several_arguments_are_several_lines(tmp_path):
    p = train("exec", "tmux.open @local as w", "@w > echo from-$((6*7))-session > s.txt; cat s.txt",
              "wait @w idle", timeout=30)
    assert p.returncode == 0, p.stderr
    assert "from-42-session" in p.stderr
    assert (tmp_path / "s.txt").read_text() == "from-42-session\n"
    assert "[3/3] wait @w idle" in p.stderr


@pytest.mark.parametrize("dsl", [[""], ["# just a comment"], ["", "   ", "# two"], ["var X = 1"]])
def test_exec_with_nothing_to_run_is_a_clear_error(dsl):
    line = one_line_error(train("exec", *dsl))
    assert "nothing to run" in line
    assert jobs_table() == {}


def test_exec_syntax_errors_point_into_the_arguments():
    p = train("exec", "tmux.opn @local as w")
    assert p.returncode == 2
    no_traceback(p)
    errors = recipe_errors(p.stderr, "tmux.opn @local as w")
    assert errors == [("<exec>", 1, 1, "unknown command 'tmux.opn' (did you mean 'tmux.open'?)")]

    lines = ["tmux.open @local as w", "wait @w idle timeout=forever"]
    p = train("exec", *lines)
    assert p.returncode == 2
    no_traceback(p)
    errors = recipe_errors(p.stderr, "\n".join(lines))
    assert [(f, ln) for f, ln, _, _ in errors] == [("<exec>", 2)]
    assert jobs_table() == {}


# ---- jobs and logs -------------------------------------------------------------------------

def test_jobs_and_logs_show_each_job_and_step(tmp_path):
    p = train("recipe", "logs")
    assert p.returncode == 0 and "no jobs yet" in p.stdout
    p = train("recipe", "logs", "--last")
    assert p.returncode == 0 and "no jobs yet" in p.stdout
    p = train("recipe", "jobs")
    assert p.returncode == 0 and "no jobs yet" in p.stdout

    write_recipe(tmp_path / "ok.recipe", """
tmux.open @local as w
@w > echo word-$((1000+337))
@w > echo second-$((2+2)); echo third-$((3+3))
tmux.close @w
""")
    write_recipe(tmp_path / "fail.recipe", """
tmux.open @local as w
@w > echo before-failing; (exit 4)
@w > echo never
""")
    assert train("recipe", "run", "ok.recipe", "--no-visual", timeout=30).returncode == 0
    ok_id = job_ids()[0]
    assert train("recipe", "run", "fail.recipe", "--no-visual", timeout=30).returncode == 1
    fail_id = job_ids()[0]

    table = jobs_table()
    assert table == {ok_id: "done", fail_id: "failed"}
    p = train("recipe", "jobs")
    assert str(tmp_path / "ok.recipe") in p.stdout and str(tmp_path / "fail.recipe") in p.stdout

    p = train("recipe", "logs")
    assert p.returncode == 0
    listed = [ln.split()[0] for ln in p.stdout.splitlines() if re.match(r"[0-9a-f]{8}\s", ln)]
    assert listed == [fail_id, ok_id]  # newest first
    assert f"{ok_id}/job.log" in p.stdout

    # --last: the failed job, each step with its status and exit code, the output under it
    p = train("recipe", "logs", "--last")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith(f"job {fail_id}  failed")
    assert any(ln.startswith("error: step 2") and "exited with code 4" in ln for ln in out)
    i = next(i for i, ln in enumerate(out) if ln.startswith("[2] line 2 failed exit 4"))
    assert out[i + 1] == "    error: command exited with code 4"
    assert out[i + 2] == "    | before-failing"
    assert not any("[3]" in ln for ln in out)  # step 3 never ran

    # by a unique prefix: the ok job, output lines under their own steps
    prefix = next(ok_id[:n] for n in range(1, 9) if not fail_id.startswith(ok_id[:n]))
    p = train("recipe", "logs", prefix)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0].startswith(f"job {ok_id}  done")
    i = next(i for i, ln in enumerate(out) if ln.startswith("[2] line 2 done exit 0"))
    assert out[i + 1] == "    | word-1337"
    j = next(i for i, ln in enumerate(out) if ln.startswith("[3] line 3 done exit 0"))
    assert out[j + 1: j + 3] == ["    | second-4", "    | third-6"]
    assert re.match(r"\[4\] line 4 done exit 0", out[j + 3])
    assert out[-1] == f"full log: {Path(os.environ['TRAINSH_HOME']) / 'jobs' / ok_id / 'job.log'}"


def test_logs_of_an_unknown_or_ambiguous_job_is_a_one_line_error():
    line = one_line_error(train("recipe", "logs", "nosuchjob"))
    assert "nosuchjob" in line
    # make jobs until two ids share their first character (at most 17: 16 hex digits)
    for _ in range(17):
        assert train("exec", "@local > true").returncode == 0
        ids = job_ids()
        firsts = [i[0] for i in ids]
        dup = next((c for c in firsts if firsts.count(c) > 1), None)
        if dup:
            break
    line = one_line_error(train("recipe", "logs", dup))
    assert re.search(rf"'{dup}' matches [2-9]\d* jobs", line), line
    one_line_error(train("recipe", "resume", dup))


def test_logs_of_exec_jobs_show_the_host_command_output():
    assert train("exec", "@local > echo exec-$((5*5))", timeout=30).returncode == 0
    p = train("recipe", "logs", "--last")
    assert p.returncode == 0
    out = p.stdout.splitlines()
    i = next(i for i, ln in enumerate(out) if ln.startswith("[1] line 1 done exit 0"))
    assert out[i + 1] == "    | exec-25"


# ---- status, interruption and resume -------------------------------------------------------

WAITING = """
tmux.open @local as w
@w > echo one >> log.txt
@w > touch started; while [ ! -e release ]; do sleep 0.05; done; echo two >> log.txt
@w > echo three >> log.txt
tmux.close @w
"""


def test_status_shows_an_interrupted_job_with_its_attach_line_then_resume_finishes(tmp_path):
    p = train("recipe", "status")
    assert p.returncode == 0 and "no running or interrupted jobs" in p.stdout

    r = write_recipe(tmp_path / "wait.recipe", WAITING)
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def step3_running():
            j = Journal()
            try:
                jobs = j.jobs(1)
                steps = j.steps(jobs[0].id) if jobs else []
                return len(steps) > 2 and steps[2]["status"] == "running"
            finally:
                j.close()
        wait_until(lambda: (tmp_path / "started").exists(), timeout=15, what="step 3 to start")
        wait_until(step3_running, timeout=15, what="the journal to show step 3 running")

        # while it runs, status shows it as running
        p = train("recipe", "status")
        assert re.search(r"^[0-9a-f]{8}\s+running\s", p.stdout, re.M), p.stdout

        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    no_traceback(subprocess.CompletedProcess([], 130, "", err))
    job_id = job_ids()[0]
    assert f"train recipe resume {job_id}" in err

    p = train("recipe", "status")
    assert p.returncode == 0
    sock = os.environ["TRAINSH_TMUX_SOCKET"]
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["JOB", "STATUS", "STARTED", "RECIPE", "STEP"], p.stdout
    assert re.match(rf"{job_id}\s+interrupted\s", lines[1]), p.stdout
    assert r.name in lines[1] and "3: @w > touch started" in lines[1]  # (the folder: recipe logs)
    assert f"all its sessions at once: train recipe attach {job_id}" in p.stdout
    assert any(re.search(rf"session w\s+on local\s+tmux -S {re.escape(sock)} attach -t w-{job_id}$", ln)
               for ln in lines), p.stdout
    assert jobs_table() == {job_id: "interrupted"}
    # the attach line names a session that really exists
    assert subprocess.run(["tmux", "-S", sock, "has-session", "-t", f"w-{job_id}"]).returncode == 0

    (tmp_path / "release").touch()
    p = train("recipe", "resume", "--no-visual", timeout=30)
    assert p.returncode == 0, p.stderr
    assert f"resuming job {job_id}" in p.stderr
    assert (tmp_path / "log.txt").read_text() == "one\ntwo\nthree\n"
    assert jobs_table() == {job_id: "done"}
    p = train("recipe", "status")
    assert "no running or interrupted jobs" in p.stdout
    p = train("recipe", "status", "--all")
    assert re.search(rf"^{job_id}\s+done\s", p.stdout, re.M), p.stdout


def test_resume_with_nothing_to_resume_is_a_one_line_error():
    line = one_line_error(train("recipe", "resume"))
    assert "no interrupted job" in line
    line = one_line_error(train("recipe", "resume", "abcdef12"))
    assert "abcdef12" in line


# ---- notifications -------------------------------------------------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    bodies: list

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append((self.path, self.headers.get("Content-Type", ""),
                                   self.rfile.read(n).decode("utf-8", "replace")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_sink():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.bodies = []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def test_notify_posts_json_to_the_configured_url(tmp_path, http_sink):
    port = http_sink.server_address[1]
    write_config(f'[notify]\nurls = ["json://127.0.0.1:{port}/"]\n')
    write_recipe(tmp_path / "n.recipe", 'var WHAT = trained\nnotify "model $WHAT"\n')
    p = train("recipe", "run", "n.recipe", "--no-visual", timeout=30)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr
    assert ">> model trained" in p.stderr
    assert len(http_sink.bodies) == 1, http_sink.bodies
    path, ctype, body = http_sink.bodies[0]
    assert "json" in ctype
    payload = json.loads(body)
    assert "model trained" in json.dumps(payload)
    assert payload.get("message") == "model trained"
    assert jobs_table() == {job_ids()[0]: "done"}


def test_an_undeliverable_notification_warns_but_the_job_succeeds(tmp_path):
    port = free_port()  # nothing listens here
    write_config(f'[notify]\nurls = ["json://127.0.0.1:{port}/"]\n')
    write_recipe(tmp_path / "n.recipe", 'notify "trained"\ntmux.open @local as w\n@w > touch after\n')
    p = train("recipe", "run", "n.recipe", "--no-visual", timeout=30)
    assert p.returncode == 0, p.stderr
    no_traceback(p)
    warnings = [ln for ln in p.stderr.splitlines() if "warning:" in ln]
    assert len(warnings) == 1 and "notification" in warnings[0], p.stderr
    assert (tmp_path / "after").exists()  # the steps after the notification ran
    assert list(jobs_table().values()) == ["done"]


def test_notify_on_says_when_a_job_ends_on_its_own(tmp_path, http_sink):
    port = http_sink.server_address[1]
    write_config(f'[notify]\nurls = ["json://127.0.0.1:{port}/"]\non = ["failed"]\n')
    write_recipe(tmp_path / "fine.recipe", "tmux.open @local as w\n@w > true\n")
    write_recipe(tmp_path / "broken.recipe", "tmux.open @local as w\n@w > sleep 1; (exit 3)\n")
    assert train("recipe", "run", "fine.recipe", "--no-visual", timeout=30).returncode == 0
    assert http_sink.bodies == []  # done is not in notify.on
    p = train("recipe", "run", "broken.recipe", "--no-visual", timeout=30)
    assert p.returncode == 1 and "warning" not in p.stderr, p.stderr
    assert len(http_sink.bodies) == 1, http_sink.bodies
    message = json.loads(http_sink.bodies[0][2])["message"]
    job = job_ids()[0]
    assert message.startswith(f"job {job} (broken.recipe) failed: exit 1 after "), message
    assert "exited with code 3" in message

    write_config(f'[notify]\nurls = ["json://127.0.0.1:{port}/"]\non = ["done", "failed"]\n')
    assert train("recipe", "run", "fine.recipe", "--no-visual", timeout=30).returncode == 0
    assert len(http_sink.bodies) == 2
    message = json.loads(http_sink.bodies[1][2])["message"]  # however long a loaded machine took
    assert re.fullmatch(rf"job {job_ids()[0]} \(fine\.recipe\) done: exit 0 after \d+s", message), message


@pytest.mark.parametrize("config_text, words", [
    ('[notify\nurls = 1\n', ["config.toml", "line 1"]),
    ('[notify]\nurls = "json://127.0.0.1:9/"\n', ["notify.urls", "list"]),
    ('[defaults]\ncommand_timeout = "forever"\n', ["defaults.command_timeout", "forever"]),
])
def test_a_bad_config_is_a_one_line_error_before_any_job_starts(tmp_path, config_text, words):
    write_config(config_text)
    write_recipe(tmp_path / "r.recipe", 'tmux.open @local as w\n@w > touch ran\nnotify "x"\n')
    for args in (["recipe", "run", "r.recipe", "--no-visual"], ["exec", "@local > touch ran"]):
        line = one_line_error(train(*args, timeout=30))
        for w in words:
            assert w in line, line
    assert not (tmp_path / "ran").exists()
    assert jobs_table() == {}


def test_two_demos_at_once_each_have_their_own_folder_and_port(tmp_path):
    import os
    import subprocess

    root = Path(__file__).resolve().parents[2]
    procs = []
    for n in (1, 2):
        env = {**os.environ, "TRAINSH_HOME": str(tmp_path / f"home{n}")}
        procs.append(subprocess.Popen([str(root / "dev"), "demo"], cwd=root, env=env, text=True,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, (out + err)[-3000:]
        assert "quickstart: trained 3 epochs" in out + err
