"""`train pick`: the offers a recipe's `pick @HOST` compares (cloud/market.py), cheapest per GPU
hour first, over every cloud with a key or those --clouds names. Nothing is rented.

Errors are one line: a cloud named without a key, or no cloud answering, is a failed request
(exit 1); bad flags are argparse's one line (exit 2).
"""

# Imports inside functions load the clouds' modules only when the command runs (start-up).

from __future__ import annotations

import sys

from trainsh.cli.common import UserError


def dispatch(args) -> int:
    import json

    from trainsh.cli.cloud import show, table
    from trainsh.cloud import market
    from trainsh.cloud.provider import ProviderError
    from trainsh.recipe.model import CLOUDS

    want = market.Want(gpu=args.gpu, num_gpus=args.num_gpus, min_gpu_ram=args.min_gpu_ram,
                       max_dph=args.max_dph, limit=args.limit)
    try:
        found = market.compare(args.clouds, CLOUDS, want)
    except ProviderError as e:
        raise UserError(str(e), 1) from None
    for note in found.notes:  # (stderr: --json's output stays one document)
        print(f"train: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps([market.row(o) for o in found.offers], indent=2))
        return 0
    if not found.offers:
        raise UserError(f"no offer on {', '.join(found.clouds)} matches {want.words()} "
                        "(loosen --gpu, --num-gpus, --min-gpu-ram or --max-dph)", 1)
    rows = [["CLOUD", "OFFER", "GPU", "GPU RAM", "$/H", "$/GPU/H", "LOCATION"]]
    for o in found.offers:
        rows.append([o.provider, o.id, f"{o.num_gpus}x {o.gpu_name}", f"{o.gpu_ram_gb:.1f} GB",
                     f"{o.price_per_hour:.3f}", f"{market.per_gpu(o):.3f}", o.location or "-"])
    table(rows)
    show("a recipe's 'pick @HOST' takes your own matching machine if one is free, else the first "
         "offer here that can be had")
    return 0
