"""Rough edges the probes found: what a user is told when a host key is new, a Colab connect
fails half-way, a storage refuses a signature for a reason of its own, an exec line names a
Colab host by its spec; and shell completion of `train` and `ow`."""

from __future__ import annotations

import http.client
import http.server
import threading
from urllib.parse import urlsplit

import pytest
from helpers import TRAIN, train


class HostRewritingProxy:
    """A reverse proxy in front of the S3 server that sends every request on with its own
    `Host:` (as a proxy that does not pass the Host header on does). The Host is signed, so the
    server refuses every signature while the keys are right."""

    def __init__(self, target: str):
        t = urlsplit(target)
        host, port = t.hostname, t.port

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                c = http.client.HTTPConnection(host, port, timeout=30)  # Host: the target's
                c.request(self.command, self.path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def proxied_lake(lake, tmp_path):
    proxy = HostRewritingProxy(lake["url"])
    try:
        (tmp_path / "trainsh" / "storages.toml").write_text(
            f'[lake]\nkind = "s3"\nbucket = "{lake["bucket"]}"\nendpoint = "{lake["url"]}"\n'
            f'[proxied]\nkind = "s3"\nbucket = "{lake["bucket"]}"\nendpoint = "{proxy.url}"\n')
        yield lake
    finally:
        proxy.close()


def test_a_refused_signature_with_the_right_keys_says_what_the_server_said(proxied_lake, monkeypatch):
    t = train("storage", "test", "proxied")
    assert t.returncode == 1, t.stdout + t.stderr
    line = next(ln for ln in t.stdout.splitlines() if "FAILED" in ln)
    # the server's own code and words, not a verdict on the keys
    assert "SignatureDoesNotMatch" in line and "The request signature we calculated" in line, line
    assert "wrong key: the secret key does not match" not in line
    assert proxied_lake["secret"] not in t.stdout + t.stderr
    assert train("storage", "test", "lake").returncode == 0  # the same keys, straight to it
    # A wrong secret key: the same code, and a hint about the likely cause.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    t = train("storage", "test", "lake")
    line = next(ln for ln in t.stdout.splitlines() if "FAILED" in ln)
    assert "SignatureDoesNotMatch" in line and "secret key" in line, line
    assert "not-the-secret" not in t.stdout + t.stderr


# ---- 18: a Colab connect that fails writes nothing; host show prints a line that works

from test_colab import USER as COLAB_USER, colab, colab_server  # noqa: E402,F401  (fixtures)


def test_a_connect_that_fails_leaves_hosts_toml_as_it_was(colab, isolated, monkeypatch):
    hosts_toml = isolated / "trainsh" / "hosts.toml"
    host = colab.tunnel("first-1.trycloudflare.com")
    assert colab.connect("c1", host).returncode == 0
    before = hosts_toml.read_bytes()
    secrets_before = (isolated / "trainsh" / "secrets.enc").read_bytes()
    # no passphrase for the secrets file: refused before anything is tried or written
    monkeypatch.delenv("TRAINSH_PASSPHRASE")
    r = colab.connect("c9", colab.tunnel("other-9.trycloudflare.com"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "passphrase" in r.stderr, r.stderr
    assert hosts_toml.read_bytes() == before
    assert colab.calls() == [f"access ssh --hostname {host}"]  # no login was even tried
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "test-passphrase")
    # a wrong password for a new address of c1: c1 keeps its address, password and host key
    known = isolated / "trainsh" / "known_hosts.d" / "colab-c1"
    key = known.read_bytes()
    r = colab.connect("c1", colab.tunnel("second-2.trycloudflare.com"), password="not-it")
    assert r.returncode == 1 and "Permission denied" in r.stderr and "nothing saved" in r.stderr
    assert hosts_toml.read_bytes() == before and known.read_bytes() == key
    assert (isolated / "trainsh" / "secrets.enc").read_bytes() == secrets_before
    assert train("colab", "run", "c1", "true").returncode == 0  # as it was
    before = hosts_toml.read_bytes()  # (with its new last_seen)
    # a tunnel that does not answer
    r = colab.connect("c3", "nothing-here.trycloudflare.com")
    assert r.returncode == 1 and "nothing saved" in r.stderr
    assert hosts_toml.read_bytes() == before


def _close_masters_keep_folder():
    import os
    import subprocess

    control = os.environ["TRAINSH_SSH_CONTROL_DIR"]
    for sock in os.listdir(control):
        subprocess.run(["ssh", "-o", f"ControlPath={control}/{sock}", "-O", "exit", "x"],
                       capture_output=True)


def test_host_show_of_a_colab_host_prints_a_line_that_works_after_train_exits(colab, isolated,
                                                                               monkeypatch, tmp_path):
    import os
    import shlex
    import subprocess

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where train keeps its askpass files
    assert colab.connect("c1", colab.tunnel("show-1.trycloudflare.com")).returncode == 0
    r = train("host", "show", "c1")
    assert r.returncode == 0, r.stderr
    assert "trainsh-pw-" not in r.stdout and "SSH_ASKPASS" not in r.stdout
    assert "COLAB_C1_PASSWORD" in r.stdout and "train host ssh c1" in r.stdout
    assert train("host", "show", "colab:c1").stdout == r.stdout
    assert list(scratch.iterdir()) == []  # train is gone, and so is every file of its
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("ssh "))[3:].strip()
    _close_masters_keep_folder()  # a fresh login, with the password typed (here: askpass)
    askpass = tmp_path / "type-it"
    askpass.write_text(f"#!/bin/sh\necho {shlex.quote(colab.password)}\n")
    askpass.chmod(0o700)
    p = subprocess.run([*shlex.split(line), "echo", "logged-in-as-$(id -un)"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=60,
                       env={**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"})
    assert p.returncode == 0 and p.stdout.strip() == f"logged-in-as-{COLAB_USER}", p.stderr
    # train host ssh gives the password itself, and leaves no file of it behind
    _close_masters_keep_folder()
    p = subprocess.run([*TRAIN, "host", "ssh", "c1"], capture_output=True,
                       text=True, input="echo via-host-ssh\n", timeout=60)
    assert p.returncode == 0 and "via-host-ssh" in p.stdout, p.stderr
    assert list(scratch.iterdir()) == []


def test_the_notebook_cell_makes_its_password_with_secrets():
    cell = train("colab", "connect", "--cell").stdout
    assert "secrets.choice(" in cell and "random" not in cell
    ns: dict = {}
    start = cell.index("import os")
    exec(cell[start:cell.index("\n", cell.index("password ="))], ns)  # its first two lines
    assert len(ns["password"]) >= 20 and ns["password"].isalnum()


# ---- 14: a host whose key is not known yet

def test_host_test_of_a_new_host_says_how_to_accept_its_key(ssh, tmp_path, monkeypatch):
    import os
    import subprocess

    import sshd

    # ssh as a user has it: no test config that accepts every key, a known_hosts of our own
    monkeypatch.delenv("TRAINSH_SSH_OPTIONS")
    known = tmp_path / "known_hosts"
    (tmp_path / "trainsh").mkdir(exist_ok=True)
    (tmp_path / "trainsh" / "hosts.toml").write_text(
        f'[box]\nhost = "127.0.0.1"\nuser = "root"\nport = {ssh.a.port}\n'
        f'key = "{ssh.base}/client"\noptions = ["UserKnownHostsFile={known}"]\n')
    p = train("host", "test", "box")
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert "Host key verification failed" in p.stderr
    assert "train host ssh box" in p.stderr and "train host test box --accept-new" in p.stderr
    assert not known.exists() or not known.read_text().strip()

    p = train("host", "test", "box", "--accept-new")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "reachable, authenticated" in p.stdout
    # kept in the known_hosts this host's ssh uses (hashed or not, as ssh's config says)
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{ssh.a.port}", "-f", str(known)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and (ssh.base / "host.pub").read_text().split()[1] in found.stdout
    sshd.close_masters(os.environ["TRAINSH_SSH_CONTROL_DIR"])
    p = train("host", "test", "box")  # known now: no flag needed
    assert p.returncode == 0, p.stdout + p.stderr

    # A key that differs from the one kept: not "accept it", but what changed and where
    sshd.close_masters(os.environ["TRAINSH_SSH_CONTROL_DIR"])
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True)
    other = (tmp_path / "other.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{ssh.a.port} {other[0]} {other[1]}\n")
    for extra in ((), ("--accept-new",)):
        p = train("host", "test", "box", *extra)
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert "not the one kept for it" in p.stderr and f"{known} line 1" in p.stderr, p.stderr
        assert "--accept-new'" not in p.stderr
    assert known.read_text().count("\n") == 1  # ssh kept the old key, and so did we


# ---- 22: `@colab:c1` in exec lines, wherever `@c1` works

def test_exec_lines_take_a_colab_host_by_its_spec(colab, isolated):
    assert colab.connect("c1", colab.tunnel("spec-1.trycloudflare.com")).returncode == 0
    r = train("exec", "@colab:c1 > echo spec-on-$(id -un)")
    assert r.returncode == 0 and f"spec-on-{COLAB_USER}" in r.stdout, r.stdout + r.stderr
    r = train("exec", "@colab:c1 > echo one", "@c1 > echo two")  # one host, two ways
    assert r.returncode == 0 and "one" in r.stdout and "two" in r.stdout, r.stdout + r.stderr
    r = train("exec", "tmux.open @colab:c1 as w", "@w > echo in-a-session", "tmux.close @w")
    assert r.returncode == 0 and "| in-a-session" in r.stdout + r.stderr, r.stdout + r.stderr
    (isolated / "t.txt").write_text("by spec\n")
    r = train("exec", "./t.txt -> @colab:c1:spec-moved/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (colab.home / "spec-moved" / "t.txt").read_text() == "by spec\n"
    r = train("exec", "@colab:c1:spec-moved/t.txt -> ./back/")
    assert r.returncode == 0 and (isolated / "back" / "t.txt").read_text() == "by spec\n"


def test_a_host_spec_where_a_name_stands_is_exec_only_and_checked(tmp_path):
    r = train("exec", "@nope:c1 > true")
    assert r.returncode == 2 and "'@nope:c1' is no host" in r.stderr and "@colab:NAME" in r.stderr
    (tmp_path / "r.recipe").write_text("@colab:c1 > ls\n")
    r = train("recipe", "check", str(tmp_path / "r.recipe"))
    assert r.returncode != 0 and "host NAME = colab:c1" in r.stdout + r.stderr
    r = train("exec", "host c1 = root@127.0.0.1", "@colab:c1 > true")
    assert r.returncode == 2 and "already defined" in r.stderr


# ---- 21: completion of train transfer @, recipe resume, cloud ids and ow

def _bash(tmp_path, prog: str, *words: str) -> list[str]:
    """What bash offers for WORDS through the script `train completion bash` prints."""
    import os
    import shlex
    import subprocess
    import sys

    script = tmp_path / "train.bash"
    if not script.exists():
        p = train("completion", "bash")
        assert p.returncode == 0
        script.write_text(p.stdout)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    arr = " ".join(shlex.quote(w) for w in words)
    line = " ".join(words)  # as bash sets them on TAB (COMP_WORDS aside, which it cuts at @ and :)
    r = subprocess.run(["bash", "--norc", "-c",
                        f'source {script}; complete -p {prog}; COMP_WORDS=({arr}); '
                        f'COMP_CWORD={len(words) - 1}; COMP_LINE={shlex.quote(line)}; '
                        f'COMP_POINT={len(line)}; _{prog}_complete; printf "%s\\n" "${{COMPREPLY[@]}}"'],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    first, *rest = r.stdout.splitlines()
    assert first.startswith("complete ") and first.endswith(f" {prog}")
    return [x for x in rest if x]


def _settings(tmp_path):
    (tmp_path / "trainsh").mkdir(exist_ok=True)
    (tmp_path / "trainsh" / "hosts.toml").write_text('[gpu-box]\nhost = "10.0.0.9"\nuser = "root"\n'
                                                      '[nb]\nkind = "colab"\ntunnel = "cloudflared"\n'
                                                      'host = "a-b.trycloudflare.com"\nuser = "root"\n')
    (tmp_path / "trainsh" / "storages.toml").write_text('[lake]\nkind = "s3"\nbucket = "b"\n')


def test_transfer_completes_hosts_and_storages_after_an_at(tmp_path):
    _settings(tmp_path)
    assert _bash(tmp_path, "train", "train", "transfer", "@") == ["@gpu-box:", "@lake:", "@nb:"]
    assert _bash(tmp_path, "train", "train", "colab", "ssh", "") == ["nb"]  # Colab hosts only
    assert _bash(tmp_path, "train", "train", "transfer", "./x", "@l") == ["@lake:"]
    assert _bash(tmp_path, "train", "train", "transfer", "") == []  # a local path: the shell's
    r = train("__complete", "3", "train", "transfer", "--delete", "@g")
    assert r.stdout.split() == ["@gpu-box:"]


def test_bash_puts_no_space_after_a_host_colon(tmp_path):
    """In a real interactive bash (a tmux pane): TAB then a path, typed on, stays one word."""
    import os
    import shlex
    import subprocess
    import sys

    from helpers import tmux, wait_until

    _settings(tmp_path)
    script = tmp_path / "train.bash"
    script.write_text(train("completion", "bash").stdout)
    rc = tmp_path / "bashrc"
    rc.write_text(f"PS1='$ '\nsource {script}\n")
    keep = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in ("HOME", "TRAINSH_HOME") if k in os.environ)
    path = f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"
    assert tmux("new-session", "-d", "-s", "tab", "-x", "120", "-y", "10",
                f"env {keep} PATH={shlex.quote(path)} bash --noprofile --rcfile {rc} -i").returncode == 0
    wait_until(lambda: "$" in tmux("capture-pane", "-p", "-t", "tab").stdout, what="a prompt")
    tmux("send-keys", "-t", "tab", "train transfer @gp", "Tab")
    wait_until(lambda: "@gpu-box:" in tmux("capture-pane", "-p", "-t", "tab").stdout, what="the completion")
    tmux("send-keys", "-t", "tab", "/data")
    wait_until(lambda: "$ train transfer @gpu-box:/data" in tmux("capture-pane", "-p", "-t", "tab").stdout,
               what="the line as typed")
    tmux("kill-session", "-t", "tab")


def test_resume_completes_only_jobs_it_can_resume(tmp_path):
    from helpers import interrupted

    from trainsh.runtime.journal import Journal

    assert train("exec", "@local > true").returncode == 0
    assert train("exec", "@local > exit 3").returncode != 0
    once = tmp_path / "started"
    interrupted("exec", f"@local > touch {once} && sleep 30", once=once)
    j = Journal.reader()
    try:
        jobs = {job.shown_status: job.id for job in j.jobs()}
    finally:
        j.close()
    assert set(jobs) == {"done", "failed", "interrupted"}, jobs
    offered = _bash(tmp_path, "train", "train", "recipe", "resume", "")
    assert sorted(offered) == sorted([jobs["failed"], jobs["interrupted"]])
    assert jobs["done"] in _bash(tmp_path, "train", "train", "recipe", "logs", "")  # (all jobs)


def test_instance_ids_complete_from_the_last_list_without_an_api_call(vast, tmp_path, monkeypatch):
    import time

    a, b = vast.rent(label="one"), vast.rent(offer="1002", label="two")
    assert _bash(tmp_path, "train", "train", "vast", "show", "") == []  # never listed: nothing
    assert train("vast", "list").returncode == 0
    monkeypatch.setenv("VAST_URL", "http://127.0.0.1:9")  # the API is out of reach on TAB
    t = time.monotonic()
    assert sorted(_bash(tmp_path, "train", "train", "vast", "stop", "")) == sorted([a, b])
    assert time.monotonic() - t < 10
    assert _bash(tmp_path, "train", "train", "vast", "show", b) == [b]
    assert sorted(_bash(tmp_path, "ow", "ow", "exec", "--provider", "vast", "--existing", "")) == sorted([a, b])
    assert _bash(tmp_path, "train", "train", "runpod", "show", "") == []  # another cloud's ids
    monkeypatch.setenv("VAST_URL", vast.url)
    assert train("vast", "destroy", a, "--yes").returncode == 0
    assert _bash(tmp_path, "train", "train", "vast", "destroy", "") == [b]


def test_ow_completes_commands_flags_gpus_and_providers(tmp_path):
    assert _bash(tmp_path, "ow", "ow", "") == ["exec", "ssh"]
    flags = _bash(tmp_path, "ow", "ow", "exec", "--")
    assert {"--gpu", "--existing", "--provider", "--no-sync", "--mount"} <= set(flags)
    assert "--debug" not in flags  # hidden there
    assert _bash(tmp_path, "ow", "ow", "ssh", "--provider", "") == ["runpod", "vast"]
    assert "H100S" in _bash(tmp_path, "ow", "ow", "exec", "--gpu", "H")
    # the command to run, and what follows it, are the shell's (files)
    assert _bash(tmp_path, "ow", "ow", "exec", "--gpu", "L40", "python", "") == []
    assert _bash(tmp_path, "ow", "ow", "exec", "--", "") == []
