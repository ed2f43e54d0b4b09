"""Recipes on ssh hosts: a real sshd on loopback, real tmux on the far side, real rsync."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from helpers import TRAIN, drop_masters, masters, train, wait_until, write_recipe
from sshd import USER

from trainsh.runtime.journal import Journal


def run(tmp_path, text: str, *args: str, name: str = "r.recipe"):
    r = write_recipe(tmp_path / name, text)
    return train("recipe", "run", str(r), "--no-visual", *args)


def last_steps():
    j = Journal()
    try:
        job = j.jobs(1)[0]
        return job, j.steps(job.id)
    finally:
        j.close()


def remote_tmux(server, *args) -> subprocess.CompletedProcess:
    socks = list(server.tmux_dir.glob("tmux-*/default"))
    assert socks, "no remote tmux server"
    return subprocess.run(["tmux", "-S", str(socks[0]), *args], capture_output=True, text=True)


ENGINE = """
host gpu = {spec}
tmux.open @gpu as w
@w > cd /tmp && echo "whoami=$(whoami) home=$HOME"
@w > cat > {dir}/doc.txt <<'EOF'
quotes "kept" and $NAME literal
EOF
@w > (exit 6)
"""


@pytest.mark.parametrize("user", ["root", USER], ids=["root", "test-user"])
def test_exit_codes_output_and_heredocs_over_ssh(tmp_path, ssh, user):
    server = ssh.b if user == USER else ssh.a
    workdir = server.home
    p = run(tmp_path, ENGINE.format(spec=server.spec(user), dir=workdir))
    assert p.returncode == 1, p.stderr
    assert "command exited with code 6" in p.stderr
    assert f"whoami={user} home={server.home}" in p.stderr
    assert (workdir / "doc.txt").read_text() == 'quotes "kept" and $NAME literal\n'
    job, steps = last_steps()
    assert [s["exit_code"] for s in steps] == [0, 0, 0, 6]
    # the failed job closed its session and left no run folder behind on the host
    assert not (server.home / ".cache/trainsh/run" / job.id).exists()
    assert (tmp_path / "trainsh/jobs" / job.id / "output/0001.log").read_text().startswith("whoami=")


def test_waits_run_on_the_host(tmp_path, ssh):
    # the port is opened on the host's loopback only; the pattern and file appear there too
    port = __import__("sshd").free_port()
    p = run(tmp_path, f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
tmux.open @gpu as srv
@w > for i in 1 2 3; do echo "epoch $i"; sleep 0.1; done; touch $HOME/flag &
wait @w "epoch 3" timeout=20s
wait @w file=$HOME/flag timeout=20s
wait @w idle timeout=20s
@srv > exec python3 -m http.server {port} --bind 127.0.0.1 &
wait @srv port={port} timeout=20s
@w timeout=1s > sleep 30
""")
    assert p.returncode == 1, p.stderr
    assert "epoch 3" in p.stderr and "idle after" in p.stderr and f"port {port} after" in p.stderr
    assert "timed out after 1s and was interrupted" in p.stderr


def test_jump_host_and_hosts_file_name(tmp_path, ssh):
    from trainsh.settings import paths

    paths.home().mkdir(parents=True, exist_ok=True)
    paths.hosts_file().write_text(
        f'[box]\nhost = "127.0.0.1"\nuser = "root"\nport = {ssh.a.port}\njump = "root@127.0.0.1:{ssh.b.port}"\n')
    p = run(tmp_path, """
host gpu = box
tmux.open @gpu as w
@w > echo "via-jump $SSH_CONNECTION"
""")
    assert p.returncode == 0, p.stderr
    assert "via-jump 127.0.0.1" in p.stderr
    # the connection came through B: sshd A logged a connection from B's forwarding
    assert "Accepted publickey for root" in (ssh.base / "sshd_b.log").read_text()


