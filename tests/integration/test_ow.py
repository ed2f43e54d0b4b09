"""`ow exec` and `ow ssh` against the Vast.ai fake (real HTTP API, real sshd machines, real
unison and tmux). Every test checks what the fake rented and destroyed: nothing may be left
running unless the user kept it."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import drop_masters, masters, signalled, wait_until

OW = [sys.executable, "-m", "trainsh.owstart"]  # what the `ow` console script runs
VAST = ["--provider", "vast", "--gpu", "RTX4090"]


def ow(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*OW, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*OW, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def alive(fake) -> list[str]:
    """Instances the fake rented and still has (not destroyed)."""
    st = fake.state()
    gone = {str(i) for i in st["destroyed"]}
    return [i for i in st["instances"] if i not in gone]


def rented(fake) -> int:
    """How many machines the fake has rented out."""
    return fake.state()["rents"]


def home_of(fake, iid: str) -> Path:
    return Path(fake.state()["instances"][iid]["home"])


def workspace_of(fake, iid: str) -> Path:
    """What the machine has at /workspace (a folder of its own, as on a cloud)."""
    return Path(fake.state()["instances"][iid]["workspace"])


def project(tmp_path: Path) -> Path:
    work = tmp_path / "proj"
    work.mkdir()
    (work / "in.txt").write_text("hello from here\n")
    return work


def test_exec_exit_codes_output_and_files_back(vast, tmp_path):
    work = project(tmp_path)
    (work / ".gitignore").write_text("*.log\n")
    (work / "run.log").write_text("ignored by .gitignore\n")
    (work / "data").mkdir()
    (work / "data" / "big.bin").write_bytes(b"x" * 1000)
    (work / ".git").mkdir()
    (work / ".git" / "HEAD").write_text("ref\n")
    r = ow("exec", *VAST, "--mount", f"{work}:work", "--exclude", "data", "sh", "-c",
           "cat in.txt; echo made > out.txt; echo \"it's 'quoted' \\$HOME\"; "
           "[ -e run.log ] || [ -e data ] || [ -e .git ] || echo left-out; exit 7")
    assert r.returncode == 7, (r.stdout, r.stderr)
    assert "left-out" in r.stdout  # .gitignore, --exclude and the defaults
    assert "hello from here\n" in r.stdout and "it's 'quoted' $HOME" in r.stdout, r.stdout
    assert (work / "out.txt").read_text() == "made\n"  # made there, came back
    assert rented(vast) == 1 and not alive(vast), vast.state()
    assert "terminated" in r.stderr


def test_exec_zero_one_word_shell_line_and_signal_exit_code(vast, tmp_path, machine_dir):
    work = project(tmp_path)
    r = ow("exec", *VAST, "--mount", f"{work}:{machine_dir}", "--", "pwd && echo ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(machine_dir), "ok"], r.stdout
    r = ow("exec", *VAST, "--no-sync", "sh", "-c", "echo before; kill -TERM $$; echo after")
    assert r.returncode == 128 + signal.SIGTERM, (r.returncode, r.stderr)
    assert "before" in r.stdout and "after" not in r.stdout
    assert rented(vast) == 2 and not alive(vast)


def test_a_command_that_ends_before_ow_waits_for_it_is_not_waited_for_forever(vast, tmp_path):
    """On a loaded machine the command can end before ow's waiter reaches tmux. tmux keeps one
    unheard signal for a waiter still to come, and a second one throws it away: the end of
    the command (its script, or else the pane's death) must be signalled once."""
    shim = tmp_path / "bin"
    shim.mkdir()
    late = shim / "tmux"  # this machine's tmux: `wait-for CHANNEL` gets there 3 s late
    late.write_text('#!/bin/sh\n[ "$1" = wait-for ] && [ "$2" != -S ] && sleep 3\n'
                    f'exec {shutil.which("tmux")} "$@"\n')
    late.chmod(0o755)
    iid = vast.rent("1002", env={"PATH": f"{shim}:{os.environ['PATH']}"})
    try:
        r = ow("exec", "--provider", "vast", "--existing", iid, "--no-sync", "echo ended; exit 4", timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"ow still waited for a command that had ended: {e.stderr}") from None
    assert r.returncode == 4 and r.stdout == "ended\n", (r.returncode, r.stdout, r.stderr)


def test_exec_output_arrives_while_the_command_runs(vast, tmp_path):
    go = tmp_path / "go"
    p = spawn("exec", *VAST, "--no-sync", "sh", "-c",
              f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second")
    try:
        assert p.stdout.readline() == "first\n"  # while the command still waits for `go`
        assert p.poll() is None
        go.touch()
        assert p.stdout.readline() == "second\n"
        assert p.wait(60) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
    assert not alive(vast)


def test_env_file_reaches_the_command_and_nothing_else(vast, tmp_path):
    work = project(tmp_path)
    secret = "s3cr3t-" + os.urandom(6).hex()
    env = tmp_path / ".env"
    env.write_text(f"# keys\nexport TOKEN='{secret}'\nPLAIN=visible value\n")
    r = ow("exec", *VAST, "--no-terminate", "--env-file", str(env), "--mount", f"{work}:work",
           "sh", "-c", 'echo "token=$TOKEN plain=$PLAIN"; printf %s "$TOKEN" | sha256sum; [ -t 1 ] && echo on-a-terminal')
    assert r.returncode == 0, r.stderr
    # every env-file value is masked in the output (they are the user's secrets)
    assert "token=*** plain=***" in r.stdout, r.stdout
    assert hashlib.sha256(secret.encode()).hexdigest() in r.stdout  # the value itself got there
    assert "on-a-terminal" in r.stdout  # masked, yet not a pipe: output is not block-buffered
    assert secret not in r.stdout + r.stderr
    (iid,) = alive(vast)  # kept, and named
    assert f"vast:{iid}" in r.stderr and "kept" in r.stderr
    home = home_of(vast, iid)
    for path in glob.glob(f"{home}/**", recursive=True) + glob.glob(f"{home}/.*/**", recursive=True):
        if os.path.isfile(path):
            assert secret.encode() not in Path(path).read_bytes(), path  # pane log, files, history
    logs = glob.glob(f"{home}/.cache/trainsh/ow/*/log")
    assert logs and b"token=***" in Path(logs[0]).read_bytes()
    vast.api("DELETE", f"instances/{iid}/")


def _timed(started: Path, sent: list):
    """`once` for signalled(): true when `started` exists, noting when (the signal goes then)."""
    def once():
        if started.exists():
            sent.append(time.monotonic())
            return True
        return False
    return once


def test_ctrl_c_passes_to_the_command_and_terminates(vast, tmp_path):
    started, sent = tmp_path / "started", []
    r = signalled([*OW, "exec", *VAST, "--no-sync", "sh", "-c", f"touch {started}; sleep 60"],
                  signal.SIGINT, _timed(started, sent))
    took = time.monotonic() - sent[0]
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "terminated" in r.stderr
    assert rented(vast) == 1 and not alive(vast)
    # the command ended at the Ctrl-C: ow saw that at once (not after its 10 s limit)
    assert took < 6, (took, r.stderr)


def test_sigterm_while_the_command_runs_exits_143_at_once(runpod_fake, tmp_path):
    started, sent = tmp_path / "started", []
    r = signalled([*OW, "exec", "--no-sync", f"touch {started}; sleep 60"], signal.SIGTERM,
                  _timed(started, sent))
    took = time.monotonic() - sent[0]
    assert r.returncode == 128 + signal.SIGTERM and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert took < 6, (took, r.stderr)
    st = runpod_fake.state()
    assert not st["pods"] and len(st["terminated"]) == 1, st


def test_sigterm_while_the_machine_starts_terminates_it(vast, tmp_path):
    vast.control(start_delay=30)
    r = signalled([*OW, "exec", *VAST, "--no-sync", "true"], signal.SIGTERM, lambda: rented(vast))
    assert r.returncode == 128 + signal.SIGTERM and "Traceback" not in r.stderr, r.stderr
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_a_machine_that_crashes_while_it_starts_is_terminated_at_once(vast, tmp_path):
    # an `exited` container "will never reach running" while its disk bills (vast-ai/docs
    # api-reference/hello-world.mdx): ow ends on it, not at its ready time-out, and destroys it
    vast.control(start_delay=600)
    p = spawn("exec", *VAST, "--no-sync", "echo never")
    try:
        wait_until(lambda: alive(vast) or p.poll() is not None, timeout=60, what="a rent")
        iid = alive(vast)[0]
        vast.crash(iid, msg="Error: OCI runtime exec failed")
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
        p.communicate()
    assert p.returncode == 1 and "Traceback" not in err and "never" not in out, (p.returncode, err)
    assert "crashed (exited: the container stopped: Error: OCI runtime exec failed)" in err, err
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_a_closed_terminal_terminates(runpod_fake, tmp_path):
    """SIGHUP (the terminal ow ran in was closed, the login to this machine dropped) ends the
    run as SIGTERM does: the machine is terminated, not left billing."""
    started = tmp_path / "started"  # (the fake's machines share this one's files)
    r = signalled([*OW, "exec", "--no-sync", f"touch {started}; sleep 60"], signal.SIGHUP, started.exists)
    assert r.returncode == 128 + signal.SIGHUP and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    st = runpod_fake.state()
    assert not st["pods"] and len(st["terminated"]) == 1, st


def test_a_failed_sync_terminates(vast, tmp_path):
    work = project(tmp_path)
    r = ow("exec", *VAST, "--mount", f"{work}:/proc/no-such-place", "true")
    assert r.returncode == 1, r.stderr
    assert "sync up failed" in r.stderr and "Traceback" not in r.stderr
    assert rented(vast) == 1 and not alive(vast)


def test_a_dropped_connection_does_not_end_the_command(vast, tmp_path):
    started = tmp_path / "started"
    go = tmp_path / "go"
    control = os.environ["TRAINSH_SSH_CONTROL_DIR"]
    p = spawn("exec", *VAST, "--no-sync", "sh", "-c",
              f"echo one; touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; echo two; exit 3")
    try:
        wait_until(started.exists, timeout=60, what="the command to start")
        # drop every ssh connection ow has (the shared masters and their sessions)
        old = drop_masters(control)
        # ow connects again while the command still runs (it cannot end before `go`)
        wait_until(lambda: set(masters(control).values()) - set(old.values()), timeout=60,
                   what="ow to connect again")
        assert p.poll() is None
        go.touch()
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 3, err
    assert out.splitlines() == ["one", "two"], out
    assert not alive(vast)


def test_existing_machine_is_left_running(vast, tmp_path):
    iid = vast.rent("1002")
    r = ow("exec", "--provider", "vast", "--existing", iid, "--no-sync", "echo", "hi")
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
    assert alive(vast) == [iid] and "left running" in r.stderr


def test_a_remembered_login_is_used_only_for_the_machine_the_cloud_names(vast, tmp_path):
    """`ow exec --existing` starts the login it remembers before the cloud answers; a stale
    entry (here: another machine's) must not run the command anywhere but on the machine asked."""
    import json

    a, b = vast.rent("1002"), vast.rent("1006")  # two asks: a rented one leaves the market
    for iid in (a, b):
        r = ow("exec", "--provider", "vast", "--existing", iid, "--no-sync", "exit 3")
        assert r.returncode == 3, r.stderr
    remembered = Path(os.environ["TRAINSH_HOME"]) / "ow-endpoints.json"
    entries = json.loads(remembered.read_text())
    assert entries[f"vast:{a}"] != entries[f"vast:{b}"]
    assert entries[f"vast:{a}"][-2:] == ["--", "sh -s"]

    entries[f"vast:{a}"] = entries[f"vast:{b}"]  # as if a's address had since passed to b
    remembered.write_text(json.dumps(entries))
    r = ow("exec", "--provider", "vast", "--existing", a, "--no-sync", "touch", "ran-here")
    assert r.returncode == 0, r.stderr
    assert (workspace_of(vast, a) / "ran-here").exists()  # ow's default mount is its cwd
    assert not (workspace_of(vast, b) / "ran-here").exists()
    assert json.loads(remembered.read_text())[f"vast:{a}"] != entries[f"vast:{b}"]  # put right

    for sock in glob.glob(os.path.join(os.environ["TRAINSH_SSH_CONTROL_DIR"], "*")):
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True)
    r = ow("exec", "--provider", "vast", "--existing", a, "--no-sync", "touch x; exit 7")
    assert r.returncode == 7, r.stderr  # a fresh login from the remembered line
    assert (workspace_of(vast, a) / "x").exists() and sorted(alive(vast)) == sorted([a, b])


TINY_BACKEND = '''
import base64, hashlib, os, zipfile
NAME, VER = "owtiny", "0.1"
def _record(files):
    out = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        out.append(f"{name},sha256={digest},{len(data)}")
    return "\\n".join(out + [f"{NAME}-{VER}.dist-info/RECORD,,"]) + "\\n"
def get_requires_for_build_editable(config_settings=None):
    return []
def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    info = f"{NAME}-{VER}.dist-info"
    files = {f"{NAME}.pth": (os.path.abspath(".") + "\\n").encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VER}\\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    name = f"{NAME}-{VER}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
        z.writestr(f"{info}/RECORD", _record(files))
    return name
'''


def test_editable_install_after_the_first_sync(vast, tmp_path):
    work = project(tmp_path)
    (work / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "tinyback"\n'
                                         'backend-path = ["."]\n[project]\nname = "owtiny"\nversion = "0.1"\n')
    (work / "tinyback.py").write_text(TINY_BACKEND)
    (work / "owtiny_mod.py").write_text("WHERE = 'synced'\n")
    r = ow("exec", *VAST, "--mount", f"{work}:work", "--", "cd / && python3 -c "
           "'import owtiny_mod, os; print(owtiny_mod.WHERE, os.path.dirname(owtiny_mod.__file__))'",
           timeout=240)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.split()[0] == "synced" and r.stdout.split()[1].endswith("/work"), r.stdout
    assert not alive(vast)


class Terminal:
    """A real terminal: a tmux pane on a private socket running a command; type, read."""

    def __init__(self, tmp_path: Path, command: str):
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="owt", dir="/tmp")
        self.t = ["tmux", "-S", f"{self.dir}/s", "-f", "/dev/null"]
        subprocess.run(self.t + ["new-session", "-d", "-s", "tty", "-x", "160", "-y", "50",
                                 "sh", "-c", f"{command}; echo OW-EXIT=$?; sleep 60"],
                       check=True, cwd=tmp_path)
        subprocess.run(self.t + ["set-option", "-t", "tty", "history-limit", "5000"], check=True)

    def screen(self) -> str:
        return subprocess.run(self.t + ["capture-pane", "-p", "-J", "-S", "-2000", "-t", "tty"],
                              capture_output=True, text=True).stdout

    def type(self, text: str, enter: bool = True) -> None:
        subprocess.run(self.t + ["send-keys", "-t", "tty", "-l", text], check=True)
        if enter:
            subprocess.run(self.t + ["send-keys", "-t", "tty", "Enter"], check=True)

    def expect(self, text: str, timeout: float = 60) -> str:
        try:
            return wait_until(lambda: text in self.screen() and self.screen(), timeout=timeout,
                              what=f"{text!r} on the screen")
        except AssertionError:
            raise AssertionError(f"{text!r} not on the screen:\n{self.screen()}") from None

    def close(self) -> None:
        import shutil

        subprocess.run(self.t + ["kill-server"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_ssh_prompt_waits_for_the_first_sync_then_live_sync_and_exit_terminates(vast, tmp_path):
    work = project(tmp_path)
    many = work / "many"
    for i in range(3000):
        sub = many / f"d{i % 30}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}").write_bytes(os.urandom(512))
    cmd = " ".join([*OW, "ssh", *VAST, "--mount", f"{work}:work"])
    term = Terminal(tmp_path, cmd)
    try:
        # typed at once: the shell reads it only after its rc file, i.e. after the barrier
        term.type("find many -type f | wc -l | sed 's/^/COUNT:/'")
        count = wait_until(lambda: re.search(r"COUNT:(\d+)", term.screen()), timeout=120,
                           what="the file count")
        screen = term.screen()
        assert count.group(1) == "3000", screen
        assert "waiting for the first sync" in screen, screen  # the barrier held the prompt
        (work / "fromhere.txt").write_text("local edit\n")
        term.type("until [ -e fromhere.txt ]; do sleep 0.05; done; cat fromhere.txt | sed 's/^/GOT=/'")
        term.expect("GOT=local edit")
        term.type("echo remote-made > fromthere.txt")
        try:
            wait_until(lambda: (work / "fromthere.txt").exists(), timeout=30, what="the remote file here")
        except AssertionError:
            raise AssertionError(term.screen()) from None
        assert (work / "fromthere.txt").read_text() == "remote-made\n"
        term.type("echo last > atexit.txt; exit")
        term.expect("terminate vast:")
        term.type("")  # the default answer: terminate
        screen = term.expect("OW-EXIT=", timeout=60)
        assert "OW-EXIT=0" in screen and "terminated" in screen, screen
        assert (work / "atexit.txt").read_text() == "last\n"  # the final sync
    finally:
        term.close()
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_ssh_no_terminate_keeps_and_names_the_machine_env_file_reaches_the_shell(vast, tmp_path):
    work = project(tmp_path)
    secret = "sh-" + os.urandom(6).hex()
    env = tmp_path / ".env"
    env.write_text(f"TOKEN=\"{secret}\"\n")
    term = Terminal(tmp_path, " ".join([*OW, "ssh", *VAST, "--no-terminate", "--env-file", str(env),
                                        "--mount", f"{work}:work"]))
    try:
        term.type("cat in.txt; printf %s \"$TOKEN\" | sha256sum; exit")
        screen = term.expect("OW-EXIT=", timeout=120)
        assert "hello from here" in screen and "OW-EXIT=0" in screen, screen
        assert hashlib.sha256(secret.encode()).hexdigest() in screen  # the value reached the shell
        assert secret not in screen
    finally:
        term.close()
    (iid,) = alive(vast)
    assert f"vast:{iid} kept" in screen.replace("\n", ""), screen
    home = home_of(vast, iid)
    for path in glob.glob(f"{home}/**", recursive=True) + glob.glob(f"{home}/.*", recursive=True) \
            + glob.glob(f"{home}/.*/**", recursive=True):
        if os.path.isfile(path):  # the env file is gone; the shell history never had it
            assert secret.encode() not in Path(path).read_bytes(), path
    vast.api("DELETE", f"instances/{iid}/")


# ---- RunPod, the default provider ------------------------------------------------------------

def test_runpod_exec_env_file_files_back_and_terminated(runpod_fake, tmp_path):
    import json

    work = project(tmp_path)
    secret = "rp-" + os.urandom(6).hex()
    env = tmp_path / ".env"
    env.write_text(f"TOKEN={secret}\n")
    r = ow("exec", "--gpu", "L40", "--env-file", str(env), "--mount", f"{work}:work", "sh", "-c",
           'cat in.txt; echo "t=$TOKEN"; echo back > out.txt; exit 5')
    assert r.returncode == 5, (r.stdout, r.stderr)
    assert "hello from here" in r.stdout and "t=***" in r.stdout and secret not in r.stdout + r.stderr
    assert (work / "out.txt").read_text() == "back\n"
    st = runpod_fake.state()
    assert not st["pods"] and len(st["terminated"]) == 1, st
    assert secret not in json.dumps(st)  # never given to the cloud


def test_runpod_ssh_terminates_on_exit(runpod_fake, tmp_path):
    work = project(tmp_path)
    term = Terminal(tmp_path, " ".join([*OW, "ssh", "--gpu", "L40", "--terminate", "--mount", f"{work}:work"]))
    try:
        term.type("cat in.txt | sed 's/^/SEEN:/'; exit")
        screen = term.expect("OW-EXIT=", timeout=120)
        assert "SEEN:hello from here" in screen and "OW-EXIT=0" in screen, screen
    finally:
        term.close()
    st = runpod_fake.state()
    assert not st["pods"] and len(st["terminated"]) == 1, st


def test_runpod_bad_key_and_no_capacity_rent_nothing(runpod_fake, tmp_path):
    env = {**os.environ, "RUNPOD_API_KEY": "wrong"}
    r = subprocess.run([*OW, "exec", "--no-sync", "true"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL, env=env)
    assert r.returncode in (1, 2) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    r = ow("exec", "--gpu", "K80", "true")
    assert r.returncode == 2 and "unknown GPU 'K80'" in r.stderr
    runpod_fake.control(no_capacity=True)  # the cloud has no machine to give
    r = ow("exec", "--gpu", "L40", "--no-sync", "true")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    st = runpod_fake.state()
    assert not st["pods"] and not st["terminated"], st


def test_a_machine_lost_for_good_ends_the_run_at_once_and_is_terminated(vast, tmp_path):
    started = tmp_path / "started"
    p = spawn("exec", *VAST, "--no-sync", "sh", "-c", f"touch {started}; sleep 60")
    try:
        wait_until(started.exists, timeout=60, what="the command to start")
        (iid,) = alive(vast)
        vast.api("PUT", f"instances/{iid}/", {"state": "stopped"})  # its sshd and processes end
        out, err = p.communicate(timeout=45)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    # (lost: the cloud says it stopped; without --recover that ends the run, in one line)
    assert f"vast:{iid} was lost (stopped) while running the command" in err and "Traceback" not in err, err
    assert not alive(vast), vast.state()


def test_sigterm_in_the_shell_terminates(vast, tmp_path):
    work = project(tmp_path)
    ow_ssh = " ".join([*OW, "ssh", *VAST, "--mount", f"{work}:work"])
    term = Terminal(tmp_path, f"sh -c 'echo PID=$$; exec {ow_ssh}'")
    try:
        pid = int(re.search(r"PID=(\d+)", term.expect("PID=")).group(1))
        term.type("cat in.txt | sed 's/^/SEEN:/'")
        term.expect("SEEN:hello")
        os.kill(pid, signal.SIGTERM)
        screen = term.expect("OW-EXIT=", timeout=60)
        assert "OW-EXIT=143" in screen and "terminated" in screen and "Traceback" not in screen, screen
    finally:
        term.close()
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_ssh_connection_dropped_final_sync_then_terminated(vast, tmp_path):
    work = project(tmp_path)
    control = os.environ["TRAINSH_SSH_CONTROL_DIR"]
    term = Terminal(tmp_path, " ".join([*OW, "ssh", *VAST, "--mount", f"{work}:work"]))
    try:
        term.type("echo kept > made-before-drop.txt; echo DONE-$((6*7))")
        term.expect("DONE-42")
        drop_masters(control)  # the connection drops (shell and watchers with it)
        term.expect("terminate vast:")
        term.type("")
        screen = term.expect("OW-EXIT=", timeout=60)
        assert "terminated" in screen and "Traceback" not in screen, screen
    finally:
        term.close()
    assert (work / "made-before-drop.txt").read_text() == "kept\n"
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_a_machine_that_lost_unisons_archive_still_syncs(runpod_fake, tmp_path, machine_dir):
    """The machine's half of unison's archive is gone (a pod's disk is reset when it stops,
    or here: the next machine answers to the same name) while this side's is kept: the sync
    goes on as a first one, instead of failing on every run from then on."""
    work = project(tmp_path)
    remote = str(machine_dir)
    try:
        r = ow("exec", "--mount", f"{work}:{remote}", "echo one > one.txt")
        assert r.returncode == 0, r.stderr
        subprocess.run(["rm", "-rf", remote], check=True)  # (the next pod's disk, on this host)
        (work / "two.txt").write_text("two\n")
        r = ow("exec", "--mount", f"{work}:{remote}", "cat two.txt; echo three > three.txt")
        assert r.returncode == 0 and r.stdout == "two\n", (r.stdout, r.stderr)
        assert (work / "three.txt").read_text() == "three\n"
    finally:
        subprocess.run(["rm", "-rf", remote])
    st = runpod_fake.state()
    assert not st["pods"] and len(st["terminated"]) == 2, st


def test_a_stopped_existing_machine_is_named_as_stopped_and_left_so(runpod_fake, tmp_path):
    from trainsh.cloud.provider import CreateRequest
    from trainsh.cloud.runpod import RunPodProvider

    cloud = RunPodProvider()
    inst = cloud.create("L40", CreateRequest(image="img", disk_gb=20, label="mine",
                                             public_key=runpod_fake.public_key))
    cloud.wait_ready(inst.id, timeout=30)
    cloud.stop(inst.id)
    r = ow("exec", "--existing", inst.id, "--no-sync", "true")
    assert r.returncode == 1 and f"is stopped (train runpod start {inst.id})" in r.stderr, r.stderr
    assert "left running" not in r.stderr and "left as it is" in r.stderr, r.stderr
    assert runpod_fake.state()["pods"][inst.id]["desiredStatus"] == "EXITED"
    cloud.destroy(inst.id)


# ---- ow never leaves a machine billing: exec never asks; the watcher when ow is gone ----------

def watcher_of(home: Path) -> Path:
    """The pid file of ow's autostop watcher in a machine's home."""
    return home / ".cache/trainsh/autostop/ow.pid"


def test_exec_on_a_terminal_terminates_without_asking(vast, tmp_path):
    """Only `ow ssh` asks whether to terminate: `ow exec` on a terminal must not wait on a
    question (with no time-out) while the machine bills."""
    term = Terminal(tmp_path, " ".join([*OW, "exec", *VAST, "--no-sync", "echo", "RAN-$((6*7))"]))
    try:
        screen = term.expect("OW-EXIT=", timeout=120)
    finally:
        term.close()
    assert "RAN-42" in screen and "OW-EXIT=0" in screen, screen
    assert "[Y/n]" not in screen and "terminated" in screen, screen
    assert rented(vast) == 1 and not alive(vast), vast.state()


def test_a_killed_ow_exec_leaves_a_machine_that_destroys_itself_once_idle(vast, tmp_path):
    """kill -9 of ow (or a laptop that sleeps): nothing of ow is left to end the machine. Its
    watcher keeps it while the command runs, then destroys it once nothing runs there and no
    ow is connected for --autostop."""
    started, go = tmp_path / "started", tmp_path / "go"
    p = spawn("exec", *VAST, "--autostop", "3s", "--no-sync", "sh", "-c",
              f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done")
    try:
        wait_until(started.exists, timeout=60, what="the command to start")
        (iid,) = alive(vast)
        wait_until(watcher_of(home_of(vast, iid)).exists, timeout=30, what="ow's watcher on the machine")
        p.kill()  # kill -9: no handler runs, the machine is not terminated by ow
        p.wait()
        time.sleep(3 * 2 + 1)  # twice the idle time: the running command keeps the machine
        assert alive(vast) == [iid], vast.state()
        go.touch()  # the command ends: nothing runs there, no ow is connected
        wait_until(lambda: not alive(vast), timeout=60, what="the watcher to destroy the machine")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    assert rented(vast) == 1 and vast.state()["destroyed"] == [int(iid)]


def test_a_killed_ow_ssh_leaves_a_pod_that_terminates_itself(runpod_fake, tmp_path):
    """The same on RunPod, for `ow ssh`: the pod terminates itself with its own key once no ow
    has been connected, and no command has run in tmux there, for --autostop (the shell's ssh
    client, orphaned, is no ow)."""
    ow_ssh = " ".join([*OW, "ssh", "--autostop", "3s", "--no-sync"])
    go = tmp_path / "go"
    term = Terminal(tmp_path, f"sh -c 'echo PID=$$; exec {ow_ssh}'")
    try:
        pid = int(re.search(r"PID=(\d+)", term.expect("PID=")).group(1))
        # a command the user left running in a tmux session of their own keeps the pod
        term.type(f"tmux new-session -d -s mine 'while [ ! -e {go} ]; do sleep 0.05; done'; "
                  "echo $RUNPOD_POD_ID | sed 's/^/ON:/'")
        pod = wait_until(lambda: re.search(r"ON:([0-9a-f]{6,})", term.screen()), timeout=120,
                         what="the pod's id").group(1)
        home = Path(runpod_fake.state()["pods"][pod]["home"])
        wait_until(watcher_of(home).exists, timeout=30, what="ow's watcher on the pod")
        os.kill(pid, signal.SIGKILL)
        time.sleep(3 * 2 + 1)  # twice the idle time
        assert runpod_fake.pod_state(pod) == "RUNNING", term.screen()
        go.touch()
        wait_until(lambda: pod in runpod_fake.state()["terminated"], timeout=60,
                   what="the pod to terminate itself")
    finally:
        term.close()
    st = runpod_fake.state()
    assert not st["pods"] and list(st["terminated"]) == [pod], st


def test_a_machine_kept_with_no_terminate_has_no_watcher_and_existing_ones_get_none(runpod_fake, tmp_path):
    r = ow("exec", "--no-terminate", "--autostop", "2s", "--no-sync", "echo kept")
    assert r.returncode == 0 and "kept running" in r.stderr, r.stderr
    ((pod, info),) = runpod_fake.state()["pods"].items()
    home = Path(info["home"])
    assert (home / ".cache/trainsh/autostop/ow.log").exists()  # it had one while ow ran
    assert not watcher_of(home).exists()  # and it is gone: a kept machine is the user's
    r = ow("exec", "--existing", pod, "--autostop", "2s", "--no-sync", "true")
    assert r.returncode == 0, r.stderr
    assert not watcher_of(home).exists()  # never on a machine ow did not rent
    time.sleep(2 * 2 + 1)
    assert runpod_fake.pod_state(pod) == "RUNNING"
    from trainsh.cloud.runpod import RunPodProvider

    RunPodProvider().destroy(pod)


def test_autostop_bad_duration_is_bad_input_and_rents_nothing(runpod_fake, tmp_path):
    r = ow("exec", "--autostop", "soon", "true")
    assert r.returncode == 2 and "--autostop soon" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not runpod_fake.state()["pods"] and not runpod_fake.state()["terminated"]


def test_a_conflict_brings_the_machines_version_back_before_it_is_destroyed(runpod_fake, tmp_path,
                                                                           machine_dir):
    """A file changed on both sides is left as it is by unison; the machine is then destroyed,
    so its version comes back beside ours as NAME.remote-ID (ours untouched)."""
    work = project(tmp_path)
    (work / "sub dir").mkdir()
    (work / "sub dir" / "notes.txt").write_text("first\n")
    changed_here = tmp_path / "changed-here"
    script = ("echo theirs > in.txt; echo 'their notes' > 'sub dir/notes.txt'; echo untouched > other.txt; "
              f"touch {changed_here}.go; while [ ! -e {changed_here} ]; do sleep 0.05; done")
    p = spawn("exec", "--mount", f"{work}:{machine_dir}", script)
    try:
        wait_until(Path(f"{changed_here}.go").exists, timeout=120, what="the command to change its files")
        (work / "in.txt").write_text("ours\n")  # changed here too, while the command ran
        (work / "sub dir" / "notes.txt").write_text("our notes\n")
        changed_here.touch()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    ((pod, _),) = runpod_fake.state()["terminated"].items()
    assert (work / "in.txt").read_text() == "ours\n"
    assert (work / f"in.txt.remote-{pod}").read_text() == "theirs\n", err
    assert (work / "sub dir" / "notes.txt").read_text() == "our notes\n"
    assert (work / "sub dir" / f"notes.txt.remote-{pod}").read_text() == "their notes\n"
    assert (work / "other.txt").read_text() == "untouched\n"
    assert f"in.txt.remote-{pod}" in err and "left as it is" not in err, err
    assert not runpod_fake.state()["pods"]


def test_a_machine_destroyed_during_the_command_is_said_gone_not_left_billing(vast, tmp_path):
    """Destroyed through the cloud's API while its command runs: ow's end finds nothing to
    terminate and says so (nothing bills), not that it could not terminate it."""
    started = tmp_path / "started"
    p = spawn("exec", *VAST, "--no-sync", "sh", "-c", f"touch {started}; sleep 60")
    try:
        wait_until(started.exists, timeout=60, what="the command to start")
        (iid,) = alive(vast)
        vast.api("DELETE", f"instances/{iid}/")
        out, err = p.communicate(timeout=45)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 1, err
    assert f"ow: vast:{iid} is gone already (destroyed): nothing bills" in err, err
    assert "could NOT" not in err and "may still bill" not in err and "Traceback" not in err, err
    assert vast.state()["destroyed"] == [int(iid)] and not alive(vast)
