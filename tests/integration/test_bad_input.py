"""Bad input and a hostile environment, command by command: every `train` subcommand given
missing, unknown and malformed arguments, and unknown names, answers with one line and exit
code 2; a settings folder this user cannot write, or a damaged file, is one clear line too."""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import TRAIN, train, write_recipe

from trainsh.cli import build_parser
from trainsh.settings import paths


def leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every subcommand that takes no further subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, prefix + (name,))


LEAVES = dict(leaves(build_parser()))


def one_line(p: subprocess.CompletedProcess, code: int = 2) -> str:
    assert p.returncode == code, (p.args, p.returncode, p.stdout, p.stderr)
    for stream in (p.stdout, p.stderr):
        assert "Traceback" not in stream and "Error:" not in stream, (p.args, stream)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("train: "), (p.args, p.stderr)
    return lines[0]


def run_all(cases: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: train(*args, input=""), cases))


# ---- help ----------------------------------------------------------------------------------

def test_every_option_and_argument_says_what_it_does():
    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"train {' '.join(words)} {choice.dest}: no help"
                for name, sub in action.choices.items():
                    walk(sub, words + [name])
                continue
            what = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"train {' '.join(words)} {what}: no help"

    walk(build_parser(), [])


# ---- missing, unknown, malformed -----------------------------------------------------------

