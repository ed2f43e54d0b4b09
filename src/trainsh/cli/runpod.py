"""What `train runpod ...` adds to the verbs every cloud has (cli/cloud.py): `gpus`, RunPod's
GPU types with their memory and prices."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import json

from trainsh.cli.common import UserError


def cmd_gpus(cloud, args) -> int:
    from trainsh.cli.cloud import table
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

    from trainsh.cloud.gpus import memory

    rows = [["SHORT", "GPU TYPE ID", "NAME", "GPU RAM", "SECURE $/H", "COMMUNITY $/H", "NOW $/H"]]
    for g in types:
        rows.append([short.get(g["id"], ""), g["id"], g.get("displayName") or "", memory(g.get("memoryInGb")),
                     money(g.get("securePrice")), money(g.get("communityPrice")),
                     money(g["price"]) if g["price"] is not None else "none free"])
    table(rows)
    print("prices per GPU-hour; NOW is the lowest to be had at this moment")
    return 0
