"""What `ow` syncs, against the Vast fake (real unison, real sshd machines that share this
machine's files): secrets in `.env*` files stay here, build products made on the machine stay
there."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from test_ow import VAST, alive, home_of, ow, project


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
