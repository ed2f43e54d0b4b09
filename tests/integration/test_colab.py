"""Colab hosts against a real sshd that takes only a password, reached through a stand-in
`cloudflared` on PATH that ssh runs through the same ProxyCommand line as the real one."""

from __future__ import annotations

import os
import secrets as pysecrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import train, write_recipe
from sshd import run_user

USER = run_user("colab")  # this run's own user (see tests/sshd.py)

RELAY = """#!{python}
# A stand-in for `cloudflared access ssh --hostname HOST`: relays stdin/stdout to the sshd
# that the test maps HOST to (a file named HOST holding its port); no file = tunnel gone.
import os, socket, sys, threading
state = {state!r}
with open(os.path.join(state, "calls"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if len(sys.argv) != 5 or sys.argv[1:4] != ["access", "ssh", "--hostname"]:
    sys.exit("cloudflared stand-in: unexpected arguments " + " ".join(sys.argv[1:]))
try:
    port = int(open(os.path.join(state, sys.argv[4])).read())
except FileNotFoundError:
    sys.exit("failed to connect to origin: no tunnel " + sys.argv[4])
with open(os.path.join(state, "pids"), "a") as f:
    f.write(str(os.getpid()) + "\\n")
s = socket.create_connection(("127.0.0.1", port))
def up():
    while True:
        data = os.read(0, 65536)
        if not data:
            s.shutdown(socket.SHUT_WR)
            return
        s.sendall(data)
threading.Thread(target=up, daemon=True).start()
while True:
    data = s.recv(65536)
    if not data:
        break
    os.write(1, data)
"""


@pytest.fixture(scope="module")
def colab_server():
    import sshd

    if not os.path.exists("/usr/sbin/sshd") or os.getuid() != 0:
        pytest.skip("needs openssh-server and root (./dev test installs it)")
    base = Path(tempfile.mkdtemp(prefix="tcol", dir="/tmp"))
    os.chmod(base, 0o755)
    password = "pw-" + pysecrets.token_hex(8)
    try:
        home, tmux_dir = base / "home", base / "tmux"
        home.mkdir()
        sshd.make_user(USER, home, password=password)
        shutil.chown(home, USER)
        tmux_dir.mkdir()
        os.chmod(tmux_dir, 0o1777)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host")], check=True)
        port = sshd.free_port()
        (base / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {base}/host
PidFile {base}/sshd.pid
AllowUsers {USER}
PubkeyAuthentication no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes no
SetEnv HOME={home} TMUX_TMPDIR={tmux_dir}
""")
        os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run(["/usr/sbin/sshd", "-f", str(base / "sshd_config"), "-E", str(base / "sshd.log")],
                       check=True)
        state = base / "tunnels"
        state.mkdir()
        bindir = base / "bin"
        bindir.mkdir()
        relay = bindir / "cloudflared"
        relay.write_text(RELAY.format(python=sys.executable, state=str(state)))
        relay.chmod(0o755)
        yield {"port": port, "password": password, "home": home, "state": state, "bin": bindir,
               "tmux": tmux_dir}
    finally:
        try:
            os.kill(int((base / "sshd.pid").read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        for sock in (base / "tmux").glob("tmux-*/*"):
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
        sshd.remove_user(USER)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def colab(colab_server, monkeypatch, isolated):
    """A tunnel `NAME.trycloudflare.com` -> the password sshd, the stand-in cloudflared first on
    PATH, secrets in the encrypted file, and this test's own connection folder."""
    import sshd

    monkeypatch.setenv("PATH", f"{colab_server['bin']}:{os.environ['PATH']}")
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "test-passphrase")
    control = Path(tempfile.mkdtemp(prefix="tscc", dir="/tmp"))
    monkeypatch.setenv("TRAINSH_SSH_CONTROL_DIR", str(control))
    assert train("config", "set", "secrets.store", "file").returncode == 0
    state = colab_server["state"]
    for f in state.iterdir():
        f.unlink()

    class Colab:
        password = colab_server["password"]
        home = colab_server["home"]

        def tunnel(self, host: str) -> str:
            (state / host).write_text(str(colab_server["port"]))
            return host

        def end_runtime(self) -> None:
            """The runtime ended: its processes (tmux) are gone, its tunnels answer no more and
            open relays are cut."""
            for sock in colab_server["tmux"].glob("tmux-*/*"):
                subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
            self.cut_tunnels()

        def cut_tunnels(self) -> None:
            """The tunnels answer no more and open relays are cut; the runtime itself lives."""
            for f in state.iterdir():
                if f.name.endswith(".trycloudflare.com"):
                    f.unlink()
            if (state / "pids").exists():
                for pid in (state / "pids").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass

        def calls(self) -> list[str]:
            p = state / "calls"
            return p.read_text().splitlines() if p.exists() else []

        def connect(self, name: str, address: str, password: str | None = None):
            return train("colab", "connect", name, "--address", address, "--user", USER,
                         input=(password or self.password) + "\n")

    yield Colab()
    sshd.close_masters(control)


