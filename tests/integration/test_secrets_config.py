"""Secrets never leak, both stores round-trip, config edits keep the file's comments."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import tmux, train, write_recipe

from trainsh.settings import paths

SECRET = "tok-9f3c2a7e5d1b"


def every_file_under(folder: Path):
    for p in folder.rglob("*"):
        if p.is_file():
            yield p


def holds(path: Path, value: str) -> bool:
    return value.encode() in path.read_bytes()


@pytest.fixture
def passphrase(monkeypatch):
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "correct horse battery")
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)


def test_a_secret_printed_by_a_command_leaks_nowhere(tmp_path, passphrase):
    p = train("secrets", "set", "HF_TOKEN", input=SECRET + "\n")
    assert p.returncode == 0, p.stderr
    r = write_recipe(tmp_path / "leak.recipe", """
var AUTH = Bearer ${secret:HF_TOKEN}
tmux.open @local as w
@w > echo "the token is ${secret:HF_TOKEN}"; echo "header: $AUTH"; printenv | grep -c ^TRAINSH_SECRET_
@w > echo "twice: ${secret:HF_TOKEN} ${secret:HF_TOKEN}" &
wait @w idle timeout=30s
@w > echo still-here
@w > history -w
notify "done with ${secret:HF_TOKEN}"
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 0, p.stderr
    # the command really got the value: it printed it, masked on its way to the terminal
    assert "the token is ***" in p.stderr and "header: Bearer ***" in p.stderr
    assert SECRET not in p.stdout + p.stderr
    # nothing under the settings folder (journal, job log, step outputs, pane logs) holds it
    leaked = [str(f) for f in every_file_under(paths.home()) if holds(f, SECRET)]
    assert leaked == []
    # nor tmux's scrollback of any session
    for name in tmux("ls", "-F", "#{session_name}").stdout.split():
        history = tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
        assert "the token is ***" in history
        assert SECRET not in history
    # nor the shell's history file
    hist = Path(os.environ["HOME"]) / ".bash_history"
    assert hist.exists() and "still-here" in hist.read_text()
    assert SECRET not in hist.read_text()
    # the value did not stay in the session's environment
    job_out = sorted((paths.jobs_dir()).glob("*/output/0001.log"))[0].read_text()
    assert job_out.splitlines()[-1] == "1"  # one TRAINSH_SECRET_ variable while it ran
    assert not any(paths.jobs_dir().glob("*/run/*/s*.env"))


def test_exec_on_a_host_gets_the_secret_in_its_environment_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_API_KEY", SECRET)
    p = train("exec", "@local > echo key=${secret:MY_API_KEY}; cat /proc/$$/cmdline | tr '\\0' ' '")
    assert p.returncode == 0, p.stderr
    assert "key=***" in p.stdout  # the result of exec, on stdout
    assert SECRET not in p.stdout + p.stderr
    assert [str(f) for f in every_file_under(paths.home()) if holds(f, SECRET)] == []


def test_environment_comes_before_the_store(tmp_path, passphrase, monkeypatch):
    assert train("secrets", "set", "GITHUB_TOKEN", input="from-store-1234\n").returncode == 0
    monkeypatch.setenv("GITHUB_TOKEN", "from-env-5678")
    assert train("secrets", "get", "GITHUB_TOKEN").stdout.strip() == "from-env-5678"
    listing = train("secrets", "list").stdout
    line = next(ln for ln in listing.splitlines() if "GITHUB_TOKEN" in ln)
    assert "environment" in line
    assert "from-env" not in listing and "from-store" not in listing
    monkeypatch.delenv("GITHUB_TOKEN")
    assert train("secrets", "get", "GITHUB_TOKEN").stdout.strip() == "from-store-1234"


def test_encrypted_file_store_round_trip(tmp_path, passphrase):
    assert train("secrets", "set", "R2_SECRET_KEY", input="r2-value-abcdef\n").returncode == 0
    assert train("secrets", "set", "MY_OWN_KEY", input="own-value-123456\n").returncode == 0
    f = paths.home() / "secrets.enc"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert not holds(f, "r2-value-abcdef") and not holds(f, "own-value")
    listing = train("secrets", "list")
    assert "encrypted file" in listing.stdout
    assert any("MY_OWN_KEY" in ln and "file" in ln for ln in listing.stdout.splitlines())
    assert train("secrets", "get", "R2_SECRET_KEY").stdout == "r2-value-abcdef\n"
    assert train("secrets", "delete", "R2_SECRET_KEY").returncode == 0
    p = train("secrets", "get", "R2_SECRET_KEY")
    assert p.returncode == 2 and "R2_SECRET_KEY is not set" in p.stderr
    assert train("secrets", "get", "MY_OWN_KEY").stdout == "own-value-123456\n"


