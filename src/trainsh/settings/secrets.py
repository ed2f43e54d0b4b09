"""Secrets: API keys and tokens, looked up by name.

Lookup order: an environment variable of the same name, then the store. Stores:
- `keyring`: the OS keyring, when a real backend works (not a plaintext or null one);
- `file`: `secrets.enc` in the settings folder, mode 0600, encrypted with Fernet under a key
  derived (PBKDF2-SHA256) from a passphrase: TRAINSH_PASSPHRASE, or asked once per run on a
  terminal.
The config key `secrets.store` chooses (`auto` = keyring when it works, else file). Values
are registered for masking the moment they are read.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from trainsh import masking
from trainsh.settings import config, paths

KNOWN = {
    "VAST_API_KEY": "Vast.ai API key",
    "RUNPOD_API_KEY": "RunPod API key",
    "HF_TOKEN": "HuggingFace token",
    "R2_ACCESS_KEY": "Cloudflare R2 access key id",
    "R2_SECRET_KEY": "Cloudflare R2 secret key",
    "B2_KEY_ID": "Backblaze B2 key id",
    "B2_APPLICATION_KEY": "Backblaze B2 application key",
    "AWS_ACCESS_KEY_ID": "Amazon S3 access key id",
    "AWS_SECRET_ACCESS_KEY": "Amazon S3 secret key",
    "GITHUB_TOKEN": "GitHub token",
    "OPENAI_API_KEY": "OpenAI API key",
    "ANTHROPIC_API_KEY": "Anthropic API key",
}
SERVICE = "trainsh"
PBKDF2_ROUNDS = 390_000


class SecretError(Exception):
    """A store that cannot be used, a wrong passphrase, a bad name."""


def check_name(name: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise SecretError(f"bad secret name '{name}' (letters, digits and '_', like HF_TOKEN)")
    return name


# ---- stores -------------------------------------------------------------------------------

class FileStore:
    """secrets.enc: {"salt": b64, "token": Fernet token of a JSON object name -> value}."""

    name = "file"

    def __init__(self, path: Path | None = None):
        self.path = path or paths.home() / "secrets.enc"
        self._data: dict[str, str] | None = None
        self._fernet = None
        self._salt = b""

    def describe(self) -> str:
        return f"encrypted file {self.path}"

    def _key(self, salt: bytes, new: bool = False):
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=PBKDF2_ROUNDS)
        return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase(new=new).encode())))

    def _load(self) -> dict[str, str]:
        if self._data is not None:
            return self._data
        if not self.path.exists():
            self._data = {}
            return self._data
        from cryptography.fernet import InvalidToken

        try:
            blob = json.loads(self.path.read_text())
            self._salt = base64.b64decode(blob["salt"])
            token = blob["token"].encode()
        except (ValueError, KeyError, TypeError):
            raise SecretError(f"{self.path} is damaged (not a trainsh secrets file)") from None
        self._fernet = self._key(self._salt)
        try:
            self._data = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise SecretError(f"wrong passphrase for {self.path} "
                              "(TRAINSH_PASSPHRASE, or the one typed at the prompt)") from None
        for v in self._data.values():
            masking.register(v)
        return self._data

    def _save(self) -> None:
        data = self._data or {}
        if self._fernet is None:  # a new file: a new salt
            self._salt = os.urandom(16)
            self._fernet = self._key(self._salt, new=True)
        blob = json.dumps({"salt": base64.b64encode(self._salt).decode(),
                           "token": self._fernet.encrypt(json.dumps(data).encode()).decode()})
        paths.ensure(self.path.parent)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(blob)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)  # never a half-written file

    def get(self, name: str) -> str | None:
        return self._load().get(name)

    def set(self, name: str, value: str) -> None:
        self._load()[name] = value
        self._save()

    def delete(self, name: str) -> bool:
        data = self._load()
        if name not in data:
            return False
        del data[name]
        self._save()
        return True

    def names(self) -> list[str]:
        if not self.path.exists():
            return []
        return sorted(self._load())


class KeyringStore:
    """The OS keyring. Keyrings cannot list their entries, so the names (never the values)
    are kept in secrets-index.json beside the config."""

    name = "keyring"

    def __init__(self):
        import keyring

        self.kr = keyring.get_keyring()
        self.index = paths.home() / "secrets-index.json"

    def describe(self) -> str:
        return f"OS keyring ({type(self.kr).__module__}.{type(self.kr).__name__})"

    def get(self, name: str) -> str | None:
        try:
            value = self.kr.get_password(SERVICE, name)
        except Exception as e:
            raise SecretError(f"keyring: {e}") from None
        if value:
            masking.register(value)
        return value or None

    def set(self, name: str, value: str) -> None:
        try:
            self.kr.set_password(SERVICE, name, value)
        except Exception as e:
            raise SecretError(f"keyring: {e}") from None
        self._index(add=name)

    def delete(self, name: str) -> bool:
        import keyring.errors

        try:
            self.kr.delete_password(SERVICE, name)
        except keyring.errors.PasswordDeleteError:
            return False
        except Exception as e:
            raise SecretError(f"keyring: {e}") from None
        finally:
            self._index(remove=name)
        return True

    def names(self) -> list[str]:
        try:
            return sorted(json.loads(self.index.read_text()))
        except (OSError, ValueError):
            return []

    def _index(self, add: str | None = None, remove: str | None = None) -> None:
        names = set(self.names())
        if add:
            names.add(add)
        if remove:
            names.discard(remove)
        paths.ensure(self.index.parent)
        self.index.write_text(json.dumps(sorted(names)))


def keyring_works() -> bool:
    """A real keyring backend is there (no plaintext, null or failing one)."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return False
    try:
        kr = keyring.get_keyring()
    except Exception:
        return False
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True  # chosen by the user on purpose
    if isinstance(kr, fail.Keyring) or type(kr).__module__.startswith(("keyrings.alt", "keyring.backends.null")):
        return False
    if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
        return False
    return getattr(kr, "priority", 0) >= 1


