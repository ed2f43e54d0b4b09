"""Handlers of `train vast ...`, `train runpod ...`: every cloud's group (cli/__init__.py's
CLOUDS builds one per provider name).

Every verb goes through the `Provider` interface, so a cloud's group is this module with
another name; a verb only one cloud has (`train runpod gpus`) is `cmd_VERB` in cli/NAME.py.
Errors are one line: an unknown instance is bad input (exit 2); a missing or refused
key, an unreachable API or an offer that is gone is a failed request (exit 1).
"""

from __future__ import annotations

import os
import sys
import time

from trainsh.cli import UserError
from trainsh.cli.completion import remember_instances


def dispatch(args) -> int:
    from trainsh.cloud.provider import AuthError, NoCapacity, NotFound, ProviderError

    if args.cmd in ("search",) and (args.limit < 1 or args.num_gpus < 1):
        raise UserError("--limit and --num-gpus must be at least 1")
    try:
        from trainsh.cloud.provider import provider

        handler = HANDLERS.get(args.cmd)
        if handler is None:  # a verb of this cloud's own
            import importlib

            handler = getattr(importlib.import_module(f"trainsh.cli.{args.group}"), f"cmd_{args.cmd}")
        return handler(provider(args.group), args)
    except NotFound as e:
        raise UserError(str(e), 2) from None
    except AuthError as e:
        hint = f" (train secrets set {args.group.upper()}_API_KEY)" if "refused" in str(e) else ""
        raise UserError(f"{e}{hint}", 1) from None
    except NoCapacity as e:
        raise UserError(f"{e} (train {args.group} search shows what is)", 1) from None
    except ProviderError as e:
        raise UserError(str(e), 1) from None


# ---- formatting -------------------------------------------------------------------------------

def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def ssh_line(inst) -> str:
    return f"ssh -p {inst.ssh.port} {inst.ssh.user}@{inst.ssh.host}" if inst.ssh else "-"


def instance_dict(inst, raw: bool = False) -> dict:
    now = time.time()
    d = {"id": inst.id, "host": inst.host_spec, "status": inst.status, "provider_status": inst.provider_status,
         "gpu_name": inst.gpu_name, "num_gpus": inst.num_gpus, "price_per_hour": inst.price_per_hour,
         "uptime_seconds": round(inst.uptime(now), 1), "cost_so_far": round(inst.cost_so_far(now), 4),
         "label": inst.label, "image": inst.image, "started_at": inst.started_at,
         "ssh": ({"user": inst.ssh.user, "host": inst.ssh.host, "port": inst.ssh.port} if inst.ssh else None)}
    if raw:
        d["raw"] = inst.raw
    return d


def offer_dict(o) -> dict:
    return {"id": o.id, "gpu_name": o.gpu_name, "num_gpus": o.num_gpus, "gpu_ram_gb": round(o.gpu_ram_gb, 1),
            "price_per_hour": o.price_per_hour, "location": o.location, "reliability": o.reliability,
            "disk_gb": o.disk_gb}


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _gpu(n: int, name: str) -> str:
    return f"{n}x {name}" if name else "-"


# ---- verbs ------------------------------------------------------------------------------------

def _title(p) -> str:
    return p.title or p.name


def _json(data) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def cmd_list(p, args) -> int:
    insts = sorted(p.list(), key=lambda i: (len(i.id), i.id))
    remember_instances(p.name, [i.id for i in insts])  # for completion of ids, without a call
    if args.json:
        _json([instance_dict(i) for i in insts])
        return 0
    if not insts:
        print(f"no {_title(p)} {p.noun}s (train {p.name} search, then train {p.name} create OFFER_ID)")
        return 0
    from trainsh.cloud.pricing import display_table, money

    code, rates = display_table()
    now = time.time()
    rows = [["ID", "STATUS", "GPU", "PER HOUR", "UPTIME", "COST", "SSH"]]
    for i in insts:
        status = i.status if i.status == i.provider_status.lower() else f"{i.status} ({i.provider_status})"
        rows.append([i.id, status, _gpu(i.num_gpus, i.gpu_name), money(i.price_per_hour, code, rates, 3),
                     duration(i.uptime(now)) if i.uptime(now) else "-",
                     money(i.cost_so_far(now), code, rates), ssh_line(i)])
    table(rows)
    _cut_short(p, insts)
    return 0