def test_wrong_passphrase_is_one_clear_line(tmp_path, passphrase, monkeypatch):
    assert train("secrets", "set", "HF_TOKEN", input="value-12345\n").returncode == 0
    monkeypatch.setenv("TRAINSH_PASSPHRASE", "not the one")
    p = train("secrets", "get", "HF_TOKEN")
    assert p.returncode == 2
    assert p.stderr.startswith("train: wrong passphrase for") and len(p.stderr.splitlines()) == 1
    # and a recipe that needs it fails before its step runs, saying why
    r = write_recipe(tmp_path / "s.recipe", "tmux.open @local as w\n@w > echo ${secret:HF_TOKEN} > out\n")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1 and "wrong passphrase" in p.stderr
    assert not (tmp_path / "out").exists()


def test_no_passphrase_without_a_terminal_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINSH_PASSPHRASE", raising=False)
    p = train("secrets", "set", "HF_TOKEN", input="value-12345\n")
    assert p.returncode == 2 and "TRAINSH_PASSPHRASE" in p.stderr
    assert not (paths.home() / "secrets.enc").exists()


def test_keyring_store_with_a_file_backed_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    assert train("config", "set", "secrets.store", "keyring").returncode == 0
    p = train("secrets", "set", "VAST_API_KEY", input="vast-key-0123456\n")
    assert p.returncode == 0 and "OS keyring" in p.stdout, p.stderr
    # the value went to the keyring backend's file (keyrings.alt keeps it base64-encoded)
    encoded = base64.b64encode(b"vast-key-0123456").decode()
    kr_files = [f for f in every_file_under(Path(os.environ["HOME"])) if holds(f, encoded)]
    assert kr_files and all("python_keyring" in str(f) for f in kr_files)
    assert not (paths.home() / "secrets.enc").exists()
    index = (paths.home() / "secrets-index.json").read_text()
    assert "VAST_API_KEY" in index and "vast-key" not in index
    assert train("secrets", "get", "VAST_API_KEY").stdout == "vast-key-0123456\n"
    assert train("secrets", "delete", "VAST_API_KEY").returncode == 0
    assert train("secrets", "get", "VAST_API_KEY").returncode == 2  # unknown name: bad input


def test_auto_never_picks_a_plaintext_keyring(tmp_path, passphrase):
    # keyrings.alt is installed for the tests: `auto` must still choose the encrypted file
    p = train("secrets", "set", "HF_TOKEN", input="value-abcdef\n")
    assert p.returncode == 0 and "encrypted file" in p.stdout


def test_bad_secret_names_and_empty_values(tmp_path, passphrase):
    p = train("secrets", "set", "bad-name", input="x\n")
    assert p.returncode == 2 and "bad secret name" in p.stderr
    p = train("secrets", "set", "GOOD_NAME", input="\n")
    assert p.returncode == 2 and "empty value" in p.stderr


# ---- config --------------------------------------------------------------------------------

def test_config_set_keeps_comments_and_types_values(tmp_path):
    cfg = paths.config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("# my settings\n[defaults]\n# be patient\ncommand_timeout = \"20m\"\n")
    assert train("config", "set", "defaults.wait_timeout", "1h30m").returncode == 0
    assert train("config", "set", "notify.urls", "json://a/, json://b/").returncode == 0
    assert train("config", "set", "tmux.options.mouse", "on").returncode == 0
    text = cfg.read_text()
    assert "# my settings" in text and "# be patient" in text and 'command_timeout = "20m"' in text
    assert train("config", "get", "notify.urls").stdout.strip() == '["json://a/", "json://b/"]'
    assert train("config", "get", "defaults.wait_timeout").stdout.strip() == "1h30m"
    assert train("config", "get", "tmux.options.mouse").stdout.strip() == "on"
    opts = train("config", "get", "tmux.options").stdout
    assert '"history-limit": "50000"' in opts and '"mouse": "on"' in opts  # defaults kept
    show = train("config", "show").stdout
    assert "defaults.command_timeout = 20m" in show and "ui.currency = USD   (default)" in show


