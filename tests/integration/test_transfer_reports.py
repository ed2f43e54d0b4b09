"""What transfers tell the user: dry-run listings, deletion counts, missing sources, storage
test failures, and progress events (real rsync over the test sshd, real rclone to moto S3)."""

from __future__ import annotations

import os
import socket
import stat
import time

import pytest
from helpers import train

from trainsh.transfer.report import Progress


def tree(root, n: int = 3):
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        (root / "sub" / f"f{i}.txt").write_text(f"file {i}\n")


@pytest.mark.parametrize("dst", ["out/", "@lake:/r/"])
def test_a_dry_run_lists_copies_and_deletes_and_a_real_run_counts_deletions(tmp_path, request, dst):
    if dst.startswith("@lake"):
        request.getfixturevalue("lake")
    tree(tmp_path / "data")
    assert train("transfer", "data/", dst).returncode == 0
    os.remove(tmp_path / "data/sub/f0.txt")
    (tmp_path / "data/new.txt").write_text("new\n")
    p = train("transfer", "data/", dst, "--delete", "--dry-run")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "would copy 1 file (4 B) and delete 1"
    assert "  copy   new.txt" in lines and "  delete sub/f0.txt" in lines
    if dst == "out/":
        assert (tmp_path / "out/sub/f0.txt").exists() and not (tmp_path / "out/new.txt").exists()
    p = train("transfer", "data/", dst, "--delete")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("copied 1 file (4 B), deleted 1 in ")
    if dst == "out/":
        assert not (tmp_path / "out/sub/f0.txt").exists()


def test_a_long_dry_run_listing_stops_at_a_screenful_then_counts(tmp_path):
    tree(tmp_path / "data", 60)
    p = train("transfer", "data/", "out/", "--dry-run")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "would copy 60 files (470 B)"
    assert len(lines) <= 24 and lines[-1].startswith("  ... and ") and lines[-1].endswith(" more")
    shown = sum(1 for ln in lines if ln.startswith("  copy "))
    assert shown + int(lines[-1].split()[2]) == 60


def test_a_missing_source_is_named_with_its_host(tmp_path, ssh, lake):
    spec = ssh.a.spec()
    host = "root@127.0.0.1"
    cases = [
        (["nope/", "out/"], f"the transfer source {tmp_path}/nope/ does not exist (on this machine)"),
        (["nope", "@lake:/x/"], f"the transfer source {tmp_path}/nope does not exist (on this machine)"),
        ([f"@A:{ssh.a.home}/nope", "out/"], f"the transfer source {ssh.a.home}/nope does not exist (on {host})"),
        ([f"@A:{ssh.a.home}/nope/", f"@A:{ssh.a.home}/x/"],
         f"the transfer source {ssh.a.home}/nope/ does not exist (on {host})"),
        ([f"@A:{ssh.a.home}/nope", "@lake:/x/"], f"the transfer source {ssh.a.home}/nope does not exist (on {host})"),
        (["@lake:/nope/", "out/"], "the transfer source /nope/ does not exist (in storage lake)"),
    ]
    assert train("host", "add", "A", spec).returncode == 0
    for args, said in cases:
        p = train("transfer", *args)
        assert p.returncode == 1, args
        assert p.stderr.strip() == f"train: {said}", args