def _cut_short(p, insts) -> None:
    """Name the machines that a killed `train create` or `ow` rented and never ended."""
    from trainsh.runtime.holds import Holds
    from trainsh.runtime.journal import Journal

    journal = Journal.reader()
    try:
        holds = Holds(journal)
        for r in holds.orphans(p.name):
            who = "an ow" if r.holder == "ow" else f"a train {p.name} create"
            for i in holds.made_by(p, r, insts):
                print(f"{p.name} {i.id} was rented by {who} that was killed (label {r.label}); "
                      f"it bills: end it with: train {p.name} destroy {i.id}")
    finally:
        journal.close()


def cmd_show(p, args) -> int:
    inst = p.get(args.id)
    if args.json:
        _json(instance_dict(inst, raw=True))
        return 0
    from trainsh.cloud.pricing import display_table, money

    code, rates = display_table()
    d = instance_dict(inst)
    now = time.time()
    lines = [("host", inst.host_spec), ("status", f"{inst.status} ({inst.provider_status})"),
             ("label", inst.label or "-"), ("gpu", _gpu(inst.num_gpus, inst.gpu_name)),
             ("image", inst.image or "-"), ("price", f"{money(inst.price_per_hour, code, rates, 3)}/h"),
             ("uptime", duration(d["uptime_seconds"]) if d["uptime_seconds"] else "-"),
             ("cost so far", money(inst.cost_so_far(now), code, rates)), ("ssh", ssh_line(inst))]
    for k, v in lines:
        print(f"{k:<12} {v}")
    return 0


def cmd_ssh(p, args) -> int:
    from trainsh.cloud.provider import RUNNING
    from trainsh.remote.sshspec import ssh_argv

    inst = p.get(args.id)
    if inst.status != RUNNING or inst.ssh is None:
        raise UserError(f"{p.noun} {inst.id} is {inst.status}, not running "
                        f"(train {p.name} start {inst.id})", 1)
    remote = " ".join(args.command) if args.command else None
    argv = ssh_argv(inst.ssh_spec(), remote, tty=remote is None and sys.stdin.isatty(), batch=False)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def _verb(p, args, verb: str, doing: str) -> int:
    getattr(p, verb)(args.id)
    print(f"{p.name} {args.id}: {doing}")
    return 0


def cmd_start(p, args) -> int:
    if not args.wait:
        return _verb(p, args, "start", f"starting (train {p.name} list shows when it runs)")
    p.start(args.id)
    inst = p.wait_ready(args.id)
    print(f"{p.name} {inst.id}: running: {ssh_line(inst)}")
    return 0


def cmd_stop(p, args) -> int:
    return _verb(p, args, "stop", "stopping (its disk stays and bills storage; destroy ends that)")


def cmd_reboot(p, args) -> int:
    return _verb(p, args, "reboot", "rebooting")