@pytest.mark.parametrize("args,message", [
    (["defaults.comand_timeout", "5m"], "unknown config key 'defaults.comand_timeout' (did you mean defaults.command_timeout"),
    (["defaults.command_timeout", "5x"], "bad duration '5x'"),
    (["secrets.store", "vault"], "secrets.store must be one of auto, keyring, file"),
    (["tmux.options", "on"], "tmux.options is a table"),
])
def test_config_rejects_bad_keys_and_values_in_one_line(tmp_path, args, message):
    p = train("config", "set", *args)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr
    assert not paths.config_file().exists()  # nothing half-written


def test_config_reset_asks_and_keeps_a_backup(tmp_path):
    assert train("config", "set", "ui.currency", "EUR").returncode == 0
    p = train("config", "reset")
    assert p.returncode == 2 and "--yes" in p.stderr
    assert train("config", "get", "ui.currency").stdout.strip() == "EUR"
    p = train("config", "reset", "--yes")
    assert p.returncode == 0
    assert train("config", "get", "ui.currency").stdout.strip() == "USD"
    assert "EUR" in (paths.home() / "config.toml.bak").read_text()
    assert train("config", "set", "ui.currency", "GBP").returncode == 0
    assert train("config", "reset", "--yes").returncode == 0  # a second reset keeps the first backup
    assert "EUR" in (paths.home() / "config.toml.bak").read_text()
    assert "GBP" in (paths.home() / "config.toml.bak.1").read_text()
    assert not paths.config_file().exists()


def test_config_unset_returns_a_key_to_its_default(tmp_path):
    assert train("config", "set", "defaults.command_timeout", "2m").returncode == 0
    assert train("config", "unset", "defaults.command_timeout").returncode == 0
    assert train("config", "get", "defaults.command_timeout").stdout.strip() == "10m"


def test_configured_command_timeout_applies(tmp_path):
    assert train("config", "set", "defaults.command_timeout", "1s").returncode == 0
    r = write_recipe(tmp_path / "t.recipe", "tmux.open @local as w\n@w > sleep 20\n")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1 and "timed out after 1s" in p.stderr


