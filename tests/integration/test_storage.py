"""Storage through rclone against a local S3 server (moto) that checks keys."""

from __future__ import annotations

import os

from helpers import interrupted, train, write_recipe


def keys(lake, prefix: str = "") -> dict[str, int]:
    out = {}
    for page in lake["s3"].get_paginator("list_objects_v2").paginate(Bucket=lake["bucket"], Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["Size"]
    return out


def make_tree(root, n: int = 5):
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        (root / "sub" / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (root / "model.ckpt").write_bytes(os.urandom(2048))


def test_upload_download_sync_excludes_and_dry_run(tmp_path, lake):
    make_tree(tmp_path / "data")
    p = train("transfer", "data/", "@lake:/run1/", "--exclude", "*.ckpt")
    assert p.returncode == 0, p.stderr
    assert "copied 5 files" in p.stdout and "checked" in p.stdout
    assert set(keys(lake, "run1/")) == {f"run1/sub/f{i}.txt" for i in range(5)}
    # download
    p = train("transfer", "@lake:/run1/", "back/")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "back/sub/f3.txt").read_text() == "file 3\n" * 4
    # dry run with delete changes nothing
    os.remove(tmp_path / "data/sub/f0.txt")
    before = keys(lake)
    p = train("transfer", "data/", "@lake:/run1/", "--delete", "--exclude", "*.ckpt", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("would copy 0 files (0 B) and delete 1\n  delete sub/f0.txt")
    assert keys(lake) == before
    # sync with delete
    p = train("transfer", "data/", "@lake:/run1/", "--delete", "--exclude", "*.ckpt")
    assert p.returncode == 0, p.stderr
    assert set(keys(lake, "run1/")) == {f"run1/sub/f{i}.txt" for i in range(1, 5)}


def test_a_folder_without_slash_lands_inside_like_rsync(tmp_path, lake):
    make_tree(tmp_path / "data")
    assert train("transfer", "data", "@lake:/x/").returncode == 0
    assert "x/data/sub/f1.txt" in keys(lake, "x/")
    assert train("transfer", "data/model.ckpt", "@lake:/y/renamed.ckpt").returncode == 0
    assert keys(lake, "y/") == {"y/renamed.ckpt": 2048}


def test_multipart_object_is_copied_and_checked(tmp_path, lake, monkeypatch):
    monkeypatch.setenv("RCLONE_S3_UPLOAD_CUTOFF", "16M")  # rclone's own settings: 64 MiB in parts
    monkeypatch.setenv("RCLONE_S3_CHUNK_SIZE", "16M")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1024 * 1024))
    p = train("transfer", "big.bin", "@lake:/big/", timeout=300)
    assert p.returncode == 0, p.stderr
    head = lake["s3"].head_object(Bucket=lake["bucket"], Key="big/big.bin")
    assert head["ContentLength"] == 64 * 1024 * 1024
    assert "-" in head["ETag"]  # a multipart ETag: the object really went up in parts
    p = train("transfer", "@lake:/big/big.bin", "again.bin", timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "again.bin").read_bytes() == big.read_bytes()


def test_a_wrong_key_is_one_clear_line(tmp_path, lake, monkeypatch):
    (tmp_path / "f.txt").write_text("x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    p = train("transfer", "f.txt", "@lake:/f/")
    assert p.returncode == 1
    assert "does not match" in p.stderr or "access denied" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert "not-the-secret" not in p.stderr
    t = train("storage", "test", "lake")
    assert t.returncode == 1 and "FAILED" in t.stdout


def test_missing_credentials_name_the_secret(tmp_path, lake, monkeypatch):
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "pw")
    (tmp_path / "f.txt").write_text("x")
    p = train("transfer", "f.txt", "@lake:/f/")
    assert p.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in p.stderr and "train secrets set" in p.stderr


def test_storage_commands(tmp_path, lake):
    assert "lake" in train("storage", "list").stdout
    show = train("storage", "show", "lake").stdout
    assert "AWS_ACCESS_KEY_ID" in show and "environment" in show
    t = train("storage", "test", "lake")
    assert t.returncode == 0, t.stdout + t.stderr
    for step in ("list", "write", "read", "delete"):
        assert f"{step}" in t.stdout
    assert keys(lake) == {}  # the probe object is gone
    p = train("storage", "add", "other", "r2:models", "--account-id", "abc123")
    assert p.returncode == 0 and "R2_ACCESS_KEY" in p.stdout
    saved = (tmp_path / "trainsh/storages.toml").read_text()
    assert 'account_id = "abc123"' in saved
    assert lake["key"] not in saved and lake["secret"] not in saved  # credentials stay secrets
    assert train("storage", "add", "other", "r2:x").returncode == 2  # exists
    assert train("storage", "add", "bad", "ftp:x").returncode == 2
    assert train("storage", "remove", "other").returncode == 0


