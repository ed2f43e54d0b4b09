"""What `train vast ...` adds to the verbs every cloud has (cli/cloud.py): `bid`, the bid of an
interruptible instance."""

from __future__ import annotations

from trainsh.cli.cloud import show


def cmd_bid(cloud, args) -> int:
    cloud.change_bid(args.id, args.price)
    show(f"vast {args.id}: bid set to ${args.price:g}/h (train vast show {args.id})")
    return 0