def test_host_to_host_relay_names_a_missing_source(tmp_path, ssh):
    from sshd import USER

    from trainsh.remote.shell import ShellError, SshShell
    from trainsh.transfer.planner import Side, _stream

    b = SshShell(ssh.b.spec(USER))
    a = SshShell(ssh.a.spec())
    with pytest.raises(ShellError, match=rf"the transfer source /nope/x does not exist \(on {USER}@"):
        _stream(Side("/nope/x", b), Side(f"{ssh.a.home}/y/", a), delete=False, excludes=(), dry_run=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_storage_test_says_what_is_wrong_in_one_line_and_quickly(tmp_path, lake, monkeypatch):
    from trainsh.settings import paths

    port = free_port()  # nothing listens there
    with open(paths.storages_file(), "a") as f:
        f.write(f'[dead]\nkind = "s3"\nbucket = "x"\nendpoint = "http://127.0.0.1:{port}"\n'
                f'[nobucket]\nkind = "s3"\nbucket = "nosuchbucket/p"\nendpoint = "{lake["url"]}"\n'
                f'[nofolder]\nkind = "local"\nbucket = "{tmp_path}/nofolder"\n'
                f'[folder]\nkind = "local"\nbucket = "{tmp_path}"\n')
    t = time.monotonic()
    p = train("storage", "test", "dead", timeout=60)
    assert time.monotonic() - t < 30
    assert p.returncode == 1
    assert f"list       FAILED: cannot reach http://127.0.0.1:{port}: connection refused (unreachable endpoint)" in p.stdout
    p = train("storage", "test", "nobucket")
    assert p.returncode == 1 and "list       FAILED: no such bucket nosuchbucket\n" in p.stdout
    p = train("storage", "test", "nofolder")
    assert p.returncode == 1 and f"list       FAILED: no such folder {tmp_path}/nofolder\n" in p.stdout
    p = train("storage", "test", "folder")
    assert p.returncode == 0, p.stdout
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    p = train("storage", "test", "lake")
    assert p.returncode == 1
    assert "list       FAILED: the server refused the request's signature: a wrong secret key" in p.stdout
    assert "(the server said SignatureDoesNotMatch: " in p.stdout
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    p = train("storage", "test", "lake")
    assert "list       FAILED: wrong key: the server does not know the access key" in p.stdout
    assert "(the server said InvalidAccessKeyId: " in p.stdout
    assert "not-the-secret" not in p.stdout + p.stderr


@pytest.mark.parametrize("way", ["download", "upload"])
def test_a_copy_with_an_unreachable_store_fails_quickly(tmp_path, lake, way):
    from trainsh.settings import paths

    with open(paths.storages_file(), "a") as f:
        f.write(f'[dead]\nkind = "s3"\nbucket = "x"\nendpoint = "http://127.0.0.1:{free_port()}"\n')
    (tmp_path / "model.bin").write_bytes(b"m" * 1000)
    t = time.monotonic()
    args = ["@dead:/model.bin", "out/"] if way == "download" else ["model.bin", "@dead:/m/"]
    p = train("transfer", *args, timeout=120)
    assert time.monotonic() - t < 30
    assert p.returncode == 1 and "connection refused (unreachable endpoint)" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def limited_rsync(tmp_path, monkeypatch, kib_per_s: int) -> None:
    """A real rsync, bandwidth-limited so a copy lasts a few seconds (first on PATH)."""
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "rsync"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("rsync")} --bwlimit={kib_per_s} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


def distinct_midway(events: list[Progress]) -> set[int]:
    assert events and all(isinstance(e, Progress) for e in events)
    return {e.done for e in events if 0 < e.done < (e.total or 0)}


def test_progress_of_one_large_file_over_rsync_moves(tmp_path, ssh, monkeypatch):
    from trainsh.remote.shell import SshShell
    from trainsh.transfer.planner import Side, copy

    limited_rsync(tmp_path, monkeypatch, 2048)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    events: list[Progress] = []
    summary = copy(Side(str(big)), Side(f"{ssh.a.home}/p/", SshShell(ssh.a.spec())), progress=events.append)
    assert summary.startswith("copied 1 file (8.0 MiB)")
    assert len(distinct_midway(events)) >= 2, events
    assert events[-1].done == events[-1].total == 8 * 1024 * 1024
    assert any(e.rate > 0 and e.eta is not None for e in events)
    shown = str(max(events, key=lambda e: e.done))
    assert "MiB" in shown and "MB" not in shown.replace("MiB", "")


def test_progress_of_a_storage_upload_moves(tmp_path, lake, monkeypatch):
    from trainsh.settings.storages import resolve
    from trainsh.transfer.planner import Side, copy

    monkeypatch.setenv("RCLONE_BWLIMIT", "2M")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    events: list[Progress] = []
    copy(Side(str(big)), Side("/p/", storage=resolve("lake")), progress=events.append)
    assert len(distinct_midway(events)) >= 2, events
    assert "MiB" in str(events[-1])


def test_progress_of_a_relay_through_this_machine(tmp_path, ssh):
    from sshd import USER

    from trainsh.remote.shell import SshShell
    from trainsh.transfer.planner import Side, _stream

    (ssh.b.home / "relay").mkdir(exist_ok=True)
    (ssh.b.home / "relay" / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
    os.chmod(ssh.b.home / "relay", 0o755)
    os.chmod(ssh.b.home / "relay" / "big.bin", 0o644)
    events: list[Progress] = []
    _stream(Side(f"{ssh.b.home}/relay", SshShell(ssh.b.spec(USER))), Side(f"{ssh.a.home}/r/", SshShell(ssh.a.spec())),
            delete=False, excludes=(), dry_run=False, progress=events.append)
    assert (ssh.a.home / "r/relay/big.bin").stat().st_size == 4 * 1024 * 1024
    assert events and events[-1].done >= 4 * 1024 * 1024


def test_dry_runs_to_and_between_hosts_list_names(tmp_path, ssh):
    tree(tmp_path / "data")
    assert train("host", "add", "A", ssh.a.spec()).returncode == 0
    home = ssh.a.home
    p = train("transfer", "data/", f"@A:{home}/d/", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["would copy 3 files (21 B)"] + [f"  copy   sub/f{i}.txt" for i in range(3)]
    assert not (home / "d").exists()
    assert train("transfer", "data/", f"@A:{home}/d/").returncode == 0
    p = train("transfer", f"@A:{home}/d/", f"@A:{home}/e/", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "would copy 3 files (21 B)" and not (home / "e").exists()
