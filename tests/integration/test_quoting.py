"""Odd characters in paths and names are data, never code: the settings folder, the working
folder and file names reach shell, tmux and rsync command lines quoted for each of them."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers import tmux, train, write_recipe

from trainsh.settings import paths

# Each payload, if run by a shell or by tmux's #() format, leaves a file in the HOME it runs with.
ODD = "q'\"$(cd;touch PWN1)`cd;touch PWN2` #(cd;touch PWN3) a;b ;"
SECRET = "odd-secret-4c1d9e"


def quoted(text: str) -> str:
    """text as one recipe token."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def planted(*homes: Path) -> list[str]:
    return [str(p) for home in homes for p in home.rglob("PWN*")]


def odd_job(tmp_path: Path, monkeypatch, spec: str, remote: Path):
    """Run a recipe (a command, a command with a secret, transfers there and back) with the
    settings folder, the working folder, the recipe, the files and the remote folder all named
    with ODD; return the result of `train recipe run` and the working folder."""
    monkeypatch.setenv("TRAINSH_HOME", str(tmp_path / f"settings {ODD}"))
    monkeypatch.setenv("ODDTOK", SECRET)
    work = tmp_path / f"work {ODD}"
    (work / f"in {ODD}").mkdir(parents=True)
    (work / f"in {ODD}" / f"file {ODD}").write_text("payload\n")
    monkeypatch.chdir(work)
    there = str(remote / f"dst {ODD}") + "/"
    src, back = quoted(f"./in {ODD}/"), quoted(f"./back {ODD}/")
    r = write_recipe(work / f"r {ODD}.recipe", f"""
host gpu = {spec}
tmux.open @gpu as w
@w > printf '%s\\n' "odd-ok" "$PWD"
@w > echo "tty ${{secret:ODDTOK}}" > /dev/tty; echo "out ${{secret:ODDTOK}}"
{src} -> @gpu:{quoted(there)}
@gpu:{quoted(there)} -> {back}
@w > cd {shlex.quote(there)} && printf "%s\\n" *
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    return p, work


def check_job(p, work: Path, homes: list[Path], scrollback: str) -> None:
    assert p.returncode == 0, p.stderr
    assert planted(*homes) == []
    assert (work / f"back {ODD}" / f"file {ODD}").read_text() == "payload\n"
    assert f"file {ODD}" in p.stderr  # listed on the host
    assert "tty ***" in scrollback and "out ***" in scrollback and SECRET not in scrollback
    assert "odd-ok" in p.stderr
    leaked = [str(f) for f in paths.home().rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
    assert leaked == []


def test_odd_characters_on_a_local_host(tmp_path, monkeypatch):
    # the tmux socket too (a short path: sockets are limited to ~108 bytes)
    sock = Path(os.environ["TRAINSH_TMUX_SOCKET"]).parent / "t m'x;"
    monkeypatch.setenv("TRAINSH_TMUX_SOCKET", str(sock))
    try:
        p, work = odd_job(tmp_path, monkeypatch, "local", tmp_path / "remote")
        name = tmux("ls", "-F", "#{session_name}").stdout.split()[0]
        scrollback = tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
        check_job(p, work, [Path(os.environ["HOME"]), tmp_path], scrollback)
        assert str(work) in p.stderr  # the session opened in the working folder
        # the attach line it prints works as typed into a shell
        attach = p.stderr.split("left open: ")[1].splitlines()[0]
        assert subprocess.run(["sh", "-c", attach.replace(" attach ", " has-session ")]).returncode == 0
    finally:
        tmux("kill-server")


def test_odd_characters_on_an_ssh_host(tmp_path, ssh, monkeypatch):
    from test_ssh import remote_tmux

    p, work = odd_job(tmp_path, monkeypatch, ssh.a.spec(), ssh.a.home)
    name = remote_tmux(ssh.a, "ls", "-F", "#{session_name}").stdout.split()[0]
    scrollback = remote_tmux(ssh.a, "capture-pane", "-p", "-S", "-", "-t", name).stdout
    check_job(p, work, [Path(os.environ["HOME"]), tmp_path, ssh.a.home], scrollback)


def test_secret_command_with_odd_names_through_exec(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSH_HOME", str(tmp_path / f"settings {ODD}"))
    monkeypatch.setenv("ODDTOK", SECRET)
    work = tmp_path / f"work {ODD}"
    work.mkdir()
    monkeypatch.chdir(work)
    p = train("exec", "@local > echo \"got ${secret:ODDTOK}\" > 'f;'; cat 'f;'; pwd")
    assert p.returncode == 0, p.stderr
    assert "got ***" in p.stdout and str(work) in p.stdout and SECRET not in p.stdout
    assert planted(Path(os.environ["HOME"]), tmp_path) == []


@pytest.mark.parametrize("ending", [";", "#(cd;touch PWN4)", "a\\;"])
def test_a_working_folder_tmux_would_read_as_syntax(tmp_path, monkeypatch, ending):
    work = tmp_path / f"w{ending}"
    work.mkdir()
    monkeypatch.chdir(work)
    p = train("exec", "@local > true")  # (no session: a smoke check of the folder itself)
    assert p.returncode == 0, p.stderr
    r = write_recipe(work / "r.recipe", "tmux.open @local as w\n@w > pwd\n")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert f"| {work}\n" in p.stderr
    assert planted(Path(os.environ["HOME"]), tmp_path) == []
