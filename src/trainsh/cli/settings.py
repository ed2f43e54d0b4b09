"""Handlers of `train secrets` and `train config`."""

# Imports inside functions load a command's modules only when it runs: start-up stays fast.

from __future__ import annotations

import json
import sys

from trainsh.cli.common import UserError


def dispatch(args) -> int:
    from trainsh.settings.config import ConfigError
    from trainsh.settings.secrets import SecretError

    try:
        return HANDLERS[(args.group, args.cmd)](args)
    except (SecretError, ConfigError) as e:
        raise UserError(str(e)) from None


# ---- secrets -------------------------------------------------------------------------------

def secrets_list(args) -> int:
    from trainsh.settings import secrets

    st = secrets.store()
    print(f"store: {st.describe()}")
    names = dict.fromkeys(list(secrets.KNOWN) + st.names())
    for name in names:
        print(f"  {name:<24} {secrets.source(name):<12} {secrets.KNOWN.get(name, '')}")
    print("values come from the environment first, then the store; 'train secrets set KEY' stores one")
    return 0


def secrets_set(args) -> int:
    from trainsh.settings import secrets

    name = secrets.check_name(args.key)
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"{name}: ")
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value:
        raise UserError(f"empty value: {name} not stored")
    st = secrets.store()
    st.set(name, value)
    print(f"{name} stored in the {st.describe()}")
    from trainsh import masking

    short = masking.too_short(name, value)
    if short:
        print(f"train: warning: {short}", file=sys.stderr)
    return 0


def secrets_get(args) -> int:
    from trainsh.settings import secrets

    name = secrets.check_name(args.key)
    value = secrets.lookup(name)
    if value is None:
        raise UserError(f"{name} is not set (train secrets set {name})")
    print(value)
    return 0


def secrets_delete(args) -> int:
    from trainsh.settings import secrets

    name = secrets.check_name(args.key)
    if not secrets.store().delete(name):
        raise UserError(f"{name} is not in the store (train secrets list shows them)")
    print(f"{name} deleted")
    return 0


# ---- config --------------------------------------------------------------------------------

def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def config_show(args) -> int:
    from trainsh.settings import config, paths

    print(f"# {paths.config_file()}")
    for name, value, where in config.effective():
        print(f"{name} = {_show(value)}" + ("   (default)" if where == "default" else ""))
    return 0


def config_get(args) -> int:
    from trainsh.settings import config

    key, sub = config.resolve_key(args.key)
    value = config.get(key.name)
    if sub is not None:
        if sub not in value:
            raise UserError(f"{args.key} is not set")
        value = value[sub]
    print(_show(value))
    return 0


def config_set(args) -> int:
    from trainsh.settings import config

    value = config.set_value(args.key, args.value)
    print(f"{args.key} = {_show(value)}")
    return 0


def config_unset(args) -> int:
    from trainsh.settings import config

    if not config.unset_value(args.key):
        print(f"{args.key} was not set in config.toml")
    else:
        print(f"{args.key} removed (back to its default)")
    return 0


def config_reset(args) -> int:
    from trainsh.settings import config, paths

    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError("config reset asks first: run it on a terminal, or add --yes")
        answer = input(f"Reset {paths.config_file()} to the defaults? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing changed")
            return 1
    backup = config.reset()
    print("config reset to the defaults" + (f"; the old one is {backup}" if backup else ""))
    return 0


HANDLERS = {
    ("secrets", "list"): secrets_list, ("secrets", "set"): secrets_set,
    ("secrets", "get"): secrets_get, ("secrets", "delete"): secrets_delete,
    ("config", "show"): config_show, ("config", "get"): config_get, ("config", "set"): config_set,
    ("config", "unset"): config_unset, ("config", "reset"): config_reset,
}