def test_recipe_transfers_with_storage(tmp_path, lake):
    make_tree(tmp_path / "out")
    r = write_recipe(tmp_path / "s.recipe", """
var RUN = exp1
storage ckpt = lake
./out/ -> @ckpt:/runs/$RUN/ exclude=*.ckpt
@ckpt:/runs/$RUN/ -> ./restored/
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert len(keys(lake, "runs/exp1/")) == 5
    assert (tmp_path / "restored/sub/f4.txt").exists()


def test_host_to_storage_runs_rclone_on_the_host(tmp_path, lake, ssh, monkeypatch):
    src = ssh.a.home / "results"
    src.mkdir()
    (src / "metrics.json").write_text('{"loss": 0.1}')
    r = write_recipe(tmp_path / "h.recipe", f"""
host gpu = {ssh.a.spec()}
storage out = lake
@gpu:{src}/ -> @out:/from-host/
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "checked on root@127.0.0.1" in p.stderr
    assert (ssh.a.home / ".cache/trainsh/bin/rclone").exists()  # brought to the host, cached
    # Proof that the bytes go host -> store: with no usable rclone on this machine the
    # host's copy still works, while a copy that must run here fails.
    monkeypatch.setenv("TRAINSH_RCLONE", "/bin/false")
    (src / "more.txt").write_text("more")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert "from-host/more.txt" in keys(lake, "from-host/")
    (tmp_path / "local.txt").write_text("x")
    assert train("transfer", "local.txt", "@lake:/l/").returncode == 1


def test_one_file_from_a_host_to_storage_and_back(tmp_path, lake, ssh):
    f = ssh.a.home / "weights.bin"
    f.write_bytes(os.urandom(300_000))
    r = write_recipe(tmp_path / "one.recipe", f"""
host gpu = {ssh.a.spec()}
storage out = lake
@gpu:{f} -> @out:/w/renamed.bin
@out:/w/renamed.bin -> @gpu:{ssh.a.home}/back/
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 0, p.stderr
    assert keys(lake, "w/") == {"w/renamed.bin": 300_000}
    assert (ssh.a.home / "back" / "renamed.bin").read_bytes() == f.read_bytes()


def test_a_copy_whose_checksum_differs_fails(tmp_path, lake):
    import base64
    import hashlib

    # An object in two parts whose stored MD5 (the metadata rclone keeps for multipart
    # objects) is not the MD5 of its bytes: what a corrupted copy looks like.
    s3, bucket = lake["s3"], lake["bucket"]
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(1024)]
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    up = s3.create_multipart_upload(Bucket=bucket, Key="bad.bin", Metadata={"md5chksum": wrong})
    etags = [s3.upload_part(Bucket=bucket, Key="bad.bin", UploadId=up["UploadId"], PartNumber=i + 1,
                            Body=body)["ETag"] for i, body in enumerate(parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key="bad.bin", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]})
    p = train("transfer", "@lake:/bad.bin", "got.bin")
    assert p.returncode == 1
    assert "the copy does not match its source" in p.stderr and "md5" in p.stderr
    assert "Traceback" not in p.stderr


def test_one_file_with_delete_lands_at_its_name(tmp_path, lake):
    (tmp_path / "model.bin").write_bytes(os.urandom(3000))
    p = train("transfer", "model.bin", "@lake:/m/model.bin", "--delete")
    assert p.returncode == 0, p.stderr
    assert keys(lake, "m/") == {"m/model.bin": 3000}


def test_a_storage_placeholder_filled_with_storage_is_kept_for_resume(tmp_path, lake):
    make_tree(tmp_path / "data")
    r = write_recipe(tmp_path / "ph.recipe", """
storage out = placeholder
tmux.open @local as w
@w > touch started; while [ ! -e release ]; do sleep 0.05; done
./data/ -> @out:/runs/ exclude=*.ckpt
""")
    p = train("recipe", "run", str(r), "--no-visual", "--host", "out=lake")
    assert p.returncode == 2 and "give it with --storage out=lake" in p.stderr
    p = interrupted("recipe", "run", str(r), "--no-visual", "--storage", "out=lake",
                    once=tmp_path / "started")
    assert p.returncode == 130, p.stderr
    assert keys(lake) == {}
    (tmp_path / "release").touch()
    p = train("recipe", "resume", "--no-visual", timeout=60)  # the storage given at the start
    assert p.returncode == 0, p.stderr
    assert set(keys(lake, "runs/")) == {f"runs/sub/f{i}.txt" for i in range(5)}


def test_exec_transfers_to_a_storage_by_its_name(tmp_path, lake):
    make_tree(tmp_path / "data")
    p = train("exec", "./data/ -> @lake:/e/ exclude=*.ckpt", "--no-visual", timeout=60)
    assert p.returncode == 0, p.stderr
    assert set(keys(lake, "e/")) == {f"e/sub/f{i}.txt" for i in range(5)}


def test_one_file_with_odd_characters_in_its_name(tmp_path, lake):
    (tmp_path / "f.txt").write_text("odd\n")
    name = "a\\tb 'q\"$(x)`y`;#[1]*{2};"
    p = train("transfer", "f.txt", f"@lake:/odd/{name}")
    assert p.returncode == 0, p.stderr
    assert keys(lake, "odd/") == {f"odd/{name}": 4}


def test_the_check_of_one_file_reads_that_file_whatever_its_name(tmp_path, lake):
    """rclone skips a file whose size and time match; the check after the copy must still
    compare that very object's checksum, also when its name holds rclone glob characters
    (`data[1].csv` as a filter would mean `data1.csv`)."""
    (tmp_path / "data1.csv").write_text("a neighbour whose name the glob would match\n")
    assert train("transfer", "data1.csv", "@lake:/g/data1.csv").returncode == 0
    src = tmp_path / "f.csv"
    for name in ("plain.csv", "data[1].csv", "a*b?{c}\\d.csv"):
        src.write_text("aaaa\n")
        os.utime(src, (1_700_000_000, 1_700_000_000))
        assert train("transfer", "f.csv", f"@lake:/g/{name}").returncode == 0
        src.write_text("bbbb\n")  # same size and time: rclone leaves the object as it is
        os.utime(src, (1_700_000_000, 1_700_000_000))
        p = train("transfer", "f.csv", f"@lake:/g/{name}")
        assert p.returncode == 1 and "does not match its source" in p.stderr, (name, p.stdout, p.stderr)