def cmd_destroy(p, args) -> int:
    inst = p.get(args.id)  # unknown id: say so before asking anything
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"destroying {inst.host_spec} deletes its disk: add --yes to do it without a terminal")
        label = f" ({inst.label})" if inst.label else ""
        try:
            answer = input(f"destroy {inst.host_spec}{label}, {_gpu(inst.num_gpus, inst.gpu_name)}, "
                           f"and everything on its disk? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("not destroyed")
            return 1
    p.destroy(inst.id)
    remember_instances(p.name, drop=[inst.id])
    print(f"{p.name} {inst.id}: destroyed")
    return 0


def cmd_search(p, args) -> int:
    offers = p.search(gpu=args.gpu, num_gpus=args.num_gpus, min_gpu_ram_gb=args.min_gpu_ram,
                      max_price=args.max_dph, limit=args.limit)
    if args.json:
        _json([offer_dict(o) for o in offers])
        return 0
    if not offers:
        raise UserError(f"no {_title(p)} offer matches (loosen --gpu, --num-gpus, --min-gpu-ram or --max-dph)", 1)
    rows = [["OFFER", "GPU", "GPU RAM", "$/H", "RELIABILITY", "LOCATION"]]
    for o in offers:
        rows.append([o.id, _gpu(o.num_gpus, o.gpu_name), f"{o.gpu_ram_gb:.1f} GB", f"{o.price_per_hour:.3f}",
                     f"{o.reliability:.3f}" if isinstance(o.reliability, (int, float)) else "-", o.location or "-"])
    table(rows)
    print(f"rent one: train {p.name} create OFFER [--image IMAGE --disk GB --label NAME]")
    return 0


def cmd_keys(p, args) -> int:
    keys = p.keys()
    if not keys:
        print(f"no ssh keys on your {_title(p)} account (train {p.name} attach-key)")
        return 0
    for k in keys:
        parts = k["key"].split()
        short = f"{parts[0]} ...{parts[1][-12:]}" if len(parts) > 1 else k["key"][:40]
        print(f"{k['id']:<8} {short}  {' '.join(parts[2:])}".rstrip())
    return 0


def public_key(path: str | None) -> tuple[str, str]:
    """(public key text, where it came from): PATH, else the `ssh.key` identity, else the usual
    ~/.ssh identities. A private key path means its .pub, or what ssh-keygen -y derives."""
    import subprocess

    from trainsh.settings import config

    if not path:
        path = config.get("ssh.key") or ""
        if not path:
            for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
                cand = os.path.expanduser(f"~/.ssh/{name}.pub")
                if os.path.exists(cand):
                    path = cand
                    break
        if not path:
            raise UserError("no ssh key to upload: give a path, or set one with train config set ssh.key PATH")
    path = os.path.expanduser(path)
    pub = path if path.endswith(".pub") else path + ".pub"
    if os.path.exists(pub):
        text = open(pub).read().strip()
    elif os.path.exists(path):
        r = subprocess.run(["ssh-keygen", "-y", "-f", path], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise UserError(f"cannot read the public half of {path}: {r.stderr.strip() or 'ssh-keygen failed'}")
        text, pub = r.stdout.strip(), path
    else:
        raise UserError(f"no such key: {path}")
    if not text.startswith(("ssh-", "ecdsa-", "sk-")) or "PRIVATE KEY" in text:
        raise UserError(f"{pub} is not an ssh public key")
    return text, pub


def cmd_attach_key(p, args) -> int:
    text, where = public_key(args.path)
    p.add_key(text)
    print(f"{p.name}: {where} is on your account (new instances accept it)")
    if args.instance:
        if not hasattr(p, "attach_key"):
            raise UserError(f"{_title(p)} cannot attach a key to one instance", 1)
        p.attach_key(args.instance, text)
        print(f"{p.name} {args.instance}: the key is attached")
    return 0


def _rent(p, offer: str, request):
    """Rent through the ledger; a rent cut short (Ctrl-C, SIGTERM, SIGHUP) ends what the cloud
    made meanwhile, and says so; a rent whose machine cannot be found yet is named by label."""
    from trainsh.runtime.holds import Holds, rent
    from trainsh.runtime.journal import Journal

    def say(text: str) -> None:
        print(f"train: {text}", file=sys.stderr, flush=True)

    journal = Journal()
    holds = Holds(journal)
    try:
        return rent(holds, p, offer, request, "create", say=say)
    except BaseException as e:
        if isinstance(e, Exception):
            raise
        for inst in getattr(e, "made", ()):
            try:
                p.destroy(inst.id)
                holds.set(request.label, state="destroyed")
                say(f"{p.name} {inst.id} was rented as the create was cut short: destroyed it")
            except Exception as gone:  # noqa: BLE001 - say what bills, never hide it
                say(f"{p.name} {inst.id} was rented as the create was cut short and could NOT be "
                    f"destroyed ({gone}): it bills; end it with: train {p.name} destroy {inst.id}")
        rest = holds.rent(request.label)
        if rest is not None and rest.state == "sending":
            say(f"the rent was cut short: the cloud may still make a {p.noun} labelled "
                f"{request.label}, and it would bill; see train {p.name} list")
        raise
    finally:
        journal.close()


def cmd_create(p, args) -> int:
    from trainsh.cloud.provider import CreateRequest
    from trainsh.runtime.holds import unique_label
    from trainsh.settings import config

    image = args.image or config.get(f"{p.name}.image")
    disk = args.disk if args.disk is not None else config.get(f"{p.name}.disk")
    if disk <= 0:
        raise UserError("--disk must be more than 0 GB")
    inst = _rent(p, args.offer, CreateRequest(image=image, disk_gb=disk,
                                              label=args.label or unique_label("trainsh-create")))
    remember_instances(p.name, add=[inst.id])
    print(f"{p.name} {inst.id}: rented from offer {args.offer} at ${inst.price_per_hour:.3f}/h, "
          f"{inst.status} (train {p.name} list; train {p.name} ssh {inst.id} once it runs; "
          f"train {p.name} stop {inst.id} to stop paying for the GPU)")
    return 0


HANDLERS = {"list": cmd_list, "show": cmd_show, "ssh": cmd_ssh, "start": cmd_start, "stop": cmd_stop,
            "reboot": cmd_reboot, "destroy": cmd_destroy, "search": cmd_search, "keys": cmd_keys,
            "attach-key": cmd_attach_key, "create": cmd_create}
