"""Two-way sync with real unison over a real sshd: once, live (events on both sides), conflicts,
excludes, and a host whose unison is too old getting this machine's."""

from __future__ import annotations

import os
import time

import pytest

from helpers import procs_with, wait_until
from trainsh.remote.shell import SshShell
from trainsh.transfer.unison import LiveSync, SyncError, Unison, ignore_prefs


@pytest.fixture
def pair(ssh, isolated):
    local = isolated / "proj"
    local.mkdir()
    remote = ssh.a.home / "proj"
    u = Unison(local, SshShell(ssh.a.spec()), str(remote))
    yield local, remote, u
    u.close()


def test_one_shot_both_ways_with_excludes_and_conflicts(pair):
    local, remote, u = pair
    (local / "train.py").write_text("print('hi')\n")
    (local / ".gitignore").write_text("# comment\n*.ckpt\n/out/\n!keep.ckpt\n")
    (local / "model.ckpt").write_text("big")
    (local / "out").mkdir()
    (local / "out" / "log").write_text("x")
    (local / ".git").mkdir()
    (local / ".git" / "HEAD").write_text("ref")
    (local / "__pycache__").mkdir()
    (local / "__pycache__" / "a.pyc").write_text("x")
    (local / "data.tmp").write_text("tmp")
    u.excludes = ("*.tmp",)
    u.prepare()
    res = u.sync()
    assert (remote / "train.py").read_text() == "print('hi')\n"
    assert (remote / ".gitignore").exists()
    for skipped in ("model.ckpt", "out", ".git", "__pycache__", "data.tmp"):
        assert not (remote / skipped).exists(), skipped
    assert res.transferred == 2 and not res.conflicts

    (remote / "made_remotely.txt").write_text("from the host\n")
    assert u.sync().transferred == 1
    assert (local / "made_remotely.txt").read_text() == "from the host\n"

    # both sides change one file: reported, neither side overwritten
    time.sleep(1.1)
    (local / "train.py").write_text("print('local edit')\n")
    (remote / "train.py").write_text("print('remote edit, longer')\n")
    res = u.sync()
    assert res.conflicts and "train.py" in res.conflicts[0]
    assert "conflict" in res.summary()
    assert (local / "train.py").read_text() == "print('local edit')\n"
    assert (remote / "train.py").read_text() == "print('remote edit, longer')\n"


def test_gitignore_translation(tmp_path):
    (tmp_path / ".gitignore").write_text("**/build/\nlogs/*.txt\n/top\nname\n!neg\n")
    prefs = ignore_prefs(tmp_path, ("*.bin",))
    rules = prefs[1::2]
    assert "Name build" in rules and "Path logs/*.txt" in rules and "Path top" in rules
    assert "Name name" in rules and "Name *.bin" in rules and "Name .git" in rules
    assert not any("neg" in r for r in rules)


def test_live_sync_follows_events_on_both_sides(pair):
    local, remote, u = pair
    (local / "a.txt").write_text("v1\n")
    u.prepare()
    u.sync()
    results = []
    live = LiveSync(u, on_result=results.append)
    live.start()
    try:
        assert not live.errors, live.errors
        # the host-side watcher runs in a login of the test sshd (its HOME is that server's own)
        wait_until(lambda: procs_with("watch_remote.py", remote.parent), 10, "the remote watcher")
        (local / "a.txt").write_text("v2\n")  # same size, same second as the last sync
        wait_until(lambda: (remote / "a.txt").read_text() == "v2\n", 10, "local edit on the host")
        (local / "sub").mkdir()
        (local / "sub" / "new.py").write_text("x = 1\n")
        wait_until(lambda: (remote / "sub" / "new.py").exists(), 10, "new folder on the host")
        (remote / "from_host.txt").write_text("remote\n")
        wait_until(lambda: (local / "from_host.txt").exists(), 10, "host's file here")
        (remote / "a.txt").write_text("v3\n")
        wait_until(lambda: (local / "a.txt").read_text() == "v3\n", 10, "host's edit here")
        (local / "sub" / "new.py").unlink()
        wait_until(lambda: not (remote / "sub" / "new.py").exists(), 10, "deletion on the host")
    finally:
        final = live.stop()
    assert results and final is not None and not final.conflicts
    # the host-side watcher ended with its ssh session
    wait_until(lambda: not procs_with("watch_remote.py", remote.parent), 10, "the remote watcher to end")


def test_host_with_old_unison_gets_ours(ssh, isolated):
    """The non-root user's login PATH finds an 'unison 2.48' first: ours is brought over."""
    import sshd

    home = ssh.b.home
    oldbin = home / "oldbin"
    oldbin.mkdir(exist_ok=True)
    fake = oldbin / "unison"
    fake.write_text("#!/bin/sh\necho 'unison version 2.48.4'\nexit 1\n")
    fake.chmod(0o755)
    bashrc = home / ".bashrc"
    saved = bashrc.read_text() if bashrc.exists() else None
    bashrc.write_text(f"export PATH={oldbin}:$PATH\n")
    for p in (oldbin, fake, bashrc):
        os.chown(p, *_ids(sshd.USER))
    local = isolated / "p"
    local.mkdir()
    (local / "f.txt").write_text("hello\n")
    u = Unison(local, SshShell(ssh.b.spec(sshd.USER)), "synced")
    try:
        u.prepare()
        assert u.servercmd.endswith(".cache/trainsh/bin/unison")
        assert (home / ".cache/trainsh/bin/unison").stat().st_size > 100_000
        u.sync()
        assert (home / "synced" / "f.txt").read_text() == "hello\n"
        u2 = Unison(local, SshShell(ssh.b.spec(sshd.USER)), "synced")
        u2.prepare()  # already there and the same version: not copied again
        assert u2.servercmd == u.servercmd
        u2.close()
    finally:
        u.close()
        if saved is None:
            bashrc.unlink()
        else:
            bashrc.write_text(saved)


def test_unreachable_root_is_one_line(ssh, isolated):
    local = isolated / "q"
    local.mkdir()
    u = Unison(local, SshShell(ssh.a.spec()), "/proc/cannot/make/this")
    with pytest.raises(SyncError, match="cannot make /proc/cannot/make/this"):
        u.prepare()
    u.close()


def _ids(user: str) -> tuple[int, int]:
    import pwd

    p = pwd.getpwnam(user)
    return p.pw_uid, p.pw_gid
