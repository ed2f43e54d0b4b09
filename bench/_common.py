"""Shared set-up for benchmarks: a private settings folder and tmux server, cleaned up after."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile


@contextlib.contextmanager
def sandbox():
    d = tempfile.mkdtemp(prefix="tsb", dir="/tmp")
    old = {k: os.environ.get(k) for k in ("TRAINSH_HOME", "TRAINSH_TMUX_SOCKET", "HOME")}
    os.environ["TRAINSH_HOME"] = f"{d}/home"
    os.environ["TRAINSH_TMUX_SOCKET"] = f"{d}/tmux.sock"
    os.environ["HOME"] = f"{d}/user"
    os.makedirs(f"{d}/user")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        yield d
    finally:
        os.chdir(cwd)
        subprocess.run(["tmux", "-S", f"{d}/tmux.sock", "kill-server"], capture_output=True)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(d, ignore_errors=True)


def run_recipe(text: str, path: str = "bench.recipe"):
    """Run recipe text in this process; returns (exit code, journal steps)."""
    import io

    from trainsh.recipe.parser import parse
    from trainsh.runtime.journal import Journal
    from trainsh.runtime.context import RunOptions
    from trainsh.runtime.runner import Runner
    from trainsh.ui.console import Console

    with open(path, "w") as f:
        f.write(text)
    journal = Journal()
    runner = Runner.start(journal, parse(text, path), Console(io.StringIO(), visual=False),
                          RunOptions(), {}, {})
    code = runner.run()
    steps = journal.steps(runner.job.id)
    journal.close()
    return code, steps


def vast_login(fake, train: str) -> str:
    """A key pair of its own for the Vast fake's machines: on the account, and `ssh.key` of the
    sandbox's settings. Returns the private key's path."""
    import tempfile

    key = os.path.join(tempfile.mkdtemp(prefix="tsk", dir="/tmp"), "id")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with open(key + ".pub") as f:
        fake.api("POST", "ssh/", {"ssh_key": f.read()})
    subprocess.run([train, "config", "set", "ssh.key", key], check=True, stdout=subprocess.DEVNULL)
    return key
