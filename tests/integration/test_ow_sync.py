"""What `ow` syncs and when, against the Vast fake (real unison, real sshd machines that share
this machine's files): secrets in `.env*` files stay here, the first sync goes one way up (a
machine's own files, as on a network volume, stay there unless --pull), build products made
on the machine stay there, and `ow ssh` says of a conflict while the shell is still open."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from helpers import wait_until
from test_ow import OW, VAST, Terminal, alive, home_of, ow, project, rented


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_env_files_stay_here_unless_included(vast, tmp_path):
    work = project(tmp_path)
    secret, local_secret = "envs-" + os.urandom(6).hex(), "envl-" + os.urandom(6).hex()
    (work / ".env").write_text(f"TOKEN={secret}\n")
    (work / ".env.local").write_text(f"TOKEN={local_secret}\n")
    (work / ".env.example").write_text("TOKEN=put-yours-here\n")
    r = ow("exec", *VAST, "--no-terminate", "--include", ".env.example", "--mount", f"{work}:work",
           "sh", "-c", "cat in.txt; for f in .env .env.local .env.example; do [ -e $f ] && echo THERE:$f; done; "
                       "echo 'TOKEN=made-there' > .env.machine; true")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "hello from here" in r.stdout  # the sync ran
    assert "THERE:.env.example" in r.stdout, r.stdout  # named by --include: synced
    assert "THERE:.env\n" not in r.stdout and "THERE:.env.local" not in r.stdout, r.stdout
    assert not (work / ".env.machine").exists()  # nor does one made there come here
    (iid,) = alive(vast)
    home = home_of(vast, iid)
    assert not (home / "work" / ".env").exists() and not (home / "work" / ".env.local").exists()
    for path in glob.glob(f"{home}/**", recursive=True) + glob.glob(f"{home}/.*/**", recursive=True):
        if os.path.isfile(path):
            data = Path(path).read_bytes()
            assert secret.encode() not in data and local_secret.encode() not in data, path
    assert secret not in r.stdout + r.stderr and local_secret not in r.stdout + r.stderr
    vast.api("DELETE", f"instances/{iid}/")


def test_first_sync_leaves_the_machines_own_files_there_unless_pull(vast, tmp_path):
    """A machine whose folder holds files before the first sync (a network volume): without
    --pull they stay there, untouched, and never come here, not even at the sync back; files
    here go up (replacing the machine's older copy); a file the command makes comes back.
    With --pull the first sync merges both sides."""
    work = project(tmp_path)
    (work / "train.py").write_text("print('mine')\n")
    vol = tmp_path / "volume"  # the mount's remote folder (the fake's machines share our disk)
    (vol / "ckpt").mkdir(parents=True)
    (vol / "ckpt" / "model.bin").write_bytes(b"weights")
    (vol / "notes.txt").write_text("the volume's\n")
    (vol / "train.py").write_text("print('old copy on the volume')\n")
    r = ow("exec", *VAST, "--mount", f"{work}:{vol}",
           "cat train.py; echo more >> notes.txt; echo made > out.txt")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout == "print('mine')\n", r.stdout  # ours went up
    assert (work / "out.txt").read_text() == "made\n"  # two-way after the first sync
    assert _files(work) == {"in.txt", "train.py", "out.txt"}, _files(work)
    assert (vol / "ckpt" / "model.bin").read_bytes() == b"weights"  # left there, not deleted
    assert (vol / "notes.txt").read_text() == "the volume's\nmore\n"
    assert "only on the machine" in r.stderr and "--pull" in r.stderr, r.stderr

    r = ow("exec", *VAST, "--pull", "--mount", f"{work}:{vol}", "true")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert (work / "ckpt" / "model.bin").read_bytes() == b"weights"
    assert (work / "notes.txt").read_text() == "the volume's\nmore\n"
    assert rented(vast) == 2 and not alive(vast), vast.state()


def test_a_fresh_volume_is_pulled_with_pull(vast, tmp_path):
    """--pull on a first sync ever (no archive): the machine's files come here, ours go there."""
    work = project(tmp_path)
    vol = tmp_path / "volume"
    (vol / "data").mkdir(parents=True)
    (vol / "data" / "set.csv").write_text("a,b\n")
    r = ow("exec", *VAST, "--pull", "--mount", f"{work}:{vol}", "cat in.txt")
    assert r.returncode == 0 and r.stdout == "hello from here\n", (r.stdout, r.stderr)
    assert (work / "data" / "set.csv").read_text() == "a,b\n"
    assert "only on the machine" not in r.stderr
    assert not alive(vast)


def test_build_products_made_on_the_machine_stay_there(vast, tmp_path):
    """What `pip install -e .` and Python leave in the folder (foo.egg-info, __pycache__, *.pyc)
    is the machine's own: it does not come back (nor does ours go there)."""
    work = project(tmp_path)
    (work / "mine.egg-info").mkdir()
    (work / "mine.egg-info" / "PKG-INFO").write_text("Name: mine\n")
    r = ow("exec", *VAST, "--no-terminate", "--mount", f"{work}:work", "sh", "-c",
           "[ -e mine.egg-info ] && echo OURS-THERE; "
           "mkdir -p foo.egg-info src/bar.egg-info __pycache__ src/pkg; "
           "echo 'Name: foo' > foo.egg-info/PKG-INFO; echo x > src/bar.egg-info/SOURCES.txt; "
           "echo x > __pycache__/m.cpython-311.pyc; echo x > src/pkg/mod.pyc; "
           "echo 'X = 1' > src/pkg/mod.py; echo made > out.txt")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "OURS-THERE" not in r.stdout
    assert (work / "out.txt").read_text() == "made\n"  # the sync back ran
    assert (work / "src" / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert _files(work) == {"in.txt", "out.txt", "mine.egg-info", "mine.egg-info/PKG-INFO", "src",
                            "src/pkg", "src/pkg/mod.py"}, _files(work)
    (iid,) = alive(vast)
    assert (home_of(vast, iid) / "work" / "foo.egg-info" / "PKG-INFO").exists()  # still there
    vast.api("DELETE", f"instances/{iid}/")


def test_ssh_says_of_a_conflict_while_the_shell_is_open(vast, tmp_path):
    """A file changed on both sides is named at once, on a line of its own, with where each
    version is; the shell goes on; at the end the machine's version comes back beside ours.
    The machine's own files (a volume's) stay there during the live sync too, and both file
    watchers leave out what the defaults do, save what --include names."""
    work = project(tmp_path)
    vol = tmp_path / "volume"
    vol.mkdir()
    (vol / "vol-only.txt").write_text("the volume's\n")
    term = Terminal(tmp_path, " ".join([*OW, "ssh", *VAST, "--include", ".env.example",
                                        "--mount", f"{work}:{vol}"]))
    try:
        term.type("echo more >> vol-only.txt; echo S=1 > .env.there; echo S= > .env.example; "
                  "echo fresh > fresh.txt; echo READY-$((6*7))")
        term.expect("READY-42")
        wait_until((work / "fresh.txt").exists, timeout=30, what="the machine's new file here")
        wait_until((work / ".env.example").exists, timeout=30, what="the included .env.example here")
        assert not (work / "vol-only.txt").exists()  # held out of the live sync as well
        assert not (work / ".env.there").exists()
        (iid,) = alive(vast)
        # both sides change in.txt before any sync can run (the fake's machine shares our disk)
        (work / "in.txt").write_text("ours\n")
        (vol / "in.txt").write_text("theirs, longer\n")
        screen = term.expect("ow: conflict: in.txt", timeout=30)
        line = next(ln for ln in screen.splitlines() if "ow: conflict: in.txt" in ln)
        assert line.startswith("ow: conflict: in.txt"), screen  # not after the prompt
        assert f"yours is {work}/in.txt" in line and f"vast:{iid}:{vol}/in.txt" in line, line
        assert f"in.txt.remote-{iid}" in line, line
        term.type("echo STILL-$((6*7))")  # the shell is still there and answers
        term.expect("STILL-42")
        assert (work / "in.txt").read_text() == "ours\n" and (vol / "in.txt").read_text() == "theirs, longer\n"
        term.type("exit")
        term.expect("terminate vast:")
        term.type("")
        screen = term.expect("OW-EXIT=", timeout=60)
        assert "OW-EXIT=0" in screen and "terminated" in screen, screen
        assert len(re.findall(r"ow: conflict: in\.txt changed", screen)) == 1, screen  # said once
    finally:
        term.close()
    assert (work / "in.txt").read_text() == "ours\n"
    assert (work / f"in.txt.remote-{iid}").read_text() == "theirs, longer\n"
    assert not (work / "vol-only.txt").exists() and not (work / ".env.there").exists()
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_ignore_rules_defaults_includes_and_held_paths(tmp_path):
    from trainsh.transfer.unison import default_ignored, ignore_prefs, parse_output

    prefs = ignore_prefs(tmp_path, ("*.tmp",), (".env.example",), ["ckpt", "odd [1]*.bin"])
    pairs = list(zip(prefs[::2], prefs[1::2]))
    for rule in ("Name .env*", "Name *.egg-info", "Name *.pyc", "Name *.tmp", "Path ckpt"):
        assert ("-ignore", rule) in pairs, (rule, pairs)
    assert ("-ignorenot", "Name .env.example") in pairs
    assert ("-ignore", "Path odd ?1??.bin") in pairs  # unison's glob characters match themselves too
    assert default_ignored(".env.local") and default_ignored("foo.egg-info") and not default_ignored("env.py")
    assert not default_ignored(".env.example", (".env.example",))
    res = parse_output("  skipped: ckpt (would create a file with nocreation or nocreationpartial set)\n"
                       "  skipped: a.py (would update a file with noupdate or noupdatepartial set)\n"
                       "  skipped: b.py (contents changed on both sides)\n")
    assert res.held == ["ckpt"] and res.blocked == ["a.py"] and res.conflicts == ["b.py (contents changed on both sides)"]
