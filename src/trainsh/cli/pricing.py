"""Handlers of `train pricing`: rates, display currency, conversion, Colab and cloud costs."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import json
import sys

from trainsh.cli.common import UserError


def dispatch(args) -> int:
    from trainsh.cloud.pricing import PricingError
    from trainsh.cloud.provider import ProviderError
    from trainsh.settings.config import ConfigError

    try:
        return HANDLERS[args.cmd](args)
    except (PricingError, ConfigError) as e:
        raise UserError(str(e)) from None
    except ProviderError as e:
        raise UserError(str(e), 1) from None


def rates(args) -> int:
    from trainsh.cloud import pricing

    table = pricing.rates(refresh=args.refresh)
    failed = args.refresh and table.source != "fetched"
    if failed:  # the table below is still worth showing; the exit code says the refresh failed
        shown = {"cache": "the cached rates", "built-in": "the built-in table"}.get(table.source, table.source)
        print(f"train: the refresh failed ({table.note or 'no answer'}); showing {shown} of "
              f"{table.date} instead", file=sys.stderr)
    if args.json:
        print(json.dumps({"base": table.base, "date": table.date, "source": table.source,
                          "rates": table.rates}, indent=1, sort_keys=True))
        return 1 if failed else 0
    print(f"1 USD in each currency ({table.label()}):")
    mine = pricing.currency()
    for code in sorted(table.rates):
        mark = "  <- display currency" if code == mine else ""
        print(f"  {code}  {table.rates[code]:>12,.4f}{mark}")
    return 1 if failed else 0


def currency(args) -> int:
    from trainsh.cloud import pricing
    from trainsh.settings import config

    if args.set is not None:  # (`--set ''`, an unset $CODE, is a mistake, not a question)
        code = args.set.strip().upper()
        if not code:
            raise UserError("--set needs a currency code such as CNY, EUR, JPY (train pricing rates lists them)")
        table = pricing.rates(offline=True)  # a known code needs no request
        code = pricing.check_currency(code, table if code in table.rates else pricing.rates())
        config.set_value("ui.currency", code)
        print(f"display currency: {code} (costs are shown in {code} with USD beside them)")
        return 0
    code = pricing.currency()
    table = pricing.rates()
    line = f"display currency: {code}"
    if code != "USD":
        line += f" (1 USD = {table.rate(code):,.4f} {code}; {table.label()})"
    print(line)
    return 0


def convert(args) -> int:
    from trainsh.cloud import pricing

    from argparse import ArgumentTypeError

    from trainsh.numbers import MONEY

    try:
        amount = MONEY(args.amount)
    except ArgumentTypeError as e:
        raise UserError(f"not an amount: {e} (e.g. 10 or 12.5)") from None
    table = pricing.rates()
    src, dst = args.src.upper(), args.dst.upper()
    value = table.convert(amount, src, dst)
    print(f"{amount:,.2f} {src} = {value:,.2f} {dst}  ({table.label()})")
    return 0


def colab(args) -> int:
    from trainsh.cloud import pricing
    from trainsh.settings import config

    code = pricing.currency()
    table = pricing.rates()
    plans = pricing.colab_plans()
    units = pricing.colab_units()
    print(f"Colab plans (table of {config.get('pricing.colab_date')}; edit pricing.colab_plans):")
    for p in plans:
        period = " a month" if p.monthly else ""
        print(f"  {p.name:<16} {pricing.money(p.usd, code, table)}{period} for {p.units:g} units"
              f"  = {pricing.money(p.usd_per_unit, code, table, 4)} a unit")
    print("\nCost per GPU hour (compute units an hour x price of a unit; edit pricing.colab_units):")
    head = "  " + f"{'GPU':<8} {'units/h':>8}  " + "  ".join(f"{p.name:>22}" for p in plans)
    print(head)
    for gpu, per_hour in units.items():
        cells = "  ".join(f"{pricing.money(per_hour * p.usd_per_unit, code, table):>22}" for p in plans)
        print(f"  {gpu:<8} {per_hour:>8.2f}  {cells}")
    if code != "USD":
        print(f"\n{table.label()}")
    return 0


def cloud_costs(args) -> int:
    """`train pricing vast|runpod`: the account's machines with $/h, time running and cost so
    far, totals, and the cheapest offer of each GPU kind for comparison."""
    from trainsh.cloud import pricing
    from trainsh.cloud.provider import RUNNING, STOPPED, provider
    from trainsh.recipe.model import format_seconds

    cloud = provider(args.cmd)
    code = pricing.currency()
    table = pricing.rates()
    instances = cloud.list()
    now = __import__("time").time()
    print(f"{cloud.name} instances:")
    if not instances:
        print("  (none)")
    run_rate = run_cost = disk_rate = 0.0
    stopped = 0
    for i in instances:
        up = i.uptime(now)
        disk = " (disk)" if i.status == STOPPED else ""
        print(f"  {i.id:<12} {i.status:<9} {i.num_gpus}x {i.gpu_name or '?':<18} "
              f"{pricing.money(i.billing_per_hour(), code, table)}/h{disk}  up {format_seconds(int(up)):>8}  "
              f"so far {pricing.money(i.cost_so_far(now), code, table)}")
        if i.status == RUNNING:
            run_rate += i.price_per_hour
            run_cost += i.cost_so_far(now)
        elif i.status == STOPPED:
            stopped += 1
            disk_rate += i.storage_per_hour
    print(f"running: {pricing.money(run_rate, code, table)}/h, {pricing.money(run_cost, code, table)} so far; "
          f"stopped: {stopped}, their disks bill {pricing.money(disk_rate, code, table, 3)}/h "
          f"(train {cloud.name} prune destroys those trainsh rented)")
    try:
        offers = cloud.search(limit=200)
    except Exception as e:  # the comparison is extra: say why it is missing, keep the rest
        print(f"market: not available ({e})")
        return 0
    cheapest: dict[str, object] = {}
    for o in offers:
        per_gpu = o.price_per_hour / max(o.num_gpus, 1)
        if o.gpu_name not in cheapest or per_gpu < cheapest[o.gpu_name][0]:
            cheapest[o.gpu_name] = (per_gpu, o)
    if cheapest:
        print("cheapest offer of each GPU kind (per GPU hour):")
        for name, (per_gpu, o) in sorted(cheapest.items(), key=lambda kv: kv[1][0]):
            print(f"  {name:<22} {pricing.money(per_gpu, code, table)}/h  (offer {o.id})")
    return 0


HANDLERS = {"rates": rates, "currency": currency, "convert": convert, "colab": colab,
            "vast": cloud_costs, "runpod": cloud_costs}