# Malformed arguments of every subcommand (a new subcommand must add its own).
MALFORMED = {
    ("recipe", "run"): [("recipe", "run", "{ok}", "--var", "NOEQUALS"),
                        ("recipe", "run", "{ok}", "--host", "gpu"),
                        ("recipe", "run", "{ok}", "--host", "gpu=user@:22"),
                        ("recipe", "run", "{ok}", "--autostop", "soon")],
    ("recipe", "check"): [("recipe", "check", "/")],
    ("recipe", "list"): [("recipe", "list", "extra")],
    ("recipe", "show"): [("recipe", "show", "")],
    ("recipe", "new"): [("recipe", "new", "a/b"), ("recipe", "new", ".hidden")],
    ("recipe", "edit"): [("recipe", "edit", "")],
    ("recipe", "logs"): [("recipe", "logs", "a b")],
    ("recipe", "status"): [("recipe", "status", "--all=yes")],
    ("recipe", "jobs"): [("recipe", "jobs", "20")],
    ("recipe", "resume"): [("recipe", "resume", "../x")],
    ("recipe", "attach"): [("recipe", "attach", "a b"), ("recipe", "attach", "--detach", "../x")],
    ("completion",): [("completion", "tcsh"), ("completion", "")],
    ("exec",): [("exec", " "), ("exec", "@local > true", "--var", "X")],
    ("transfer",): [("transfer", "@nohost", "./x"), ("transfer", "./x", "@:/y")],
    ("host", "list"): [("host", "list", "extra")],
    ("host", "add"): [("host", "add", "1bad", "u@h"), ("host", "add", "h1", "user@:22"),
                      ("host", "add", "h1", "u@h", "-p", "70000"), ("host", "add", "h1", "@h")],
    ("host", "show"): [("host", "show", "bad name!")],
    ("host", "ssh"): [("host", "ssh", "")],
    ("host", "test"): [("host", "test", "-")],
    ("host", "remove"): [("host", "remove", "")],
    ("host", "browse"): [("host", "browse", "", "/")],
    ("storage", "list"): [("storage", "list", "extra")],
    ("storage", "add"): [("storage", "add", "s", "zz:b"), ("storage", "add", "s", "s3:"),
                         ("storage", "add", "s", "s3:b", "--endpoint", "not a url"),
                         ("storage", "add", "9s", "s3:b")],
    ("storage", "show"): [("storage", "show", "s3:")],
    ("storage", "test"): [("storage", "test", "zz:b")],
    ("storage", "remove"): [("storage", "remove", "")],
    ("secrets", "list"): [("secrets", "list", "extra")],
    ("secrets", "set"): [("secrets", "set", "1BAD"), ("secrets", "set", "bad-name")],
    ("secrets", "get"): [("secrets", "get", "bad name")],
    ("secrets", "delete"): [("secrets", "delete", "$X")],
    ("config", "show"): [("config", "show", "extra")],
    ("config", "get"): [("config", "get", "defaults")],
    ("config", "set"): [("config", "set", "defaults.command_timeout", "5x"),
                        ("config", "set", "ui.currency")],
    ("config", "unset"): [("config", "unset", "")],
    ("config", "reset"): [("config", "reset")],  # no terminal and no --yes
    ("colab", "connect"): [("colab", "connect", "c1", "--address", "bad host!"),
                           ("colab", "connect", "c1", "--address", "h:99999")],
    ("colab", "list"): [("colab", "list", "extra")],
    ("colab", "ssh"): [("colab", "ssh", "bad name!")],
    ("colab", "run"): [("colab", "run")],
    ("pricing", "rates"): [("pricing", "rates", "extra")],
    ("pricing", "currency"): [("pricing", "currency", "--set", "ZZZ")],
    ("pricing", "convert"): [("pricing", "convert", "ten", "USD", "CNY"),
                             ("pricing", "convert", "10", "USD", "ZZZ")],
    ("pricing", "colab"): [("pricing", "colab", "extra")],
    ("pricing", "vast"): [("pricing", "vast", "extra")],
    ("pricing", "runpod"): [("pricing", "runpod", "extra")],
    ("vast", "list"): [("vast", "list", "extra")],
    ("vast", "show"): [("vast", "show", "abc")],
    ("vast", "ssh"): [("vast", "ssh", "x")],
    ("vast", "start"): [("vast", "start", "-1")],
    ("vast", "stop"): [("vast", "stop", "1.5")],
    ("vast", "reboot"): [("vast", "reboot", "")],
    ("vast", "destroy"): [("vast", "destroy", "abc", "--yes")],
    ("vast", "search"): [("vast", "search", "--num-gpus", "two"), ("vast", "search", "--limit", "0")],
    ("vast", "keys"): [("vast", "keys", "extra")],
    ("vast", "attach-key"): [("vast", "attach-key", "/nonexistent.pub")],
    ("vast", "create"): [("vast", "create", "1", "--disk", "-5")],
    ("vast", "bid"): [("vast", "bid", "1", "-1"), ("vast", "bid", "1", "nan"), ("vast", "bid", "x", "0.3")],
    ("vast", "prune"): [("vast", "prune", "extra")],
    ("runpod", "list"): [("runpod", "list", "extra")],
    ("runpod", "show"): [("runpod", "show", "bad id!")],
    ("runpod", "ssh"): [("runpod", "ssh", "")],
    ("runpod", "start"): [("runpod", "start", "!")],
    ("runpod", "stop"): [("runpod", "stop", "")],
    ("runpod", "destroy"): [("runpod", "destroy", "", "--yes")],
    ("runpod", "gpus"): [("runpod", "gpus", "--count", "0")],
    ("runpod", "reboot"): [("runpod", "reboot", "bad/id")],
    ("runpod", "search"): [("runpod", "search", "--num-gpus", "0")],
    ("runpod", "keys"): [("runpod", "keys", "extra")],
    ("runpod", "attach-key"): [("runpod", "attach-key", "/nonexistent.pub")],
    ("runpod", "create"): [("runpod", "create", "L4", "--disk", "0")],
    ("runpod", "prune"): [("runpod", "prune", "--yes", "extra")],
    ("pick",): [("pick", "--gpu", "RTX_4090", "--num-gpus", "0"), ("pick", "--clouds", "vast,aws"),
                ("pick", "--max-dph", "inf")],
    ("slurm", "info"): [("slurm", "info", "bad host!")],
    ("slurm", "queue"): [("slurm", "queue", "root@")],
    ("slurm", "cancel"): [("slurm", "cancel", "local", "abc"), ("slurm", "cancel", "h -p 0", "1")],
}

