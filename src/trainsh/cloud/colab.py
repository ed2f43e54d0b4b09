"""Google Colab hosts: a notebook's ssh server, reached through a cloudflared or ngrok tunnel.

Colab has no API. The notebook runs sshd and a tunnel and prints an address and a password;
`train colab connect` keeps the address in hosts.toml (`kind = "colab"`) and the password as a
secret. ssh gets the password from an askpass program that reads it from a 0600 file in a
private folder, removed when train exits, so it never shows in an argv, hosts.toml, a log or
the journal. Each Colab host has its own known_hosts file, emptied when its address changes:
every new runtime has a new host key.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import tempfile
import time

from trainsh.numbers import digits
from trainsh.remote.sshspec import SshSpec
from trainsh.settings import hosts, paths, secrets

CLOUDFLARED_HINT = ("cloudflared is needed to reach Colab through its tunnel and is not on PATH: "
                    "install it from Cloudflare's packages (the 'cloudflared' .deb or binary)")

NOTEBOOK_CELL = r'''# Colab cell: an ssh server reachable through a cloudflared tunnel (run it, keep it running)
import os, secrets, string, subprocess, time, re
password = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
subprocess.run("apt-get -qq update && apt-get -qq install -y openssh-server tmux rsync > /dev/null", shell=True, check=True)
subprocess.run(f"echo root:{password} | chpasswd", shell=True, check=True)
os.makedirs("/var/run/sshd", exist_ok=True)
with open("/etc/ssh/sshd_config", "a") as f:
    f.write("\nPermitRootLogin yes\nPasswordAuthentication yes\n")
subprocess.run("/usr/sbin/sshd", check=True)
if not os.path.exists("cloudflared"):
    subprocess.run("wget -q -O cloudflared https://github.com/cloudflare/cloudflared/releases/latest/download/cloudflared-linux-amd64 && chmod +x cloudflared", shell=True, check=True)
log = open("tunnel.log", "w")
subprocess.Popen(["./cloudflared", "tunnel", "--url", "ssh://localhost:22"], stdout=log, stderr=log)
for _ in range(60):
    m = re.search(r"https://([a-z0-9-]+\.trycloudflare\.com)", open("tunnel.log").read())
    if m:
        break
    time.sleep(1)
print("address: ", m.group(1) if m else "(not up yet: see tunnel.log)")
print("user:     root")
print("password:", password)
'''


class ColabError(Exception):
    """Bad input or a Colab host that cannot be used; one line."""


def secret_name(name: str) -> str:
    return "COLAB_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_PASSWORD"


def parse_address(text: str) -> tuple[str, str, int]:
    """What the notebook printed -> (tunnel, host, port). A bare hostname is a cloudflared
    tunnel (ssh goes through `cloudflared access ssh`); `host:port` is an ngrok TCP tunnel."""
    text = text.strip()
    text = re.sub(r"^(https?|tcp|ssh)://", "", text).rstrip("/")
    host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host or ""):
        raise ColabError(f"'{text}' is not an address: give the tunnel's hostname "
                         "(xyz.trycloudflare.com) or host:port (0.tcp.ngrok.io:12345)")
    if not sep:
        return "cloudflared", host, 22
    if not digits(port) or not 0 < int(port) < 65536:
        raise ColabError(f"bad port '{port}' in '{text}'")
    return "ngrok", host, int(port)


def colab_hosts() -> dict[str, dict]:
    return {n: e for n, e in hosts.load().items() if e.get("kind") == "colab"}


def entry(name: str) -> dict:
    found = colab_hosts()
    if name not in found:
        known = ", ".join(found) or "none yet (train colab connect NAME)"
        raise ColabError(f"no Colab host '{name}' (Colab hosts: {known})")
    return found[name]


def pick(name: str | None) -> str:
    """NAME, or the only Colab host when none is named."""
    if name:
        entry(name)
        return name
    found = list(colab_hosts())
    if len(found) == 1:
        return found[0]
    if not found:
        raise ColabError("no Colab host yet: run 'train colab connect NAME'")
    raise ColabError(f"several Colab hosts: name one ({', '.join(found)})")


def known_hosts(name: str):
    return paths.home() / "known_hosts.d" / f"colab-{name}"


def plan(name: str, address: str, user: str) -> dict:
    """The hosts.toml entry `connect` would write, every input checked; nothing is written."""
    tunnel, host, port = parse_address(address)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name or ""):
        raise ColabError(f"bad host name '{name}' (letters, digits, '_', '-')")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", user or ""):
        raise ColabError(f"bad user name '{user}'")
    old = hosts.get(name)
    if old and old.get("kind") != "colab":
        raise ColabError(f"'{name}' is already an ssh host in hosts.toml: pick another name")
    new = {"kind": "colab", "tunnel": tunnel, "host": host, "port": port, "user": user}
    if old and old.get("last_seen"):
        new["last_seen"] = old["last_seen"]
    return new


def same_runtime(name: str, new: dict) -> bool:
    """Is `new` the address hosts.toml has for `name` already (the same runtime, its key kept)?"""
    old = hosts.get(name)
    return bool(old) and (old.get("host"), old.get("port")) == (new["host"], new["port"])


def save(name: str, address: str, user: str) -> dict:
    new = plan(name, address, user)
    if not same_runtime(name, new):
        known_hosts(name).unlink(missing_ok=True)  # a new runtime: a new host key
    hosts.save(name, new)
    return new


def mark_seen(name: str) -> None:
    e = hosts.get(name)
    if e and e.get("kind") == "colab":
        hosts.save(name, {**e, "last_seen": time.strftime("%Y-%m-%d %H:%M:%S")})


_askpass_dir: str | None = None


def _askpass(name: str, password: str) -> str:
    """An askpass program for this host: it prints the password from a 0600 file in a private
    folder of this process, removed at exit."""
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    secret_file = os.path.join(scratch_dir(), slug + ".pw")
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    script = os.path.join(scratch_dir(), slug + ".sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nexec cat {shlex.quote(secret_file)}\n")
    os.chmod(script, 0o700)
    return script


def ssh_spec(name: str, *, e: dict | None = None, password: str | None = None,
             known: str | None = None, with_password: bool = True) -> SshSpec:
    """How ssh reaches the Colab host `name` (with its password through askpass). `e`,
    `password` and `known` (a known_hosts file) stand in for what is saved, for a login tried
    before anything is; without `with_password` the spec has no askpass (ssh would ask)."""
    e = e or entry(name)
    options = [f"UserKnownHostsFile={known or known_hosts(name)}", "StrictHostKeyChecking=accept-new",
               "NumberOfPasswordPrompts=1"]
    if e.get("tunnel") == "cloudflared":
        if not shutil.which("cloudflared"):
            raise ColabError(CLOUDFLARED_HINT)
        options.append("ProxyCommand=cloudflared access ssh --hostname %h")
    askpass = None
    if with_password:
        paths.ensure(known_hosts(name).parent)
        if password is None:
            try:
                password = secrets.lookup(secret_name(name))
            except secrets.SecretError as e2:
                raise ColabError(f"Colab host '{name}': {e2}") from None
        askpass = _askpass(name, password) if password else None
    return SshSpec(host=str(e["host"]), user=str(e.get("user") or "root"),
                   port=int(e.get("port") or 22), options=tuple(options), askpass=askpass)


def scratch_dir() -> str:
    """The private folder of this process (0700, removed at exit) the askpass files live in."""
    global _askpass_dir
    if _askpass_dir is None:
        _askpass_dir = tempfile.mkdtemp(prefix="trainsh-pw-")  # 0700
        atexit.register(shutil.rmtree, _askpass_dir, True)
    return _askpass_dir


def gone_hint(name: str) -> str:
    return (f"the Colab runtime '{name}' is gone (its tunnel does not answer): run the notebook's "
            f"ssh cell again, then 'train colab connect {name}' with the new address")