_store = None


def store():
    """The store in use, as config `secrets.store` says."""
    global _store
    if _store is not None:
        return _store
    choice = config.get("secrets.store")
    if choice == "keyring" or (choice == "auto" and keyring_works()):
        if choice == "keyring" and not keyring_works():
            raise SecretError("secrets.store is 'keyring' but no working keyring backend is "
                              "installed (train config set secrets.store file)")
        _store = KeyringStore()
    else:
        _store = FileStore()
    return _store


_passphrase: str | None = None


def passphrase(new: bool = False) -> str:
    """TRAINSH_PASSPHRASE, else asked on a terminal once per run; twice when it will create a
    new secrets file (`new`), since a typo there would lock every secret in it away."""
    global _passphrase
    if _passphrase:
        return _passphrase
    value = os.environ.get("TRAINSH_PASSPHRASE")
    if not value:
        if not sys.stdin.isatty():
            raise SecretError("the secrets file needs a passphrase: set TRAINSH_PASSPHRASE "
                              "(or run on a terminal to be asked)")
        import getpass

        value = getpass.getpass("new passphrase for the secrets file: " if new
                                else "trainsh secrets passphrase: ")
        if not value:
            raise SecretError("empty passphrase")
        if new and getpass.getpass("the same passphrase again: ") != value:
            raise SecretError("the two passphrases differ; nothing stored")
    _passphrase = value
    masking.register(value)
    return value


def will_ask(name: str) -> bool:
    """Would `lookup(name)` ask for the passphrase on the terminal? (A live view must give the
    screen back first.)"""
    if os.environ.get(name) or _passphrase or os.environ.get("TRAINSH_PASSPHRASE") \
            or not sys.stdin.isatty():
        return False
    st = store()
    return isinstance(st, FileStore) and st.path.exists()


def lookup(name: str) -> str | None:
    """The value of a secret: environment first, then the store. None when not set."""
    value = os.environ.get(name)
    if value:
        masking.register(value)
        return value
    value = store().get(name)
    return value or None


def source(name: str) -> str:
    """Where a secret's value would come from (never the value)."""
    if os.environ.get(name):
        return "environment"
    try:
        if name in store().names():
            return store().name
    except SecretError:
        return "store locked"
    return "not set"
