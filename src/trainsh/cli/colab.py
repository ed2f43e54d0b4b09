"""Handlers of `train colab`: connect a notebook's ssh server, list, ssh, run."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import subprocess
import sys

from trainsh.cli.common import UserError


def dispatch(args) -> int:
    from trainsh.cloud.colab import ColabError
    from trainsh.runtime.reach import HostError
    from trainsh.settings.hosts import HostsError
    from trainsh.settings.secrets import SecretError

    try:
        return HANDLERS[args.cmd](args)
    except (ColabError, HostError, HostsError, SecretError) as e:
        raise UserError(str(e)) from None


def _reach(name: str, timeout: float = 15, shell=None) -> tuple[bool, str]:
    """Can ssh log in? (ok, why not)."""
    from trainsh.runtime.reach import ssh_shell

    from trainsh.remote.shell import ShellError

    shell = shell or ssh_shell(f"colab:{name}", reconnect=0)
    try:
        r = shell.run(["true"], timeout=timeout)
    except ShellError as e:
        if "Permission denied" in str(e):
            return False, (f"Permission denied: the password was refused (run 'train colab "
                           f"connect {name}' with the one the notebook printed)")
        return False, str(e)
    return r.ok, "" if r.ok else ("timed out" if r.timed_out else shell.explain(r))


def _store_ready(name: str) -> None:
    """Raise SecretError now if the password could not be kept (a secrets file whose passphrase
    is not at hand, a keyring that does not answer), before anything is tried or written."""
    from trainsh.cloud import colab
    from trainsh.settings import secrets

    st = secrets.store()
    st.get(colab.secret_name(name))  # an existing file opens (its passphrase right)
    if isinstance(st, secrets.FileStore) and not st.path.exists():
        secrets.passphrase(new=True)


def connect(args) -> int:
    """Check every input, make sure the password can be kept, log in with it; only then write
    hosts.toml, the secret and the host key: a connect that fails leaves everything as it was."""
    import os
    import shutil

    from trainsh.cloud import colab
    from trainsh.remote.shell import SshShell
    from trainsh.settings import secrets

    if args.cell:
        print(colab.NOTEBOOK_CELL)
        return 0
    tty = sys.stdin.isatty()
    name = args.name or "colab"
    address, user = args.address, args.user
    if not address:
        if not tty:
            raise UserError("give the notebook's address with --address (hostname or host:port)")
        print("Paste this cell into the Colab notebook and run it; it prints an address, a user "
              "and a password.\n")
        print(colab.NOTEBOOK_CELL)
        address = input("address (xyz.trycloudflare.com or host:port): ").strip()
    colab.parse_address(address)  # check before asking for more
    if not user:
        user = (input("user [root]: ").strip() if tty else "") or "root"
    planned = colab.plan(name, address, user)
    _store_ready(name)
    if tty:
        import getpass

        password = getpass.getpass("password (from the notebook): ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UserError("no password given (on a terminal it is asked; else give it on stdin)")
    # The login is tried with the host key in a file of this process: a new runtime's key is
    # kept only once the login worked (the same runtime's key must still match).
    trial = os.path.join(colab.scratch_dir(), f"known-{name}")
    if colab.same_runtime(name, planned) and colab.known_hosts(name).exists():
        shutil.copyfile(colab.known_hosts(name), trial)
    spec = colab.ssh_spec(name, e=planned, password=password, known=trial)
    where = f"{planned['host']}" + (f":{planned['port']}" if planned["tunnel"] == "ngrok" else "")
    ok, why = _reach(name, shell=SshShell(spec, reconnect=0, gone=colab.gone_hint(name)))
    if not ok:
        print(f"{name}: cannot log in: {why}; nothing saved", file=sys.stderr)
        return 1
    secrets.store().set(colab.secret_name(name), password)
    colab.save(name, address, user)
    colab.paths.ensure(colab.known_hosts(name).parent)
    if os.path.exists(trial):
        shutil.copyfile(trial, colab.known_hosts(name))
    colab.mark_seen(name)
    print(f"{name}: {planned['tunnel']} tunnel {where}, user {user} (password kept as secret "
          f"{colab.secret_name(name)})")
    print(f"{name}: reachable; use it as 'host gpu = colab:{name}', 'train colab ssh {name}', "
          f"'train colab run {name} CMD'")
    return 0


def list_(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from trainsh.cloud import colab

    found = colab.colab_hosts()
    if not found:
        print("no Colab hosts (train colab connect NAME)")
        return 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(found, pool.map(lambda n: _reach(n, timeout=10), found)))
    print(f"{'NAME':<14} {'TUNNEL':<12} {'ADDRESS':<36} {'STATE':<12} LAST SEEN")
    for name, e in found.items():
        ok, why = results[name]
        if ok:
            colab.mark_seen(name)
        seen = colab.colab_hosts()[name].get("last_seen", "never")
        address = str(e["host"]) + (f":{e['port']}" if e.get("tunnel") == "ngrok" else "")
        print(f"{name:<14} {e.get('tunnel', '?'):<12} {address:<36} "
              f"{'reachable' if ok else 'unreachable':<12} {seen}")
    return 0


def ssh(args) -> int:
    from trainsh.cloud import colab
    from trainsh.runtime.reach import ssh_shell
    from trainsh.remote.sshspec import ssh_argv

    name = colab.pick(args.name)
    # Not exec: this process removes the askpass file when ssh ends.
    r = subprocess.run(ssh_argv(ssh_shell(f"colab:{name}").spec, tty=True, batch=False))
    if r.returncode != 255:
        colab.mark_seen(name)
    return r.returncode


def run(args) -> int:
    from trainsh.cloud import colab
    from trainsh.remote.sshspec import ssh_argv
    from trainsh.runtime.reach import ssh_shell

    words = list(args.command)
    if words and words[0] == "--":
        words = words[1:]
    name = None
    if words and words[0] in colab.colab_hosts():
        name = words.pop(0)
    if words and words[0] == "--":
        words = words[1:]
    if not words:
        raise UserError("give a command: train colab run [NAME] CMD...")
    name = colab.pick(name)
    shell = ssh_shell(f"colab:{name}")
    # ssh's own complaints are left out: on a failed login the line below says what is wrong
    r = subprocess.run([*ssh_argv(shell.spec, " ".join(words))[:-2], "-o", "LogLevel=QUIET",
                        *ssh_argv(shell.spec, " ".join(words))[-2:]], stdin=subprocess.DEVNULL)
    if r.returncode == 255:
        ok, why = _reach(name)
        if not ok:
            raise UserError(why, 1)
    else:
        colab.mark_seen(name)
    return r.returncode


HANDLERS = {"connect": connect, "list": list_, "ssh": ssh, "run": run}
