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


def run_program(text: str | None, variables: dict, path: str = "bench.py", keep: bool = False,
                resume: str | None = None):
    """Run a Python recipe in this process: (exit code, journal steps), with the job's id when
    `keep`. With `resume=JOB`: that finished job, marked interrupted and resumed, which only
    replays; returns the seconds the resume took."""
    import io
    import time

    from trainsh.program import launch
    from trainsh.program.load import load
    from trainsh.program.sweep import Runner
    from trainsh.runtime.context import RunOptions
    from trainsh.runtime.journal import Journal
    from trainsh.ui.console import Console

    journal = Journal()
    console = Console(io.StringIO(), visual=False)
    try:
        if resume is not None:
            journal.set_job(resume, status="interrupted", pid=None)
            start = time.perf_counter()
            job = journal.claim(resume)
            runner = launch.resume(journal, job, console, RunOptions())
            code = runner.run()
            took = time.perf_counter() - start
            assert code == 0, "bench resume failed"
            return took
        with open(path, "w") as f:
            f.write(text)
        program = load(path)
        program.values = {k: program.params[k](v) for k, v in variables.items()}
        runner = Runner.start_program(journal, program, console, RunOptions(),
                                      {k: str(v) for k, v in variables.items()}, {}, {})
        code = runner.run()
        steps = journal.steps(runner.job.id)
        return (code, steps, runner.job.id) if keep else (code, steps)
    finally:
        journal.close()
