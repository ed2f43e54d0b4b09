"""Handlers of `train runpod ...`: the account's pods and GPU types.

Written against the Provider interface alone (the provider is looked up by name), so the same
handlers can serve another cloud's group.
"""

from __future__ import annotations

import json
import os
import sys

from trainsh.cli import UserError


def dispatch(args) -> int:
    from trainsh.cloud.provider import (AuthError, NoCapacity, NotFound, ProviderError, Unavailable,
                                        provider)

    try:
        return HANDLERS[args.cmd](provider(args.group), args)
    except (NotFound, AuthError) as e:
        raise UserError(str(e)) from None
    except (NoCapacity, Unavailable, ProviderError) as e:
        if type(e).__name__ == "UnknownGpu":
            raise UserError(str(e)) from None
        raise UserError(str(e), 1) from None


# ---- formatting ----------------------------------------------------------------------------

def _duration(seconds: float) -> str:
    s = int(seconds)
    if s <= 0:
        return "-"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _ssh_line(cloud, inst) -> str:
    if inst.ssh is None:
        return ""
    return f"ssh -p {inst.ssh.port} {inst.ssh.user}@{inst.ssh.host}"


def _record(cloud, inst) -> dict:
    return {"id": inst.id, "host": inst.host_spec, "name": inst.label, "status": inst.status,
            "provider_status": inst.provider_status, "gpu": inst.gpu_name, "num_gpus": inst.num_gpus,
            "price_per_hour": inst.price_per_hour, "uptime_seconds": round(inst.uptime()),
            "cost_so_far": round(inst.cost_so_far(), 4), "image": inst.image,
            "ssh": _ssh_line(cloud, inst) or None}


# ---- handlers ------------------------------------------------------------------------------

def cmd_list(cloud, args) -> int:
    pods = cloud.list()
    if args.json:
        print(json.dumps([_record(cloud, i) for i in pods], indent=2))
        return 0
    if not pods:
        print(f"no {cloud.name} pods on this account")
        return 0
    from trainsh.cloud.pricing import display_table, money

    code, rates = display_table()
    rows = [("ID", "STATUS", "GPU", "PER HOUR", "UPTIME", "COST", "SSH")]
    for i in pods:
        gpu = f"{i.num_gpus}x {i.gpu_name}" if i.gpu_name else "-"
        rows.append((i.id, i.status, gpu, money(i.price_per_hour, code, rates, 3), _duration(i.uptime()),
                     money(i.cost_so_far(), code, rates), _ssh_line(cloud, i)))
    _table(rows)
    return 0


def _table(rows) -> None:
    widths = [max(len(str(r[c])) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())


def cmd_show(cloud, args) -> int:
    inst = cloud.get(args.id)
    rec = _record(cloud, inst)
    if args.json:
        print(json.dumps(rec, indent=2))
        return 0
    from trainsh.cloud.pricing import display_table, money

    code, rates = display_table()
    rec["price_per_hour"] = money(inst.price_per_hour, code, rates, 3)
    rec["cost_so_far"] = money(inst.cost_so_far(), code, rates)
    for k, v in rec.items():
        if v not in (None, ""):
            print(f"{k:<16} {v}")
    return 0


def cmd_ssh(cloud, args) -> int:
    from trainsh.cloud.provider import RUNNING
    from trainsh.remote.sshspec import ssh_argv

    inst = cloud.get(args.id)
    if inst.status != RUNNING or inst.ssh is None:
        hint = f" (train {cloud.name} start {inst.id})" if inst.status == "stopped" else ""
        raise UserError(f"pod {inst.id} is {inst.status}, no ssh yet{hint}", 1)
    argv = ssh_argv(cloud.ssh_spec(inst), tty=True, batch=False)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def cmd_start(cloud, args) -> int:
    cloud.start(args.id)
    if args.wait:
        inst = cloud.wait_ready(args.id)
        print(f"{inst.id} running: {_ssh_line(cloud, inst)}")
    else:
        print(f"{args.id} starting (train {cloud.name} show {args.id})")
    return 0


def cmd_stop(cloud, args) -> int:
    cloud.stop(args.id)
    print(f"{args.id} stopped (its disk stays, and bills, until train {cloud.name} destroy {args.id})")
    return 0


def cmd_destroy(cloud, args) -> int:
    inst = cloud.get(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"destroy deletes pod {inst.id} and its disk: add --yes (not on a terminal)")
        what = f"{inst.id} ({inst.label or 'no name'}, {inst.gpu_name or 'no GPU'}, {inst.status})"
        try:
            answer = input(f"destroy pod {what} and its disk? [y/N] ").strip().lower()
        except EOFError:
            answer = ""
        if answer not in ("y", "yes"):
            print("kept")
            return 1
    cloud.destroy(inst.id)
    print(f"{inst.id} destroyed")
    return 0


def cmd_gpus(cloud, args) -> int:
    from trainsh.cloud.runpod import GPU_SHORT_NAMES

    if args.count < 1:
        raise UserError("--count must be 1 or more")
    short = {v: k for k, v in GPU_SHORT_NAMES.items()}
    types = sorted(cloud.gpu_types(args.count), key=lambda g: (g["price"] is None, g["price"] or 0, g["id"]))
    if args.json:
        print(json.dumps([{"id": g["id"], "short": short.get(g["id"]), "name": g.get("displayName"),
                           "memory_gb": g.get("memoryInGb"), "secure_price": g.get("securePrice"),
                           "community_price": g.get("communityPrice"), "price_now": g["price"]}
                          for g in types], indent=2))
        return 0

    def money(v) -> str:
        return f"{v:.2f}" if v else "-"

    rows = [("SHORT", "GPU TYPE ID", "NAME", "MEM GB", "SECURE $/H", "COMMUNITY $/H", "NOW $/H")]
    for g in types:
        rows.append((short.get(g["id"], ""), g["id"], g.get("displayName") or "", g.get("memoryInGb") or "",
                     money(g.get("securePrice")), money(g.get("communityPrice")),
                     money(g["price"]) if g["price"] is not None else "none free"))
    _table(rows)
    print("prices per GPU-hour; NOW is the lowest to be had at this moment")
    return 0


HANDLERS = {"list": cmd_list, "show": cmd_show, "ssh": cmd_ssh, "start": cmd_start, "stop": cmd_stop,
            "destroy": cmd_destroy, "gpus": cmd_gpus}
