"""A 512 MiB host -> storage copy against raw rclone run on the host. Target: ratio <= 1.1.

A real sshd on loopback is the host, moto_server the store. trainsh's time covers everything
it does: finding rclone on the host, the copy, and the check of sizes and checksums after it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time

here = os.path.dirname(__file__)
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests"))
import sshd  # noqa: E402
from _common import run_recipe, sandbox  # noqa: E402

SIZE_MIB = 512
ROUNDS = 2


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with sshd.running() as env, sandbox():
        moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H",
                                 "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            measure(env, f"http://127.0.0.1:{port}")
        finally:
            moto.terminate()
            moto.wait()


def measure(env, url: str) -> None:
    import boto3

    from trainsh.remote.shell import SshShell
    from trainsh.settings import paths
    from trainsh.settings.storages import Storage
    from trainsh.transfer.rclone import remote_env
    from trainsh.transfer.storage import host_rclone

    os.environ["AWS_ACCESS_KEY_ID"] = "AKIDBENCHMARKKEY"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "benchmark-secret-key"
    time.sleep(1.0)  # moto_server starting
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="bench")
    paths.home().mkdir(parents=True, exist_ok=True)
    paths.storages_file().write_text(f'[st]\nkind = "s3"\nbucket = "bench"\nendpoint = "{url}"\n')
    shell = SshShell(env.a.spec())
    rclone = host_rclone(shell)  # brought over once, outside the timing
    renv = remote_env(Storage("s3", "bench", url), "RAW")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in renv.items())
    big = f"{env.a.home}/big.bin"
    shell.run(["sh", "-c", f"head -c {SIZE_MIB}M /dev/urandom > {big}"], check=True, timeout=300)
    raw, ours = [], []
    for r in range(ROUNDS):
        t = time.perf_counter()
        shell.run(["sh", "-c", f"{exports} {rclone} copyto {big} RAW:bench/raw{r}.bin"],
                  check=True, timeout=900)
        raw.append(time.perf_counter() - t)
        code, steps = run_recipe(f"host h = {env.a.spec()}\nstorage st = st\n"
                                 f"@h:{big} -> @st:/ours{r}.bin\n")
        assert code == 0, "bench recipe failed"
        ours.append(steps[0]["ended"] - steps[0]["started"])
    ratio = min(ours) / min(raw)
    print(f"storage: {SIZE_MIB} MiB host -> S3: trainsh {min(ours):.2f} s (copy and check), "
          f"raw rclone on the host {min(raw):.2f} s, ratio {ratio:.2f} (target <= 1.1) "
          f"{'OK' if ratio <= 1.1 else 'OVER'}")


if __name__ == "__main__":
    main()
