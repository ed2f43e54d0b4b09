"""Handlers of `train storage ...`."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import os
import sys
import tempfile
import time

from trainsh.cli.common import UserError

NEEDS = {
    "r2": ["R2_ACCESS_KEY", "R2_SECRET_KEY", "R2_ACCOUNT_ID (unless account_id is set)"],
    "b2": ["B2_KEY_ID", "B2_APPLICATION_KEY"],
    "s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    "gdrive": ["GDRIVE_TOKEN (from 'rclone authorize drive')"],
    "local": [],
}


def dispatch(args) -> int:
    from trainsh.remote.shell import ShellError
    from trainsh.settings.secrets import SecretError
    from trainsh.settings.storages import StorageError

    try:
        return {"list": st_list, "add": st_add, "show": st_show, "test": st_test,
                "remove": st_remove}[args.cmd](args)
    except (StorageError, SecretError) as e:
        raise UserError(str(e)) from None
    except ShellError as e:
        raise UserError(str(e), 1) from None


def st_list(args) -> int:
    from trainsh.settings import paths, storages

    entries = storages.load()
    if not entries:
        print(f"no storages in {paths.storages_file()} (train storage add)")
    for name in entries:
        st = storages.resolve(name)
        extra = f"  endpoint {st.endpoint}" if st.endpoint else ""
        print(f"{name:<16} {st.kind}:{st.bucket}{extra}")
    return 0


def st_add(args) -> int:
    import re

    from trainsh.settings import storages

    name, spec = args.name, args.spec
    if not name or not spec:
        if not sys.stdin.isatty():
            raise UserError("train storage add NAME KIND:BUCKET [--endpoint URL] [--region R] "
                            "[--account-id ID] (asks interactively on a terminal)")
        name = name or input("name: ").strip()
        spec = spec or input("kind:bucket (r2:, b2:, s3:, gdrive:, local:): ").strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name or ""):
        raise UserError(f"bad storage name '{name}' (letters, digits, '_', '-')")
    st = storages.resolve(spec)
    if name in storages.load() and not args.force:
        raise UserError(f"storage '{name}' exists already (--force replaces it)")
    storages.save(name, {"kind": st.kind, "bucket": st.bucket, "endpoint": args.endpoint or "",
                         "region": args.region or "", "account_id": args.account_id or ""})
    needs = NEEDS[st.kind]
    print(f"added {name}: {st.kind}:{st.bucket}"
          + (f"; it needs the secrets {', '.join(needs)}" if needs else ""))
    if st.kind == "gdrive":
        _ask_drive_token()
    return 0


def _ask_drive_token() -> None:
    """Drive needs an OAuth token: `rclone authorize drive` prints it on a machine with a
    browser; the user pastes it here once and it is kept as the secret GDRIVE_TOKEN."""
    import json

    from trainsh.settings import secrets

    if secrets.lookup("GDRIVE_TOKEN") or not sys.stdin.isatty():
        return
    print("Google Drive needs a token: run 'rclone authorize drive' on a machine with a browser,")
    print("then paste the JSON it prints (one line, {...}); empty to do it later "
          "with 'train secrets set GDRIVE_TOKEN'.")
    import getpass

    token = getpass.getpass("token: ").strip()
    if not token:
        return
    try:
        json.loads(token)
    except ValueError:
        raise UserError("that is not the JSON token 'rclone authorize drive' prints") from None
    secrets.store().set("GDRIVE_TOKEN", token)
    print("token stored as the secret GDRIVE_TOKEN")


def st_show(args) -> int:
    from trainsh.settings import secrets, storages

    st = storages.resolve(args.name)
    for field in ("kind", "bucket", "endpoint", "region", "account_id"):
        value = getattr(st, field)
        if value:
            print(f"{field:<11} {value}")
    for need in NEEDS[st.kind]:
        key = need.split()[0]
        print(f"secret      {key:<22} {secrets.source(key)}")
    return 0


def st_test(args) -> int:
    """List, write, read back and delete a small object, each step shown as it starts; rclone
    gets short timeouts and one try, so a store that does not answer fails in seconds."""
    from trainsh.settings import storages
    from trainsh.settings.storages import Storage
    from trainsh.transfer import rclone
    from trainsh.transfer.storage import run_rclone

    st = storages.resolve(args.name)
    env = {"RCLONE_CONFIG": "/dev/null", **rclone.remote_env(st, "TRAINSH_T")}
    binary = rclone.rclone_binary()
    # An object store's root is its bucket: a prefix not made yet is no failure.
    top = st.bucket.strip("/").split("/")[0] if st.kind in ("s3", "r2", "b2") else st.bucket
    root = rclone.remote_path(Storage(st.kind, top), "", "TRAINSH_T")
    probe = f".trainsh-test-{os.getpid()}-{int(time.time())}"
    ok = True

    def step(label: str, argv: list[str], capture: str = "stderr") -> str | None:
        nonlocal ok
        print(f"  {label:<10} ", end="", flush=True)
        t = time.monotonic()
        code, out = run_rclone(None, [*argv, *rclone.QUICK], env, None, capture=capture)
        took = (time.monotonic() - t) * 1000
        if code != 0:
            ok = False
            print(f"FAILED: {rclone.explain(out, st)}", flush=True)
            return None
        print(f"ok ({took:.0f} ms)", flush=True)
        return out

    where = f" at {st.endpoint}" if st.endpoint else ""
    print(f"{args.name}: {st.kind}:{st.bucket}{where}", flush=True)
    if step("list", [binary, "lsf", "--max-depth", "1", root], capture="both") is None:
        return 1
    with tempfile.TemporaryDirectory() as d:
        payload = os.urandom(4096)
        with open(os.path.join(d, probe), "wb") as f:
            f.write(payload)
        target = rclone.remote_path(st, probe, "TRAINSH_T")
        step("write", [binary, "copyto", os.path.join(d, probe), target])
        if ok:
            back = os.path.join(d, "back")
            step("read", [binary, "copyto", target, back])
            if ok and open(back, "rb").read() != payload:
                print("  read       FAILED: the object read back differs from what was written")
                ok = False
            step("delete", [binary, "deletefile", target])
    return 0 if ok else 1


def st_remove(args) -> int:
    from trainsh.settings import storages

    if not storages.remove(args.name):
        raise UserError(f"no storage '{args.name}' in storages.toml (train storage list shows them)")
    print(f"removed {args.name}")
    return 0