# A name nobody defined, for every subcommand that takes one.
UNKNOWN = {
    ("recipe", "run"): ("recipe", "run", "nope"),
    ("recipe", "check"): ("recipe", "check", "nope"),
    ("recipe", "show"): ("recipe", "show", "nope"),
    ("recipe", "edit"): ("recipe", "edit", "nope"),
    ("recipe", "logs"): ("recipe", "logs", "nope"),
    ("recipe", "resume"): ("recipe", "resume", "nope"),
    ("recipe", "attach"): ("recipe", "attach", "nope"),
    ("transfer",): ("transfer", "@nope:/x", "./y"),
    ("host", "show"): ("host", "show", "nope"),
    ("host", "ssh"): ("host", "ssh", "nope"),
    ("host", "test"): ("host", "test", "nope"),
    ("host", "remove"): ("host", "remove", "nope"),
    ("host", "browse"): ("host", "browse", "nope"),
    ("storage", "show"): ("storage", "show", "nope"),
    ("storage", "test"): ("storage", "test", "nope"),
    ("storage", "remove"): ("storage", "remove", "nope"),
    ("secrets", "get"): ("secrets", "get", "NOPE"),
    ("secrets", "delete"): ("secrets", "delete", "NOPE"),
    ("config", "get"): ("config", "get", "nope.key"),
    ("config", "set"): ("config", "set", "nope.key", "1"),
    ("config", "unset"): ("config", "unset", "nope.key"),
    ("colab", "ssh"): ("colab", "ssh", "nope"),
    ("pricing", "convert"): ("pricing", "convert", "10", "nope", "USD"),
}


def test_the_tables_cover_every_subcommand():
    assert sorted(MALFORMED) == sorted(LEAVES)
    takes_a_name = {words for words, p in LEAVES.items()
                    if any(not a.option_strings and a.dest in ("recipe", "job", "name", "key", "src")
                           for a in p._actions)}
    takes_a_name -= {("recipe", "new"), ("host", "add"), ("storage", "add"), ("secrets", "set"),
                     ("colab", "connect")}
    assert sorted(UNKNOWN) == sorted(takes_a_name)


def test_every_subcommand_with_missing_arguments_is_one_line(tmp_path):
    cases = []
    for words, p in LEAVES.items():
        required = [a for a in p._actions if not a.option_strings and a.nargs in (None, "+")]
        if required:
            cases.append(words)
    assert len(cases) >= 20
    for p in run_all(cases):
        line = one_line(p)
        assert "required" in line and "--help" in line, line


def test_every_subcommand_with_an_unknown_option_is_one_line():
    cases = []
    for words, p in LEAVES.items():
        if any(a.nargs == argparse.REMAINDER for a in p._actions):
            continue  # (`vast ssh ID CMD...`, `colab run CMD...`: what follows is the command's)
        required = [a for a in p._actions if not a.option_strings and a.nargs in (None, "+")]
        cases.append(words + ("1",) * len(required) + ("--frobnicate",))  # ("1": a Vast id too)
    for p in run_all(cases):
        line = one_line(p)
        assert "--frobnicate" in line, line


def test_every_subcommand_with_malformed_arguments_is_one_line(tmp_path):
    ok = write_recipe(tmp_path / "ok.recipe", "host gpu = placeholder\ntmux.open @gpu as w\n")
    cases = [tuple(a.replace("{ok}", str(ok)) for a in case) for group in MALFORMED.values()
             for case in group]
    for p in run_all(cases):
        one_line(p)
    # Nothing was stored by any of them.
    for name in ("hosts.toml", "storages.toml", "config.toml", "secrets.enc", "recipes"):
        assert not (paths.home() / name).exists(), name


def test_an_unknown_name_is_bad_input_everywhere(tmp_path):
    for p in run_all(list(UNKNOWN.values())):
        line = one_line(p)
        assert "nope" in line.lower(), line


