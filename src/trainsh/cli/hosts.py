"""Handlers of `train host ...` and `train transfer`."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import os
import shlex
import sys
import time

from trainsh.cli.common import UserError
from trainsh.numbers import digits


def dispatch(args) -> int:
    from trainsh.remote.shell import ShellError
    from trainsh.remote.sshspec import SpecError
    from trainsh.settings.hosts import HostsError
    from trainsh.settings.storages import StorageError

    try:
        if args.group == "transfer":
            return transfer(args)
        return HANDLERS[args.cmd](args)
    except (SpecError, HostsError, StorageError) as e:
        raise UserError(str(e)) from None
    except ShellError as e:
        raise UserError(str(e), 1) from None


def _shell(name: str):
    """A host of hosts.toml (or `colab:NAME`), as an ssh shell."""
    from trainsh.runtime.reach import HostError, scheme_of, ssh_shell
    from trainsh.settings import hosts

    if not scheme_of(name)[0] and hosts.get(name) is None:
        known = ", ".join(hosts.load()) or "none yet (train host add)"
        raise UserError(f"no host '{name}' in hosts.toml (hosts: {known})")
    try:
        return ssh_shell(name, reconnect=10)
    except HostError as e:
        raise UserError(str(e)) from None


def _spec(name: str):
    return _shell(name).spec


def host_list(args) -> int:
    from trainsh.settings import hosts, paths

    entries = hosts.load()
    if not entries:
        print(f"no hosts in {paths.hosts_file()} (train host add)")
        return 0
    for name, entry in entries.items():
        problem = hosts.entry_problem(entry)
        kind = f"  (Colab, {entry.get('tunnel', '?')} tunnel)" if entry.get("kind") == "colab" else ""
        print(f"{name:<16} {f'(broken: {problem})' if problem else hosts.spec_text(entry)}{kind}")
    return 0


def _ask(prompt: str, default: str = "") -> str:
    value = input(f"{prompt}{f' [{default}]' if default else ''}: ").strip()
    return value or default


def host_add(args) -> int:
    from trainsh.remote.sshspec import SshSpec
    from trainsh.settings import hosts

    tty = sys.stdin.isatty()
    name, dest = args.name, args.destination
    if not name or not dest:
        if not tty:
            raise UserError("train host add NAME USER@HOST [--port N] [--key KEY] [--jump JUMP] "
                            "(asks interactively on a terminal)")
        name = name or _ask("name")
        dest = dest or _ask("user@host")
        args.port = args.port or (_ask("port", "22") if tty else None)
        args.key = args.key or _ask("identity file (empty: ssh's default)")
        args.jump = args.jump or _ask("jump host (empty: none)")
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name or ""):
        raise UserError(f"bad host name '{name}' (letters, digits, '_', '-')")
    spec = SshSpec.parse(dest)  # checks user@host
    if args.port and not (digits(str(args.port)) and 0 < int(args.port) < 65536):
        raise UserError(f"bad port '{args.port}' (1-65535)")
    port = int(args.port) if args.port and str(args.port) != "22" else spec.port
    entry = {"host": spec.host, "user": spec.user, "port": port, "key": args.key or spec.key,
             "jump": args.jump or spec.jump, "options": list(spec.options)}
    if hosts.get(name) and not args.force:
        raise UserError(f"host '{name}' exists already (--force replaces it)")
    hosts.save(name, entry)
    print(f"added {name}: {hosts.spec_text({k: v for k, v in entry.items() if v})}")
    return 0


def host_show(args) -> int:
    from trainsh.remote.sshspec import ssh_argv
    from trainsh.settings import hosts

    if args.name.startswith("colab:"):
        args.name = args.name[len("colab:"):]
    entry = hosts.get(args.name)
    if entry is not None and entry.get("kind") == "colab":
        # A password host: its askpass file lives only as long as this process, so the line
        # shown is one where ssh asks for the password, and the command that needs none.
        from trainsh.cloud import colab

        for k, v in entry.items():
            print(f"{k:<8} {v}")
        try:
            spec = colab.ssh_spec(args.name, with_password=False)
        except colab.ColabError as e:
            raise UserError(str(e)) from None
        print(f"ssh      {shlex.join(ssh_argv(spec, batch=False))}")
        print(f"         (asks for the password: the secret {colab.secret_name(args.name)}; "
              f"'train host ssh {args.name}' gives it)")
        return 0
    spec = _spec(args.name)
    for k, v in entry.items():
        print(f"{k:<8} {v}")
    print(f"ssh      {shlex.join(ssh_argv(spec, batch=False))}")
    return 0


def host_ssh(args) -> int:
    import subprocess

    from trainsh.remote.sshspec import ssh_argv

    spec = _spec(args.name)
    argv = ssh_argv(spec, tty=True, batch=False)
    if spec.askpass:  # not exec: this process removes the password's file when ssh ends
        return subprocess.run(argv).returncode
    os.execvp(argv[0], argv)
    return 0  # not reached


def host_remove(args) -> int:
    from trainsh.settings import hosts

    if not hosts.remove(args.name):
        raise UserError(f"no host '{args.name}' in hosts.toml (train host list shows them)")
    print(f"removed {args.name}")
    return 0


PROBE = r"""
echo "user=$(id -un) home=$HOME"
for t in tmux rsync python3 rclone unison; do
  if command -v $t >/dev/null 2>&1; then echo "tool $t yes"; else echo "tool $t no"; fi