def everything_written(root: Path) -> bytes:
    out = b""
    for p in root.rglob("*"):
        if p.is_file() and p.name != "secrets.enc":
            out += p.read_bytes()
    return out


def test_connect_run_list_and_the_password_stays_secret(colab, isolated):
    host = colab.tunnel("quiet-river-1234.trycloudflare.com")
    r = colab.connect("c1", host)
    assert r.returncode == 0, r.stderr
    assert "cloudflared tunnel" in r.stdout and "reachable" in r.stdout
    hosts_toml = (isolated / "trainsh" / "hosts.toml").read_text()
    assert 'kind = "colab"' in hosts_toml and host in hosts_toml
    assert colab.password not in hosts_toml
    # ssh went through the ProxyCommand line of the real cloudflared
    assert f"access ssh --hostname {host}" in colab.calls()

    r = train("colab", "run", "c1", "echo", "hi-from-$(id -un)")
    assert r.returncode == 0 and r.stdout.strip() == f"hi-from-{USER}"
    assert train("colab", "run", "c1", "exit 7").returncode == 7
    assert train("colab", "run", "--", "sh", "-c", "'exit 3'").returncode == 3  # the only host

    r = train("colab", "list")
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("c1"))
    assert "cloudflared" in line and "reachable" in line and "never" not in line

    r = train("exec", "@c1 > echo exec-on-$(id -un)")  # a hosts.toml name, as exec takes any
    assert r.returncode == 0 and f"exec-on-{USER}" in r.stdout, r.stderr
    r = train("exec", "host g = colab:c1", "@g > echo spec-form")
    assert r.returncode == 0 and "spec-form" in r.stdout, r.stderr
    (isolated / "t.txt").write_text("moved\n")
    r = train("transfer", str(isolated / "t.txt"), "@colab:c1:moved/")
    assert r.returncode == 0, r.stderr
    assert (colab.home / "moved" / "t.txt").read_text() == "moved\n"

    assert train("host", "list").stdout.count("Colab") == 1
    r = train("host", "test", "c1")
    assert r.returncode in (0, 1) and "reachable, authenticated" in r.stdout

    written = everything_written(isolated)
    assert colab.password.encode() not in written
    for out in (r.stdout, r.stderr):
        assert colab.password not in out


def test_wrong_password_and_bad_input(colab, isolated):
    host = colab.tunnel("other-way-5678.trycloudflare.com")
    r = colab.connect("c2", host, password="not-it")
    assert r.returncode == 1 and "cannot log in" in r.stderr and "Permission denied" in r.stderr
    assert "Traceback" not in r.stderr and "nothing saved" in r.stderr
    assert "c2" not in train("host", "list").stdout
    assert colab.connect("c2", host).returncode == 0  # then the password changes under it
    assert train("secrets", "set", "COLAB_C2_PASSWORD", input="not-it\n").returncode == 0
    control = os.environ["TRAINSH_SSH_CONTROL_DIR"]  # (the good login's connection ends)
    for sock in os.listdir(control):
        subprocess.run(["ssh", "-o", f"ControlPath={control}/{sock}", "-O", "exit", "x"], capture_output=True)
    r = train("colab", "connect", "c3", "--address", "bad host!", input="x\n")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not an address" in r.stderr
    r = train("colab", "run", "true")  # the only Colab host, whose password is wrong
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "password was refused" in r.stderr
    assert colab.connect("c4", colab.tunnel("fourth-1.trycloudflare.com")).returncode == 0
    r = train("colab", "run", "true")
    assert r.returncode == 2 and "several Colab hosts: name one (c2, c4)" in r.stderr
    r = train("colab", "ssh", "nope")
    assert r.returncode == 2 and "no Colab host 'nope'" in r.stderr