def test_wrong_acceptances_are_refused(tmp_path):
    line = one_line(train("host", "add", "h1", "user@:22"))
    assert "bad host name ':22'" in line
    assert not paths.hosts_file().exists()
    line = one_line(train("storage", "add", "s", "s3:b", "--endpoint", "not a url"))
    assert "bad endpoint 'not a url'" in line
    assert not paths.storages_file().exists()

    # A hosts.toml `options` that is a string, not a list, is named, not split into letters.
    paths.ensure(paths.home())
    paths.hosts_file().write_text('[gpu]\nhost = "127.0.0.1"\noptions = "Compression=yes"\n')
    for args in (("host", "show", "gpu"), ("host", "test", "gpu"), ("transfer", "@gpu:/x", "./y")):
        line = one_line(train(*args))
        assert str(paths.hosts_file()) in line and "[gpu]" in line and "'options'" in line, line
    r = write_recipe(tmp_path / "r.recipe", "host h = gpu\ntmux.open @h as w\n@w > true\n")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode in (1, 2) and "'options' must be a list" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert "(broken: 'options' must be a list" in train("host", "list").stdout


# ---- numbers and cloud ids are ASCII, and one line -----------------------------------------

# Other scripts' digits pass str.isdigit(), and int()/float() take them (`int("١٢")` is 12): no
# cloud, port or job id knows them. Nor an id with a space about it.
NOT_IDS = ("²", "١٢٣", "12 ", " 12", "1\n2", "")
ID_VERBS = ("show", "ssh", "start", "stop", "reboot", "destroy")


def id_cases(cloud: str, pub: Path) -> list[tuple[str, ...]]:
    cases = [(cloud, verb, bad) for verb in ID_VERBS for bad in NOT_IDS]
    cases += [(cloud, "destroy", bad, "--yes") for bad in NOT_IDS]
    cases += [(cloud, "start", bad, "--wait") for bad in NOT_IDS[:3]]
    cases += [(cloud, "attach-key", str(pub), "--instance", bad) for bad in NOT_IDS]
    return cases


NUMBER_CASES = [
    *[(cloud, "search", flag, bad) for cloud in ("vast", "runpod")
      for flag in ("--num-gpus", "--min-gpu-ram", "--max-dph", "--limit") for bad in ("²", "١٢")],
    *[(cloud, "search", "--max-dph", bad) for cloud in ("vast", "runpod") for bad in ("nan", "inf", "0")],
    ("vast", "search", "--min-gpu-ram", "-1"), ("vast", "search", "--limit", "99999999999999999999"),
    ("runpod", "search", "--min-gpu-ram", "-1"), ("runpod", "search", "--limit", "99999999999999999999"),
    ("runpod", "gpus", "--count", "²"),
    *[(cloud, "create", offer, "--disk", bad) for cloud, offer in (("vast", "1001"), ("runpod", "L4@SECURE"))
      for bad in ("nan", "1e400", "-inf", "١٠")],
    ("runpod", "create", "L4@SECURE", "--num-gpus", "١"),
    ("pricing", "convert", "nan", "USD", "EUR"), ("pricing", "convert", "١٢", "USD", "EUR"),
    ("pricing", "convert", "inf", "USD", "EUR"), ("pricing", "currency", "--set", ""),
    ("pricing", "currency", "--set", " "),
    ("slurm", "cancel", "local", "١٢"), ("slurm", "cancel", "local", "²"),
    ("host", "add", "h1", "u@h", "-p", "²"), ("host", "add", "h1", "u@h", "-p", "١٢"),
    ("colab", "connect", "c1", "--address", "h:²"),
    *[("exec", "--host", f"gpu={spec}", "@gpu > true") for spec in ("vast:²", "vast:١٢٣", "vast:1 2",
                                                                   "runpod:²", "runpod:a/b")],
    ("exec", "--host", "gpu=user@h -p ²", "@gpu > true"), ("exec", "@local > true", "--autostop", "١m"),
]