done
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu /'
else echo "gpu none (no nvidia-smi)"; fi
df -Pk "$HOME" | awk 'NR==2 {printf "disk %.1f GB free\n", $4/1048576}'
"""


def host_key_hint(name: str, stderr: str) -> str:
    """What to do about a host key ssh refused (from its error output), or ''."""
    if "Host key verification failed" not in stderr:
        return ""
    if "IDENTIFICATION HAS CHANGED" in stderr or "Offending" in stderr:
        import re

        m = re.search(r"Offending \S+ key in (\S+):(\d+)", stderr)
        where = f" (kept in {m.group(1)} line {m.group(2)})" if m else ""
        return (f": the host's key is not the one kept for it{where}; if the machine was "
                f"reinstalled, remove the old key (ssh-keygen -R HOST), else do not connect")
    return (f": its host key is not known yet; accept it with 'train host ssh {name}' once (ssh "
            f"asks), or 'train host test {name} --accept-new'")


def host_test(args) -> int:
    from dataclasses import replace

    from trainsh.remote.shell import ShellError

    shell = _shell(args.name)
    if getattr(args, "accept_new", False):  # first: ssh takes an option's first value
        shell.spec = replace(shell.spec, options=("StrictHostKeyChecking=accept-new",
                                                  *shell.spec.options))
    t = time.monotonic()
    try:
        r = shell.run(["true"], timeout=30)  # opens the shared connection
    except ShellError as e:
        stderr = e.result.stderr if e.result is not None else str(e)
        raise UserError(f"{args.name}: {e}{host_key_hint(args.name, stderr)}", 1) from None
    connect = time.monotonic() - t
    if not r.ok:
        raise UserError(f"{args.name}: {shell.explain(r)}{host_key_hint(args.name, r.stderr)}", 1)
    t = time.monotonic()
    shell.run(["true"], timeout=30)
    latency = time.monotonic() - t
    print(f"{args.name}: reachable, authenticated (connect {connect * 1000:.0f} ms, "
          f"round trip {latency * 1000:.0f} ms over the shared connection)")
    r = shell.run(["sh", "-c", PROBE], timeout=60)
    missing = []
    for line in r.stdout.splitlines():
        if line.startswith("tool "):
            _, tool, ok = line.split()
            print(f"  {tool:<8} {'found' if ok == 'yes' else 'missing'}")
            if ok != "yes" and tool in ("tmux", "rsync", "python3"):
                missing.append(tool)
        else:
            print(f"  {line}")
    if missing:
        print(f"  recipes need {', '.join(missing)} on the host")
        return 1
    return 0


def host_browse(args) -> int:
    from trainsh.transfer.planner import copy
    from trainsh.transfer.side import Side

    shell = _shell(args.name)
    path = args.path or shell.home()
    while True:
        r = shell.run(["sh", "-c", f"cd {shlex.quote(path)} && pwd && ls -la --time-style=long-iso"],
                      timeout=60)
        if not r.ok:
            print(f"cannot list {path}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            if not sys.stdin.isatty() or path == "/":
                return 1
            path = os.path.dirname(path.rstrip("/")) or "/"
            continue
        lines = r.stdout.splitlines()
        path = lines[0]
        print(f"{args.name}:{path}")
        for line in lines[2:]:
            print(f"  {line}")
        if not sys.stdin.isatty():
            return 0
        try:
            cmd = input("cd DIR | get FILE [LOCAL] | q > ").strip()
        except EOFError:
            return 0
        if cmd in ("q", "quit", "exit", ""):
            return 0
        verb, _, rest = cmd.partition(" ")
        if verb == "cd":
            path = rest if rest.startswith("/") else os.path.normpath(f"{path}/{rest}")
        elif verb == "get" and rest:
            parts = shlex.split(rest)
            local = parts[1] if len(parts) > 1 else "."
            remote = parts[0] if parts[0].startswith("/") else f"{path}/{parts[0]}"
            print(copy(Side(remote, shell), Side(os.path.abspath(local))))
        else:
            print("commands: cd DIR, get FILE [LOCAL], q")


def _side(text: str):
    from trainsh.settings import hosts
    from trainsh.transfer.side import Side

    if text.startswith("@"):
        from trainsh.kinds import scheme_of

        scheme, rest = scheme_of(text[1:])
        name, sep, path = text[1:].partition(":")
        if scheme == "colab":  # @colab:NAME:PATH
            name, sep, path = f"colab:{rest.partition(':')[0]}", ":", rest.partition(":")[2]
        if not sep or not path:
            raise UserError(f"{text}: write @HOST:PATH")
        if name == "local":
            return Side(os.path.abspath(os.path.expanduser(path)) + ("/" if path.endswith("/") else ""))
        if not name.startswith("colab:") and hosts.get(name) is None:
            from trainsh.settings import storages

            if name in storages.load():
                return Side(path, storage=storages.resolve(name))
            raise UserError(f"{text}: no host or storage '{name}' (train host add, train storage add)")
        return Side(path, _shell(name))
    return Side(os.path.abspath(os.path.expanduser(text)) + ("/" if text.endswith("/") else ""))


def transfer(args) -> int:
    from trainsh.transfer.planner import copy

    from trainsh.ui.console import Console

    src, dst = _side(args.src), _side(args.dst)
    console = Console()
    progress = None
    if console.visual:
        console.live(f"copying {args.src} -> {args.dst}")
        progress = lambda text: console.live_update(f"{args.src} -> {args.dst}  {text}")  # noqa: E731
    try:
        summary = copy(src, dst, delete=args.delete, excludes=tuple(args.exclude),
                       dry_run=args.dry_run, progress=progress)
    finally:
        console.live_done()
    print(summary)
    return 0


HANDLERS = {"list": host_list, "add": host_add, "show": host_show, "ssh": host_ssh,
            "remove": host_remove, "test": host_test, "browse": host_browse}