def test_broken_config_file_is_one_clear_line(tmp_path):
    cfg = paths.config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[defaults\n")
    p = train("config", "get", "ui.currency")
    assert p.returncode == 2 and str(cfg) in p.stderr and "Traceback" not in p.stderr


def test_secrets_list_into_a_closed_pipe_is_quiet(tmp_path, passphrase):
    p = subprocess.run("python -m trainsh secrets list | head -1", shell=True, capture_output=True,
                       text=True, env=os.environ)
    assert p.returncode == 0 and "Error" not in p.stderr


def test_secrets_stay_out_of_the_session_under_set_x_and_after_a_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKX", SECRET)
    r = write_recipe(tmp_path / "sx.recipe", """
tmux.open @local as w
@w > set -x
@w > echo "a ${secret:TOKX}"
@w timeout=1s > echo "b ${secret:TOKX}"; sleep 30
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 1 and "timed out" in p.stderr
    name = tmux("ls", "-F", "#{session_name}").stdout.split()[0]
    tmux("send-keys", "-t", name, "env > session-env.txt", "Enter")
    from helpers import wait_until

    wait_until(lambda: (tmp_path / "session-env.txt").exists() and
               "HOME=" in (tmp_path / "session-env.txt").read_text(), what="env dump")
    assert SECRET not in (tmp_path / "session-env.txt").read_text()  # not left in the shell
    assert SECRET not in tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
    leaked = [str(f) for f in every_file_under(paths.home()) if holds(f, SECRET)]
    assert leaked == []


def test_secret_files_of_a_command_that_never_started_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKX", SECRET)
    r = write_recipe(tmp_path / "sf.recipe", """
tmux.open @local as w
@w > tmux kill-session &
@w > echo ${secret:TOKX}
""")
    p = train("recipe", "run", str(r), "--no-visual")
    assert p.returncode == 1
    assert [str(f) for f in every_file_under(paths.home()) if holds(f, SECRET)] == []


def test_secrets_are_refused_where_they_would_show_in_process_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKX", SECRET)
    (tmp_path / "a.txt").write_text("x")
    for text, where in (("./a.txt -> ./out/${secret:TOKX}/\n", "a transfer path"),
                        ("host h = root@${secret:TOKX}\ntmux.open @h as w\n", "a host spec")):
        r = write_recipe(tmp_path / "r.recipe", text)
        p = train("recipe", "run", str(r), "--no-visual")
        assert p.returncode == 1
        assert f"cannot be used in {where}" in p.stderr and SECRET not in p.stderr
    assert not (tmp_path / "out").exists()


def test_exec_hands_commands_the_same_filtered_environment_as_tmux(tmp_path, passphrase, monkeypatch):
    monkeypatch.setenv("MY_API_KEY", SECRET)
    p = train("exec", "@local > env; echo key=${secret:MY_API_KEY}")
    assert p.returncode == 0, p.stderr
    assert "HOME=" in p.stdout and "key=***" in p.stdout
    # neither the passphrase nor the recipe's secrets under their own names
    assert "TRAINSH_PASSPHRASE" not in p.stdout
    assert not [line for line in p.stdout.splitlines() if line.startswith("MY_API_KEY=")]
    assert "TRAINSH_SECRET_MY_API_KEY=***" in p.stdout
    for value in ("correct horse battery", SECRET):
        assert value not in p.stdout + p.stderr
        assert [str(f) for f in every_file_under(paths.home()) if holds(f, value)] == []


def test_a_short_secret_is_masked_and_said_to_be_short(tmp_path, passphrase):
    short = "Q%z"
    p = train("secrets", "set", "PIN", input=short + "\n")
    assert p.returncode == 0, p.stderr
    assert "warning: the secret PIN is only 3 characters long" in p.stderr
    r = write_recipe(tmp_path / "pin.recipe", """
tmux.open @local as w
@w > echo "pin=${secret:PIN}."
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 0, p.stderr
    assert "pin=***." in p.stderr and short not in p.stdout + p.stderr
    assert "the secret PIN is only 3 characters long" in p.stderr  # said when used, too
    name = tmux("ls", "-F", "#{session_name}").stdout.split()[0]
    history = tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
    assert "pin=***." in history and short not in history
    assert [str(f) for f in every_file_under(paths.home()) if holds(f, short)] == []
    p = train("exec", "@local > echo pin=${secret:PIN}.")
    assert p.returncode == 0 and "pin=***." in p.stdout and short not in p.stdout + p.stderr
    assert "only 3 characters long" in p.stderr


def test_a_secret_written_to_the_terminal_itself_stays_out_of_the_pane(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKX", SECRET)
    # straight to /dev/tty (no stdout to filter), and in two writes that split the value
    r = write_recipe(tmp_path / "tty.recipe", """
tmux.open @local as w
@w > echo "tty ${secret:TOKX}" > /dev/tty; echo "err ${secret:TOKX}" >&2
@w > printf 'split %s' "${secret:TOKX}" | head -c 10 > /dev/tty; sleep 0.3; printf '%s.\\n' "${secret:TOKX}" | tail -c +5 > /dev/tty
@w > v="${secret:TOKX}"; i=0; while [ $i -lt ${#v} ]; do printf %s "${v:$i:1}"; sleep 0.01; i=$((i+1)); done; echo " bytewise"
@w > : "${secret:TOKX}"; exit 3
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 1 and "exited with code 3" in p.stderr
    assert SECRET not in p.stdout + p.stderr
    name = tmux("ls", "-F", "#{session_name}").stdout.split()[0]
    history = tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
    assert "tty ***" in history and "err ***" in history and "split ***." in history
    assert "*** bytewise" in history
    assert SECRET not in history
    # the pane log, the step outputs and the job log
    assert list(paths.jobs_dir().glob("*/run/*.log"))
    assert [str(f) for f in every_file_under(paths.home()) if holds(f, SECRET)] == []
    logs = train("recipe", "logs", "--last").stdout
    assert "tty ***" in logs and "split ***." in logs and SECRET not in logs


def test_a_secret_of_several_lines_is_masked_in_the_pane(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTI", "line-one-5e2a9c\nline-two-7d41b0")
    r = write_recipe(tmp_path / "ml.recipe", """
tmux.open @local as w
@w > printf 'v=%s.\\n' "${secret:MULTI}"; printf '%s\\n' "${secret:MULTI}" | tail -n 1 > /dev/tty
""")
    p = train("recipe", "run", str(r), "--no-visual", "--keep-sessions")
    assert p.returncode == 0, p.stderr
    name = tmux("ls", "-F", "#{session_name}").stdout.split()[0]
    history = tmux("capture-pane", "-p", "-S", "-", "-t", name).stdout
    assert "v=***." in history
    for part in ("line-one-5e2a9c", "line-two-7d41b0"):
        assert part not in history and part not in p.stdout + p.stderr
        assert [str(f) for f in every_file_under(paths.home()) if holds(f, part)] == []