def test_unicode_digits_and_spaced_ids_are_one_line_and_rent_nothing(vast, runpod_fake, tmp_path):
    pub = tmp_path / "k.pub"
    pub.write_text(runpod_fake.public_key + "\n")
    cases = id_cases("vast", pub) + id_cases("runpod", pub)
    cases += [("vast", "create", bad) for bad in (*NOT_IDS, "1001 ", "-1", "1.5", "99999999999999999999")]
    cases += NUMBER_CASES
    for p in run_all(cases):
        line = one_line(p)
        if p.args[3] in ("vast", "runpod") and p.args[4] in ("show", "stop", "ssh"):
            assert "is not a" in line and " id " in line, line
    assert vast.state()["rents"] == 0
    assert runpod_fake.state()["machines"] == {}
    assert vast.live() == {}
    # A recipe's cloud ids and ports: each mistake named at its place (one diagnostic each).
    recipe = write_recipe(tmp_path / "r.recipe", "host gpu = vast:١٢\ntmux.open @gpu as w\nwait @w port=٨٠\n")
    for args in (("recipe", "check", str(recipe)), ("recipe", "run", str(recipe), "--no-visual")):
        p = train(*args)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p
        assert f"{recipe}:1:17: '١٢' is not an instance id" in p.stderr, p.stderr
        assert f"{recipe}:3:14: bad port '٨٠'" in p.stderr, p.stderr
    assert vast.state()["rents"] == 0
    # the same ids, well formed, are asked of the cloud: an unknown one is exit 2 too
    line = one_line(train("vast", "show", "12"))
    assert "12" in line, line


def test_a_group_without_its_subcommand_names_them(tmp_path):
    groups = list(dict.fromkeys(words[0] for words in LEAVES if len(words) > 1))
    assert {"vast", "runpod", "pricing", "recipe"} <= set(groups)
    for g, p in zip(groups, run_all([(g,) for g in groups])):
        line = one_line(p)
        subs = [w[1] for w in LEAVES if w[0] == g and len(w) > 1]
        assert f"{g} needs a subcommand: {', '.join(subs)}" in line and "--help" in line, line
    for g in ("vast", "runpod"):
        p = train(g, "--help")
        assert p.returncode == 0 and "attach-key" in p.stdout and not p.stderr, p


def test_attach_key_of_what_is_not_a_key_is_one_line(vast, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_BASE_URL", "http://127.0.0.1:9")  # (never asked)
    monkeypatch.setenv("RUNPOD_API_KEY", "unused")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + b"A" * 70000)
    for path, says in (("/etc/passwd", "is not an ssh key"), ("/dev/zero", "not a regular file"),
                       (str(fifo), "not a regular file"), (str(big), "more than 64 KiB"),
                       (str(tmp_path), "not a regular file")):
        for cloud in ("vast", "runpod"):
            line = one_line(train(cloud, "attach-key", path, timeout=20))
            assert says in line, line
    keys = vast.api("GET", "ssh/")
    assert len(keys) == 1, keys  # (the fixture's own)


# ---- a damaged file, a folder this user cannot write ---------------------------------------

@pytest.mark.parametrize("group, file", [("host", "hosts.toml"), ("storage", "storages.toml")])
def test_remove_on_a_damaged_file_names_the_line_and_changes_nothing(group, file):
    path = paths.home() / file
    paths.ensure(path.parent)
    text = '[a]\nkind = "local"\nbucket = "/tmp"\nhost = "x"\n\n[b]\nbroken = \n'
    path.write_text(text)
    line = one_line(train(group, "remove", "a"))
    assert f"{path}:7:10: " in line and "nothing changed" in line, line
    assert path.read_text() == text
    for args in ((group, "add", "c", "local:/tmp" if group == "storage" else "u@h"), (group, "list")):
        line = one_line(train(*args))
        assert f"{path}:7:10: " in line, line
        assert path.read_text() == text


