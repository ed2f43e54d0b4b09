"""Handlers of `train vast ...`, `train runpod ...`: every cloud's group (cli/__init__.py's
CLOUDS builds one per provider name).

Every verb goes through the `Provider` interface, so a cloud's group is this module with
another name; a verb only one cloud has (`train runpod gpus`) is `cmd_VERB` in cli/NAME.py.
Errors are one line: an unknown instance is bad input (exit 2); a missing or refused
key, an unreachable API or an offer that is gone is a failed request (exit 1).
"""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import os
import sys
import time

from trainsh.cli.common import UserError
from trainsh.cli.completion import remember_instances


def dispatch(args) -> int:
    from trainsh.cloud.provider import AuthError, NoCapacity, NotFound, ProviderError

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
    """The ssh command for a machine, quoted for the shell it is pasted into: a host name from
    the cloud is never run as a command of its own."""
    import shlex

    return shlex.join(["ssh", "-p", str(inst.ssh.port), f"{inst.ssh.user}@{inst.ssh.host}"]) if inst.ssh else "-"


def show(*lines) -> None:
    """print(), for lines that carry a cloud's words (labels, GPU names, places)."""
    from trainsh.visible import visible

    print(*(visible(x, lines=True) for x in lines))


def instance_dict(inst, raw: bool = False) -> dict:
    now = time.time()
    d = {"id": inst.id, "host": inst.host_spec, "status": inst.status, "provider_status": inst.provider_status,
         "gpu_name": inst.gpu_name, "num_gpus": inst.num_gpus, "price_per_hour": inst.price_per_hour,
         "uptime_seconds": round(inst.uptime(now), 1), "cost_so_far": round(inst.cost_so_far(now), 4),
         "storage_per_hour": round(inst.storage_per_hour, 6), "billing_per_hour": round(inst.billing_per_hour(), 6),
         "total_cost": None if inst.total_cost is None else round(inst.total_cost, 4),
         "label": inst.label, "image": inst.image, "started_at": inst.started_at,
         "interruptible": inst.interruptible, "bid": inst.bid, "preempted": inst.preempted or None,
         "status_words": inst.status_words,
         "ssh": ({"user": inst.ssh.user, "host": inst.ssh.host, "port": inst.ssh.port} if inst.ssh else None)}
    if raw:
        d["raw"] = inst.raw
    return d


def offer_dict(o, disk_gb: float) -> dict:
    return {"id": o.id, "gpu_name": o.gpu_name, "num_gpus": o.num_gpus, "gpu_ram_gb": round(o.gpu_ram_gb, 1),
            "price_per_hour": o.price_per_hour, "location": o.location, "reliability": o.reliability,
            "disk_gb": o.disk_gb, "min_bid": o.min_bid, "rent_disk_gb": disk_gb,
            "price_per_hour_with_disk": round(o.price_with_disk(disk_gb), 6)}


def table(rows: list[list[str]]) -> None:
    from trainsh.visible import visible

    rows = [[visible(c) for c in r] for r in rows]  # a cloud's words are shown, never acted on
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _gpu(n: int, name: str, gb: float = 0.0) -> str:
    from trainsh.cloud.gpus import memory

    return (f"{n}x {name}" + (f" ({memory(gb)})" if gb else "")) if name else "-"


# ---- verbs ------------------------------------------------------------------------------------

def _title(p) -> str:
    return p.title or p.name


def _json(data) -> None:
    import json

    print(json.dumps(data, indent=2, default=str))


def _with_totals(p, read) -> list:
    """`read()`'s instances with what each has cost since it was rented, where the cloud says.
    The totals are asked at the same time as the instances (a second round trip would double a
    listing's wait); a failed lookup leaves them unknown: the listing matters more."""
    import threading

    try:  # the key first, here: a store may ask for its passphrase
        key = p.key
        if callable(key):
            key()
    except Exception:  # noqa: BLE001 - no totals; read() says what is wrong, in its own order
        return read()
    got: dict = {}

    def ask() -> None:
        try:
            got["totals"] = p.totals()
        except Exception:  # noqa: BLE001 - unknown totals, never a failed listing
            got["totals"] = {}

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    insts = read()
    asking.join()
    for i in insts:
        i.total_cost = got.get("totals", {}).get(i.id, i.total_cost)
    return insts


def _per_hour(inst, code, rates) -> str:
    """What it bills an hour now: its price, or for a stopped machine its disk's storage."""
    from trainsh.cloud.pricing import money
    from trainsh.cloud.provider import STOPPED

    text = money(inst.billing_per_hour(), code, rates, 3)
    return f"{text} disk" if inst.status == STOPPED else text