def test_host_override_fills_a_placeholder_and_status_shows_how_to_attach(tmp_path, ssh):
    p = run(tmp_path, "host gpu = placeholder\ntmux.open @gpu as w\n@w > hostname\n",
            "--host", f"gpu={ssh.a.spec()}")
    assert p.returncode == 0, p.stderr
    job, _ = last_steps()
    status = train("recipe", "status", "--all").stdout
    line = next(ln for ln in status.splitlines() if "session w" in ln)
    assert f"ssh -p {ssh.a.port}" in line and f"-t root@127.0.0.1 -- 'tmux attach -t w-{job.id}'" in line
    assert "ControlPath" not in line


def test_transfers_local_host_and_host_host(tmp_path, ssh):
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    for i in range(20):
        (src / "sub" / f"f{i}.bin").write_bytes(os.urandom(1000 + i))
    (src / "skip.ckpt").write_text("no")
    a, b = ssh.a.home, ssh.b.home
    p = run(tmp_path, f"""
host A = {ssh.a.spec()}
host B = {ssh.b.spec(USER)}
host R = {ssh.b.spec()}
./data/ -> @A:{a}/new/deeper/data exclude=*.ckpt
@A:{a}/new/deeper/data/ -> ./back
@A:{a}/new/deeper/data -> @R:{b}/direct/
@B:{b}/direct/data -> @A:{a}/relayed/
""")
    assert p.returncode == 0, p.stderr
    want = {f.relative_to(src / "sub") : f.read_bytes() for f in (src / "sub").iterdir()}
    for folder in (a / "new/deeper/data/sub", tmp_path / "back/sub", b / "direct/data/sub",
                   a / "relayed/data/sub"):
        got = {f.relative_to(folder): f.read_bytes() for f in folder.iterdir()}
        assert got == want, folder
    assert not (a / "new/deeper/data/skip.ckpt").exists()
    assert "direct from root@127.0.0.1" in p.stderr  # A reached R by itself
    assert "through this machine" in p.stderr  # the non-root user on B cannot reach A