def test_cloudflared_missing_is_one_line(colab, isolated, monkeypatch):
    colab.connect("c1", colab.tunnel("a-b-c.trycloudflare.com"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    r = train("colab", "run", "c1", "true")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "cloudflared is needed" in r.stderr


def test_ngrok_address_without_proxy(colab_server, colab, isolated):
    r = colab.connect("n1", f"127.0.0.1:{colab_server['port']}")
    assert r.returncode == 0, r.stderr
    assert "ngrok tunnel" in r.stdout
    assert colab.calls() == []  # no cloudflared for host:port
    assert train("colab", "run", "n1", "true").returncode == 0


def test_recipe_transfers_and_resume_after_the_runtime_comes_back(colab, isolated):
    colab.connect("c1", colab.tunnel("first-runtime-1.trycloudflare.com"))
    (isolated / "up.txt").write_text("from here\n")
    recipe = write_recipe(isolated / "colab.recipe", """
host g = colab:c1
tmux.open @g as w
@w > mkdir -p ~/work && cd ~/work && echo made-on-colab > made.txt
./up.txt -> @g:work/
@w > test -f up.txt && cat up.txt
@g:work/made.txt -> ./back/
@w > echo second-step-ran > ~/work/second.txt
tmux.close @w
""")
    # sample every process's argv while the recipe runs: the password must never show
    seen: list[str] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        r = train("recipe", "run", str(recipe), "--no-visual", timeout=120)
    finally:
        stop.set()
        t.join()
    assert r.returncode == 0, r.stdout + r.stderr
    assert (isolated / "back" / "made.txt").read_text() == "made-on-colab\n"
    assert (colab.home / "work" / "up.txt").read_text() == "from here\n"
    assert seen and not any(colab.password in s for s in seen)
    assert colab.password not in r.stdout + r.stderr
    assert colab.password.encode() not in everything_written(isolated)

    # The runtime ends mid-recipe: one line says so, and resume works after reconnecting.
    (colab.home / "work" / "second.txt").unlink()
    gate = write_recipe(isolated / "gone.recipe", GATED.format(gate=isolated / "gate", then="""
@w > echo second-step-ran > ~/work/second.txt
tmux.close @w"""))
    proc, out = _run_and_cut(gate, colab.end_runtime, isolated / "gate")
    assert proc.returncode == 1, out
    assert "Colab runtime 'c1' is gone" in out and "train colab connect c1" in out
    assert "Traceback" not in out
    assert not (colab.home / "work" / "second.txt").exists()

    job = _last_job(isolated)
    r = train("recipe", "resume", job, "--no-visual", timeout=120)  # still gone: one line
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train: cannot resume job {job}: ") and r.stderr.count("\n") == 2
    assert "Colab runtime 'c1' is gone" in r.stderr
    r = colab.connect("c1", colab.tunnel("second-runtime-2.trycloudflare.com"))
    assert r.returncode == 0, r.stderr
    r = train("recipe", "resume", job, "--no-visual", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (colab.home / "work" / "second.txt").read_text() == "second-step-ran\n"


# A command ran on the Colab host, then step 4 waits here for the test's `gate` file: the test
# cuts the runtime or its tunnel during that step and only then lets the run go on.
GATED = """
host g = colab:c1
host here = local
tmux.open @here as gate
tmux.open @g as w
@w > echo before
wait @gate file={gate} timeout=2m
tmux.close @gate{then}
"""


def _run_and_cut(recipe, cut, gate: Path) -> tuple[subprocess.Popen, str]:
    """Run the GATED recipe; once its step 4 (the wait for `gate`) has begun, `cut()`, then
    create `gate`; the run's output to the end."""
    proc = subprocess.Popen([sys.executable, "-m", "trainsh", "recipe", "run", str(recipe), "--no-visual"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    head = ""
    try:
        for line in proc.stdout:  # the session is open and a command ran there
            head += line
            if line.startswith("[4/"):
                break
        cut()
        gate.touch()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, head + out


def _last_job(isolated) -> str:
    db = sqlite3.connect(isolated / "trainsh" / "jobs" / "journal.db")
    try:
        return db.execute("select id from jobs order by created desc limit 1").fetchone()[0]
    finally:
        db.close()



def test_a_tunnel_that_drops_while_the_runtime_lives(colab, isolated):
    """The tunnel goes away as a command is being sent, the runtime (and its tmux) stays: after
    `connect` gives the new address, resume sends that command once, without waiting for it as
    if it ran."""
    colab.connect("c1", colab.tunnel("first-runtime-1.trycloudflare.com"))
    (colab.home / "work").mkdir(exist_ok=True)
    shutil.chown(colab.home / "work", USER)
    (colab.home / "work" / "count.txt").unlink(missing_ok=True)
    recipe = write_recipe(isolated / "drop.recipe", GATED.format(gate=isolated / "gate", then="""
@w > echo ran >> ~/work/count.txt
tmux.close @w"""))
    proc, out = _run_and_cut(recipe, colab.cut_tunnels, isolated / "gate")
    assert proc.returncode == 1 and "Colab runtime 'c1' is gone" in out, out
    assert colab.connect("c1", colab.tunnel("second-runtime-2.trycloudflare.com")).returncode == 0
    t = time.monotonic()
    r = train("recipe", "resume", _last_job(isolated), "--no-visual", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "waiting for the command still running" not in r.stdout + r.stderr
    assert time.monotonic() - t < 60
    assert (colab.home / "work" / "count.txt").read_text() == "ran\n"