def status_line(inst) -> str:
    """Its status, the cloud's own word beside it when that differs, and how it is rented when
    on a bid: "stopped (exited)", "paused: outbid (stopped), bid $0.15/h"."""
    words = inst.status_words
    text = words if words == inst.provider_status.lower() else f"{words} ({inst.provider_status})"
    if inst.interruptible:
        text += f", bid ${inst.bid:.3f}/h" if inst.bid is not None else ", interruptible"
    return text


def cmd_list(p, args) -> int:
    insts = _with_totals(p, lambda: sorted(p.list(), key=lambda i: (len(i.id), i.id)))
    remember_instances(p.name, [i.id for i in insts])  # for completion of ids, without a call
    if args.json:
        _json([instance_dict(i) for i in insts])
        return 0
    if not insts:
        show(f"no {_title(p)} {p.noun}s (train {p.name} search, then train {p.name} create OFFER_ID)")
        return 0
    from trainsh.cloud.pricing import display_table, money

    code, rates = display_table()
    now = time.time()
    rows = [["ID", "STATUS", "GPU", "PER HOUR", "UPTIME", "THIS RUN", "TOTAL", "SSH"]]
    for i in insts:
        rows.append([i.id, status_line(i), _gpu(i.num_gpus, i.gpu_name, i.gpu_ram_gb), _per_hour(i, code, rates),
                     duration(i.uptime(now)) if i.uptime(now) else "-",
                     money(i.cost_so_far(now), code, rates),
                     "-" if i.total_cost is None else money(i.total_cost, code, rates), ssh_line(i)])
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
                show(f"{p.name} {i.id} was rented by {who} that was killed (label {r.label}); "
                      f"it bills: end it with: train {p.name} destroy {i.id}")
    finally:
        journal.close()


def cmd_show(p, args) -> int:
    inst = _with_totals(p, lambda: [p.get(args.id)])[0]
    if args.json:
        _json(instance_dict(inst, raw=True))
        return 0
    from trainsh.cloud.pricing import display_table, money

    code, rates = display_table()
    d = instance_dict(inst)
    now = time.time()
    lines = [("host", inst.host_spec), ("status", status_line(inst)),
             ("label", inst.label or "-"), ("gpu", _gpu(inst.num_gpus, inst.gpu_name, inst.gpu_ram_gb)),
             ("image", inst.image or "-"), ("price", f"{money(inst.price_per_hour, code, rates, 3)}/h"),
             ("storage", f"{money(inst.storage_per_hour, code, rates, 3)}/h while stopped (its disk)"),
             ("uptime", duration(d["uptime_seconds"]) if d["uptime_seconds"] else "-"),
             ("this run", money(inst.cost_so_far(now), code, rates)),
             ("total", "-" if inst.total_cost is None else f"{money(inst.total_cost, code, rates)} since rented"),
             ("ssh", ssh_line(inst))]
    for k, v in lines:
        show(f"{k:<9} {v}")
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
    show(f"{p.name} {args.id}: {doing}")
    return 0


def cmd_start(p, args) -> int:
    if not args.wait:
        return _verb(p, args, "start", f"starting (train {p.name} list shows when it runs)")
    p.start(args.id)
    inst = p.wait_ready(args.id)
    show(f"{p.name} {inst.id}: running: {ssh_line(inst)}")
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
        if not _yes(f"destroy {inst.host_spec}{label}, {_gpu(inst.num_gpus, inst.gpu_name)}, "
                    f"and everything on its disk?"):
            print("not destroyed")
            return 1
    p.destroy(inst.id)
    remember_instances(p.name, drop=[inst.id])
    show(f"{p.name} {inst.id}: destroyed")
    return 0


def prunable(p, holds, insts: list) -> tuple[list, list]:
    """(stopped instances trainsh rented that nobody holds, [(instance, who)] stopped ones
    trainsh rented that a job or ow holds). Trainsh rented it: its label is one trainsh makes
    (`trainsh-...`, `ow-...`) or a rent of the ledger made it."""
    from trainsh.cloud.provider import STOPPED

    rents = holds.of_cloud(p.name)
    idents = {r.ident for r in rents if r.ident}
    labels = {r.label for r in rents}
    held = holds.holders(p.name)
    free, taken = [], []
    for i in insts:
        ours = i.label.startswith(("trainsh-", "ow-")) or i.id in idents or (i.label and i.label in labels)
        if i.status != STOPPED or not ours:
            continue
        who = holds.holder(i, held=held)
        if who:
            taken.append((i, who))
        else:
            free.append(i)
    return free, taken