@pytest.fixture(params=["other-user", "read-only-mount"])
def read_only_home(request, monkeypatch):
    """A settings folder (with a job, a config, a host and a storage) that train can read but
    not write. Root ignores file modes, so train runs either as the unprivileged test user on
    a folder root owns, or as root on a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user or to mount")
    base = Path(tempfile.mkdtemp(prefix="trainsh-ro", dir="/tmp"))
    home = base / "trainsh"
    monkeypatch.setenv("TRAINSH_HOME", str(home))
    assert train("exec", "@local > echo from-the-job", "--no-visual").returncode == 0
    assert train("config", "set", "ui.currency", "EUR").returncode == 0
    assert train("host", "add", "h1", "root@127.0.0.1").returncode == 0
    assert train("storage", "add", "s1", "local:/tmp").returncode == 0
    subprocess.run(["chmod", "-R", "u=rwX,go=rX", str(base)], check=True)
    monkeypatch.setenv("HOME", str(base))

    if request.param == "other-user":
        import pwd

        from sshd import USER

        request.getfixturevalue("ssh_servers")  # makes the test user
        user = pwd.getpwnam(USER)
        prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        probe = subprocess.run([*prefix, sys.executable, "-c", "import trainsh"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"{USER} cannot run {sys.executable}: {probe.stderr.decode()[-200:]}")
    else:
        mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        prefix = ["unshare", "-m", "sh", "-c", mount, str(home)]
        probe = subprocess.run([*prefix, "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot mount read-only here: {probe.stderr.decode()[-200:]}")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *TRAIN, *args], capture_output=True, text=True, timeout=60,
                              cwd=base, stdin=subprocess.DEVNULL)

    before = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    yield run
    after = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert after == before, "a command changed the read-only folder"
    shutil.rmtree(base)


def test_read_only_commands_work_on_a_read_only_settings_folder(read_only_home):
    for args, shows in ((("recipe", "jobs"), "<exec>"), (("recipe", "logs", "--last"), "from-the-job"),
                        (("recipe", "logs"), "job.log"), (("recipe", "status", "--all"), "done"),
                        (("config", "show"), "ui.currency = EUR"), (("host", "list"), "h1"),
                        (("storage", "list"), "s1"), (("config", "get", "ui.currency"), "EUR"),
                        (("host", "show", "h1"), "127.0.0.1"), (("recipe", "list"), "no recipes")):
        p = read_only_home(*args)
        assert p.returncode == 0, (args, p.stderr)
        assert shows in p.stdout, (args, p.stdout)


def test_writing_to_a_read_only_settings_folder_is_one_clear_line(read_only_home):
    for args in (("host", "add", "h2", "u@h"), ("host", "remove", "h1"), ("config", "set", "ui.currency", "USD"),
                 ("config", "unset", "ui.currency"), ("config", "reset", "--yes"), ("recipe", "new", "x"),
                 ("storage", "add", "s2", "local:/tmp"), ("storage", "remove", "s1"),
                 ("exec", "@local > true", "--no-visual")):
        line = one_line(read_only_home(*args), 1)
        assert str(paths.home()) in line, line
        assert any(w in line for w in ("permission denied", "read-only file system", "cannot be written")), line


# ---- secrets passphrase on a terminal ------------------------------------------------------

def on_terminal(args: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run train on a pseudo-terminal, typing each answer after the next prompt ending in ': '."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        try:
            os.execv(sys.executable, [*TRAIN, *args])
        finally:
            os._exit(127)
    out = b""
    pending = list(answers)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if pending and out.rstrip(b" ").endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                out += b"\n"
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


@pytest.fixture
def file_store(monkeypatch):
    monkeypatch.delenv("TRAINSH_PASSPHRASE", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    assert train("config", "set", "secrets.store", "file").returncode == 0


def test_a_new_secrets_file_asks_the_passphrase_twice_and_refuses_a_mismatch(file_store):
    code, out = on_terminal(["secrets", "set", "HF_TOKEN"], ["tok-1234567", "first-pass", "other-pass"])
    assert code == 2, out
    assert "again" in out and "the two passphrases differ" in out, out
    assert not (paths.home() / "secrets.enc").exists()

    code, out = on_terminal(["secrets", "set", "HF_TOKEN"], ["tok-1234567", "first-pass", "first-pass"])
    assert code == 0, out
    assert (paths.home() / "secrets.enc").exists()
    # An existing file asks once: the passphrase only opens it.
    code, out = on_terminal(["secrets", "get", "HF_TOKEN"], ["first-pass"])
    assert code == 0 and "tok-1234567" in out and "again" not in out, out