def test_a_dropped_master_connection_is_reconnected(tmp_path, ssh, monkeypatch):
    started, go = ssh.a.home / f"started-{tmp_path.name}", ssh.a.home / f"go-{tmp_path.name}"
    r = write_recipe(tmp_path / "drop.recipe", f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; echo finished-after-drop; (exit 4)
""")
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    control = os.environ["TRAINSH_SSH_CONTROL_DIR"]
    try:
        wait_until(started.exists, what="the command to run")
        # kill the master while the command runs: every multiplexed session drops
        old = drop_masters(control)
        # train connects again while the command still runs (it cannot end before `go`)
        wait_until(lambda: set(masters(control).values()) - set(old.values()), 30,
                   what="a new connection master")
        assert proc.poll() is None
        go.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert "command exited with code 4" in err
    assert "finished-after-drop" in err


def test_authentication_failure_is_one_clear_line(tmp_path, ssh):
    t0 = time.monotonic()
    p = run(tmp_path, f"host gpu = nobody-here@127.0.0.1 -p {ssh.a.port}\ntmux.open @gpu as w\n")
    assert p.returncode == 1
    assert "Permission denied" in p.stderr and "Traceback" not in p.stderr
    assert time.monotonic() - t0 < 15  # no retry loop


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def test_a_host_that_dies_mid_run_fails_once_not_once_per_cleanup(tmp_path, ssh_servers, ssh):
    """After the reconnect window has declared the host down, closing its sessions and
    removing its run folder make one short attempt each and say what was left behind."""
    import re

    from sshd import free_port

    base = ssh_servers.base
    home, tmux_dir = tmp_path / "dead-home", tmp_path / "dead-tmux"
    home.mkdir()
    tmux_dir.mkdir(mode=0o1777)
    port = free_port()
    cfg = (base / "sshd_a").read_text()
    cfg = re.sub(r"(?m)^Port .*$", f"Port {port}", cfg)
    cfg = re.sub(r"(?m)^PidFile .*$", f"PidFile {tmp_path}/dead.pid", cfg)
    cfg = re.sub(r"(?m)^SetEnv .*$", f"SetEnv HOME={home} TMUX_TMPDIR={tmux_dir}", cfg)
    (tmp_path / "dead_sshd").write_text(cfg)
    subprocess.run(["/usr/sbin/sshd", "-f", str(tmp_path / "dead_sshd"), "-E", str(tmp_path / "dead.log")],
                   check=True)
    listener = int(wait_until(lambda: (tmp_path / "dead.pid").exists()
                              and (tmp_path / "dead.pid").read_text().strip(), what="sshd"))
    proc = None
    try:
        r = write_recipe(tmp_path / "dead.recipe", f"""
host gpu = root@127.0.0.1 -p {port}
tmux.open @gpu as w
@w > touch {home}/started; sleep 300
""")
        proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_until(lambda: (home / "started").exists(), timeout=60, what="the command to start")
        t0 = time.monotonic()
        for pid in [listener, *_descendants(listener)]:  # the host goes away: connections too
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=400)
        took = time.monotonic() - t0
        assert proc.returncode == 1, err
        assert "Connection refused" in err, err
        # one reconnect window (60 s), not three (one more each to close and to clean)
        assert took < 110, (took, err)
        assert "could not close session w" in err and "tmux attach -t w-" in err, err
        assert ".cache/trainsh/run/" in err and "left behind" in err, err
        job, _ = last_steps()
        p = train("recipe", "status")
        assert job.id in p.stdout and "session w" in p.stdout, p.stdout  # it may still run
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for sock in tmux_dir.glob("tmux-*/*"):
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
        for pid in [listener, *_descendants(listener)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_resume_over_ssh_after_kill_9(tmp_path, ssh):
    home = ssh.a.home / f"res-{time.time_ns()}"  # its own: another test leaves a `started` behind
    home.mkdir()
    r = write_recipe(tmp_path / "res.recipe", f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > touch {home}/started; while [ ! -e {home}/release ]; do sleep 0.05; done; echo two >> {home}/log
@w > echo three >> {home}/log
""")
    proc = subprocess.Popen([*TRAIN, "recipe", "run", str(r), "--no-visual"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (home / "started").exists(), what="the command to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (home / "release").touch()
    p = train("recipe", "resume", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (home / "log").read_text() == "two\nthree\n"


def test_host_commands(tmp_path, ssh):
    p = train("host", "add", "box", "root@127.0.0.1", "--port", str(ssh.a.port))
    assert p.returncode == 0, p.stderr
    assert train("host", "add", "box", "root@127.0.0.1").returncode == 2  # exists already
    assert "box" in train("host", "list").stdout
    show = train("host", "show", "box").stdout
    assert f"port     {ssh.a.port}" in show and "ControlMaster=auto" in show
    t = train("host", "test", "box")
    assert t.returncode == 0, t.stdout + t.stderr
    assert "reachable, authenticated" in t.stdout and "tmux     found" in t.stdout
    assert "disk" in t.stdout and "GB free" in t.stdout
    (ssh.a.home / "listing-me.txt").write_text("x" * 1234)
    b = train("host", "browse", "box")
    assert b.returncode == 0 and "listing-me.txt" in b.stdout and "1234" in b.stdout
    # train transfer with a host on one side
    (tmp_path / "up.txt").write_text("up")
    assert train("transfer", "up.txt", f"@box:{ssh.a.home}/t/up.txt").returncode == 0
    assert (ssh.a.home / "t" / "up.txt").read_text() == "up"
    assert train("transfer", f"@box:{ssh.a.home}/t/", "down/").returncode == 0
    assert (tmp_path / "down" / "up.txt").read_text() == "up"
    assert train("host", "remove", "box").returncode == 0
    p = train("host", "test", "box")
    assert p.returncode == 2 and "no host 'box'" in p.stderr


def test_host_test_reports_a_failed_login(tmp_path, ssh):
    assert train("host", "add", "nope", "nobody@127.0.0.1", "--port", str(ssh.a.port)).returncode == 0
    p = train("host", "test", "nope")
    assert p.returncode == 1 and "Permission denied" in p.stderr and "Traceback" not in p.stderr


def test_a_secret_on_an_ssh_host_leaks_nowhere(tmp_path, ssh, monkeypatch):
    value = "remote-secret-7f1e9c3b"
    monkeypatch.setenv("HF_TOKEN", value)
    p = run(tmp_path, f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > echo "token=${{secret:HF_TOKEN}}"; printenv HF_TOKEN_COPY || true
@w > echo "tty=${{secret:HF_TOKEN}}" > /dev/tty
@w > history -w
""", "--keep-sessions")
    assert p.returncode == 0, p.stderr
    assert "token=***" in p.stderr and "tty=***" in p.stderr and value not in p.stderr
    from trainsh.settings import paths

    for root in (paths.home(), ssh.a.home):  # here, and everything the host keeps
        for f in root.rglob("*"):
            if f.is_file():
                assert value.encode() not in f.read_bytes(), f
    scrollback = remote_tmux(ssh.a, "capture-pane", "-p", "-S", "-", "-t",
                             remote_tmux(ssh.a, "ls", "-F", "#{session_name}").stdout.split()[0]).stdout
    assert "token=***" in scrollback and "tty=***" in scrollback and value not in scrollback


def _drive(tmp_path, command: str, keys: list[tuple[str, str]], timeout: float = 20) -> str:
    """Run `train ...` in a real terminal (a tmux pane), answer its prompts, return the screen."""
    import shlex

    # A socket of its own each time: a server just killed may still hold the last one.
    sock = str(tmp_path / f"tty{time.monotonic_ns()}.sock")
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in
                   ("HOME", "TRAINSH_HOME", "TRAINSH_SSH_OPTIONS", "TRAINSH_SSH_CONTROL_DIR", "PATH"))
    t = ["tmux", "-S", sock]
    subprocess.run(t + ["new-session", "-d", "-s", "tty", "-x", "160", "-y", "50",
                        f"env {env} {shlex.join(TRAIN)} {command}; echo EXITED=$?; sleep 30"], check=True)
    try:
        for expect, answer in keys:
            wait_until(lambda: expect in subprocess.run(t + ["capture-pane", "-p", "-t", "tty"],
                       capture_output=True, text=True).stdout, timeout, what=repr(expect))
            subprocess.run(t + ["send-keys", "-t", "tty", "-l", answer], check=True)
            subprocess.run(t + ["send-keys", "-t", "tty", "Enter"], check=True)

        def exited():
            out = subprocess.run(t + ["capture-pane", "-p", "-J", "-S", "-200", "-t", "tty"],
                                 capture_output=True, text=True).stdout
            return out if "EXITED=" in out else None
        return wait_until(exited, timeout, what="the command to end")
    finally:
        subprocess.run(t + ["kill-server"], capture_output=True)


def test_host_add_asks_on_a_terminal_and_browse_fetches_a_file(tmp_path, ssh):
    screen = _drive(tmp_path, "host add", [
        ("name:", "tty-box"), ("user@host:", "root@127.0.0.1"), ("port", str(ssh.a.port)),
        ("identity file", ""), ("jump host", "")])
    assert "added tty-box" in screen and "EXITED=0" in screen
    (ssh.a.home / "models").mkdir()
    (ssh.a.home / "models" / "weights.pt").write_text("trained")
    screen = _drive(tmp_path, f"host browse tty-box {ssh.a.home}", [
        ("cd DIR", "cd models"), ("weights.pt", f"get weights.pt {tmp_path}/fetched.pt"),
        ("copied 1 file", "q")])
    assert "EXITED=0" in screen
    assert (tmp_path / "fetched.pt").read_text() == "trained"


def test_background_order_idle_failure_and_pattern_end_over_ssh(tmp_path, ssh):
    home = ssh.a.home
    p = run(tmp_path, f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > sleep 0.3; echo first >> {home}/order; false &
@w > echo second >> {home}/order
@w > echo nothing-here &
wait @w "never printed" timeout=60s
""")
    assert (home / "order").read_text() == "first\nsecond\n"
    assert "background command in w failed (exit code 1)" in p.stderr
    assert p.returncode == 1 and "ended (exit 0) without printing 'never printed'" in p.stderr
    p = run(tmp_path, f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > sleep 0.2; python3 -c 'raise SystemExit(4)' &
wait @w idle timeout=20s
""", name="idle.recipe")
    assert p.returncode == 1 and "exited with code 4" in p.stderr and "SystemExit(4)" in p.stderr


def test_exiting_shell_and_closing_a_session_over_ssh(tmp_path, ssh):
    p = run(tmp_path, f"host gpu = {ssh.a.spec()}\ntmux.open @gpu as w\n@w > exit 3\n")
    assert p.returncode == 1 and "shell exited (status 3)" in p.stderr
    token = f"trainsh-ssh-close-{time.time_ns()}"
    ran = ssh.a.home / f"{token}.ran"
    p = run(tmp_path, f"""
host gpu = {ssh.a.spec()}
tmux.open @gpu as w
@w > python3 -c 'import sys, time; open(sys.argv[1], "w").close(); time.sleep(300)' {ran} &
wait @w file={ran} timeout=30s
tmux.close @w
""", name="close.recipe")
    assert p.returncode == 0, p.stderr
    assert ran.exists()  # the command ran: it is the closing that must stop it

    def gone():  # (the token is this test's own: no other process has it)
        return subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 1
    wait_until(gone, timeout=10, what="the remote command to stop with its session")


def test_exit_255_of_a_remote_command_is_not_a_dropped_connection(tmp_path, ssh):
    t0 = time.monotonic()
    p = train("exec", f"host me = {ssh.a.spec()}", f"@me > echo x >> {ssh.a.home}/count; exit 255")
    assert p.returncode == 255  # train exec ends as its command did
    assert "exited with code 255" in p.stderr  # the command's own, from its session, not ssh's
    assert (ssh.a.home / "count").read_text() == "x\n"  # run once, not retried
    assert time.monotonic() - t0 < 15


def test_tilde_paths_on_a_host_mean_its_home(tmp_path, ssh):
    (tmp_path / "f.txt").write_text("tilde")
    p = run(tmp_path, f"host gpu = {ssh.a.spec()}\n./f.txt -> @gpu:~/tilde/\n")
    assert p.returncode == 0, p.stderr
    assert (ssh.a.home / "tilde" / "f.txt").read_text() == "tilde"
    assert not (ssh.a.home / "~").exists()


def test_gdrive_storage_asks_for_its_token_once_on_a_terminal(tmp_path, ssh, monkeypatch):
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "pw")
    token = '{"access_token":"ya29.test-token","token_type":"Bearer","expiry":"2030-01-01T00:00:00Z"}'
    screen = _drive(tmp_path, "storage add drive gdrive:models", [("token:", token)])
    assert "token stored as the secret GDRIVE_TOKEN" in screen and "EXITED=0" in screen
    assert "ya29" not in screen  # typed without echo
    assert train("secrets", "get", "GDRIVE_TOKEN").stdout.strip() == token
    show = train("storage", "show", "drive").stdout
    assert "GDRIVE_TOKEN" in show and "file" in show


def remote_sessions(server) -> list[str]:
    """The tmux sessions open on a test server (none when its tmux server is gone)."""
    names = []
    for sock in server.tmux_dir.glob("tmux-*/default"):
        r = subprocess.run(["tmux", "-S", str(sock), "list-sessions", "-F", "#{session_name}"],
                           capture_output=True, text=True)
        names += r.stdout.split()
    return names


def test_exec_on_a_hosts_toml_name(tmp_path, ssh):
    assert train("host", "add", "gpu1", "root@127.0.0.1", "--port", str(ssh.a.port)).returncode == 0
    p = train("exec", "@gpu1 > cd /tmp && echo on-$((6*7)) $HOME", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"on-42 {ssh.a.home}\n"  # the command's output, and only it, on stdout
    assert remote_sessions(ssh.a) == []  # its throw-away session was closed
    job, steps = last_steps()
    assert job.hosts["gpu1"] == f"root@127.0.0.1 -p {ssh.a.port}"
    assert not (ssh.a.home / ".cache/trainsh/run" / job.id).exists()

    p = train("exec", "@gpu1 > echo partial; exit 7", "--no-visual")
    assert p.returncode == 7 and "command exited with code 7" in p.stderr  # its exit code
    assert p.stdout == "partial\n"
    p = train("exec", "@gpu1 > echo out; echo err >&2; exit 3", "--no-visual")
    assert p.returncode == 3 and "command exited with code 3" in p.stderr
    assert p.stdout == "out\n" and "err\n" in p.stderr  # its stderr on ours, apart
    assert remote_sessions(ssh.a) == []

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("via exec")
    p = train("exec", "./src/ -> @gpu1:~/x/", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (ssh.a.home / "x" / "a.txt").read_text() == "via exec"
    # a session opened earlier in the same exec comes first; a transfer to it goes to its host
    p = train("exec", "tmux.open @gpu1 as gpu1", "@gpu1 > cd ~/x && echo in-session > b.txt",
              "@gpu1:~/x/b.txt -> ./back/", "tmux.close @gpu1", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "back" / "b.txt").read_text() == "in-session\n"
    assert remote_sessions(ssh.a) == []


def test_exec_on_an_ssh_alias(tmp_path, ssh, monkeypatch):
    config = tmp_path / "ssh_config"
    config.write_text(f"Host trainbox\n  HostName 127.0.0.1\n  Port {ssh.b.port}\n  User {USER}\n\n"
                      + ssh.config.read_text())
    monkeypatch.setenv("TRAINSH_SSH_OPTIONS", f"-F {config}")
    p = train("exec", "@trainbox > whoami; pwd", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [USER, str(ssh.b.home)]
    assert remote_sessions(ssh.b) == []
    (tmp_path / "f.txt").write_text("to the alias")
    p = train("exec", "f.txt -> @trainbox:~/in/", "--no-visual")
    assert p.returncode == 0, p.stderr
    assert (ssh.b.home / "in" / "f.txt").read_text() == "to the alias"


def test_first_contact_with_an_unknown_host_key_is_refused_until_the_user_accepts_it(tmp_path, ssh,
                                                                                     monkeypatch):
    """The user's own path: no TRAINSH_SSH_OPTIONS (the other tests' config accepts new keys).
    trainsh never accepts a host key for a host the user names: the first contact fails with
    ssh's own reason and runs nothing; once the key is known (as `ssh` by hand or ssh-keyscan
    leaves it) the same host works; a changed key is refused. (ssh reads known_hosts from the
    real home folder whatever HOME says, so the spec names a file of this test's own.)"""
    import sshd

    monkeypatch.delenv("TRAINSH_SSH_OPTIONS")
    known = tmp_path / "known_hosts"
    ran = ssh.a.home / f"ran-{tmp_path.name}"
    spec = (f"root@127.0.0.1 -p {ssh.a.port} -i {ssh.base}/client -o UserKnownHostsFile={known} "
            "-o GlobalKnownHostsFile=/dev/null")
    step = f"@me > touch {ran}; echo hi-$((2+3))"
    p = train("exec", f"host me = {spec}", step)
    assert p.returncode == 1 and "Host key verification failed" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and "hi-5" not in p.stdout
    assert not ran.exists() and not known.exists()  # nothing ran, no key was taken on trust

    scan = subprocess.run(["ssh-keyscan", "-p", str(ssh.a.port), "127.0.0.1"], capture_output=True,
                          text=True, check=True)
    known.write_text(scan.stdout)  # the user accepts the key
    p = train("exec", f"host me = {spec}", step)
    assert p.returncode == 0 and p.stdout == "hi-5\n", p.stderr
    assert ran.exists()
    ran.unlink()

    sshd.close_masters(os.environ["TRAINSH_SSH_CONTROL_DIR"])  # a new connection sees the key
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    kind, key = (tmp_path / "other.pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{ssh.a.port} {kind} {key}\n")  # as if the host's key had changed
    p = train("exec", f"host me = {spec}", step)
    assert p.returncode == 1 and "Host key verification failed" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not ran.exists()