def cmd_prune(p, args) -> int:
    from trainsh.cloud.pricing import display_table, money
    from trainsh.runtime.holds import Holds
    from trainsh.runtime.journal import Journal

    journal = Journal()
    try:
        holds = Holds(journal)
        doomed, taken = prunable(p, holds, sorted(p.list(), key=lambda i: (len(i.id), i.id)))
        if not doomed:
            held = f" ({len(taken)} held by a job or ow)" if taken else ""
            show(f"nothing to prune: no stopped {p.noun} trainsh rented that no job holds{held}")
            return 0
        if not args.yes and not sys.stdin.isatty():
            raise UserError(f"prune would destroy {', '.join(i.host_spec for i in doomed)} (stopped, "
                            f"rented by trainsh, held by no job) and their disks: add --yes to do it "
                            f"without a terminal")
        code, rates = display_table()
        for i in doomed:
            label = f", {i.label}" if i.label else ""
            show(f"{i.host_spec} ({_gpu(i.num_gpus, i.gpu_name)}{label}): stopped, its disk bills "
                  f"{money(i.storage_per_hour, code, rates, 3)}/h")
        for i, who in taken:
            show(f"{i.host_spec}: stopped, held by {who}: kept")
        rate = sum(i.storage_per_hour for i in doomed)
        if not args.yes:
            if not _yes(f"destroy these {len(doomed)} and everything on their disks "
                        f"({money(rate, code, rates, 3)}/h)?"):
                print("nothing destroyed")
                return 1
        failed = 0
        for i in doomed:
            try:
                p.destroy(i.id)
            except Exception as e:  # noqa: BLE001 - the others go on; say what still bills
                failed += 1
                print(f"train: {i.host_spec} could NOT be destroyed ({e}): it bills; "
                      f"train {p.name} destroy {i.id}", file=sys.stderr)
                continue
            if i.label and holds.rent(i.label):
                holds.set(i.label, state="destroyed")
            show(f"{p.name} {i.id}: destroyed")
        return 1 if failed else 0
    finally:
        journal.close()


def _yes(question: str) -> bool:
    """The user's answer to a question that destroys something: only y or yes is a yes."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_search(p, args) -> int:
    from trainsh.cloud.gpus import memory
    from trainsh.settings import config

    spot = args.interruptible
    try:  # the disk a create asks for: it bills on top of some clouds' offer price
        disk = float(config.get(f"{p.name}.disk"))
    except config.ConfigError as e:
        raise UserError(f"config: {e} (train config set KEY VALUE)") from None
    offers = p.search(gpu=args.gpu, num_gpus=args.num_gpus, min_gpu_ram_gb=args.min_gpu_ram,
                      max_price=args.max_dph, limit=args.limit, interruptible=spot)
    if args.max_dph is not None and not spot:  # (the cloud compares its offer price: the disk comes on top)
        offers = [o for o in offers if o.price_with_disk(disk) <= args.max_dph]
    if args.json:
        _json([offer_dict(o, disk) for o in offers])
        return 0
    if not offers:
        raise UserError(f"no {_title(p)} offer matches (loosen --gpu, --num-gpus, --min-gpu-ram or --max-dph)", 1)
    rows = [["OFFER", "GPU", "GPU RAM", "$/H", *(["MIN BID $/H"] if spot else []), "RELIABILITY", "LOCATION"]]
    for o in offers:
        bid = [f"{o.min_bid:.3f}" if o.min_bid is not None else "-"] if spot else []
        rows.append([o.id, _gpu(o.num_gpus, o.gpu_name), memory(o.gpu_ram_gb), f"{o.price_with_disk(disk):.3f}",
                     *bid, f"{o.reliability:.3f}" if isinstance(o.reliability, (int, float)) else "-",
                     o.location or "-"])
    table(rows)
    if any(o.disk_per_gb_hour for o in offers):
        first = offers[0]
        show(f"$/H: the machine with the {disk:g} GB disk a create asks for (config {p.name}.disk, "
             f"--disk), which bills while stopped too; offer {first.id}: ${first.price_per_hour:.3f} "
             f"+ disk ${first.price_with_disk(disk) - first.price_per_hour:.3f}")
    how = (" --bid [PRICE]" if p.name == "vast" else " --spot [--bid PRICE_PER_GPU]") if spot else ""
    show(f"rent one: train {p.name} create OFFER{how} [--image IMAGE --disk GB --label NAME]")
    return 0


def cmd_keys(p, args) -> int:
    keys = p.keys()
    if not keys:
        show(f"no ssh keys on your {_title(p)} account (train {p.name} attach-key)")
        return 0
    for k in keys:
        parts = k["key"].split()
        short = f"{parts[0]} ...{parts[1][-12:]}" if len(parts) > 1 else k["key"][:40]
        show(f"{k['id']:<8} {short}  {' '.join(parts[2:])}".rstrip())
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
        text = _key_file(pub).strip()
    elif os.path.exists(path):
        head = _key_file(path)
        if "-----BEGIN " not in head or "PRIVATE KEY-----" not in head:
            raise UserError(f"{path} is not an ssh key (neither a public key nor a private one)")
        r = subprocess.run(["ssh-keygen", "-y", "-f", path], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            said = " ".join(r.stderr.split())  # (its warnings are several lines: one, here)
            raise UserError(f"cannot read the public half of {path}: {said or 'ssh-keygen failed'}")
        text, pub = r.stdout.strip(), path
    else:
        raise UserError(f"no such key: {path}")
    if not text.startswith(("ssh-", "ecdsa-", "sk-")) or "PRIVATE KEY" in text:
        raise UserError(f"{pub} is not an ssh public key")
    return text, pub


def _key_file(path: str) -> str:
    """A key file's text: a regular file of at most 64 KiB (a FIFO or /dev/zero would be read
    forever), read whatever its bytes."""
    import stat

    try:
        st = os.stat(path)  # (before opening it: opening a FIFO waits for a writer)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{path} is not an ssh key (not a regular file)")
        if st.st_size > 65536:
            raise UserError(f"{path} is not an ssh key (more than 64 KiB)")
        with open(path, "rb") as f:
            return f.read(65536).decode("utf-8", "replace")
    except OSError as e:
        raise UserError(f"cannot read {path}: {(e.strerror or str(e)).lower()}") from None


def cmd_attach_key(p, args) -> int:
    text, where = public_key(args.path)
    p.add_key(text)
    show(f"{p.name}: {where} is on your account (new instances accept it)")
    if args.instance:
        if not hasattr(p, "attach_key"):
            raise UserError(f"{_title(p)} cannot attach a key to one instance", 1)
        p.attach_key(args.instance, text)
        show(f"{p.name} {args.instance}: the key is attached")
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
    from trainsh.cloud.provider import CreateRequest, machine_bid
    from trainsh.runtime.holds import unique_label
    from trainsh.settings import config

    try:
        image = args.image or config.get(f"{p.name}.image")
        disk = args.disk if args.disk is not None else config.get(f"{p.name}.disk")
    except config.ConfigError as e:
        raise UserError(f"config: {e} (train config set KEY VALUE)") from None
    if disk <= 0:
        raise UserError(f"--disk must be more than 0 GB (config {p.name}.disk is {disk})")
    count = getattr(args, "num_gpus", None)
    listed = p.offer_gpus(args.offer)
    if count is not None and listed is not None and count != listed:
        raise UserError(f"offer '{args.offer}' is {listed} GPUs: --num-gpus {count} says otherwise "
                        f"(train {p.name} search --num-gpus {count} lists those)")
    spot = bool(getattr(args, "spot", False)) or (p.name == "vast" and args.bid is not None)
    if args.bid is not None and not spot:
        raise UserError("--bid goes with --spot (a spot pod's bid per GPU)")
    count = count or listed or 1
    bid = machine_bid(p.name, args.bid, count)
    inst = _rent(p, args.offer, CreateRequest(image=image, disk_gb=disk, gpu_count=count,
                                              label=args.label or unique_label("trainsh-create"),
                                              interruptible=spot, bid=bid))
    remember_instances(p.name, add=[inst.id])
    gpus = f", {_gpu(inst.num_gpus, inst.gpu_name)}" if inst.gpu_name else ""
    how = f" interruptible, bid ${inst.bid:.3f}/h" if inst.bid is not None else \
        (" interruptible" if inst.interruptible else "")
    show(f"{p.name} {inst.id}: rented{how} from offer {args.offer}{gpus} at ${inst.price_per_hour:.3f}/h, "
          f"{inst.status} (train {p.name} list; train {p.name} ssh {inst.id} once it runs; "
          f"train {p.name} stop {inst.id} to stop paying for the GPU)")
    return 0


HANDLERS = {"list": cmd_list, "show": cmd_show, "ssh": cmd_ssh, "start": cmd_start, "stop": cmd_stop,
            "reboot": cmd_reboot, "destroy": cmd_destroy, "search": cmd_search, "keys": cmd_keys,
            "attach-key": cmd_attach_key, "create": cmd_create, "prune": cmd_prune}
