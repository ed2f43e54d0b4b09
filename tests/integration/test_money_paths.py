"""The standing test of money: every command that rents or starts a machine, cut short by
SIGINT, SIGTERM, SIGHUP or SIGKILL while it rents, while the machine gets ready and while its
command runs. After each, the machines the fake has left are exactly the ones trainsh named
as left: in what it printed as it ended, or (after a kill -9, when it can print nothing) in
the command that names them (`train recipe status` for jobs, `train CLOUD list` for a create
or an ow that was killed). Each signal meets each command in one phase, the phases taking
turns, the clouds too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TRAIN, train, wait_until, write_recipe

OW = [sys.executable, "-m", "trainsh.owstart"]
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]
PHASES = {"pick": ["rent", "ready", "command"], "create": ["rent"], "ow-exec": ["rent", "ready", "command"],
          "ow-ssh": ["command"], "exec-stopped": ["ready", "command"]}
# (`ow ssh` passes Ctrl-C to the remote shell, as ssh does: SIGINT is not a way out of it)
CASES = [(cmd, PHASES[cmd][n % len(PHASES[cmd])], sig, "vast" if (n + len(cmd)) % 2 or cmd == "exec-stopped"
          else "runpod") for cmd in PHASES for n, sig in enumerate(SIGNALS)
         if not (cmd == "ow-ssh" and sig == signal.SIGINT)]
LEFT = re.compile(r"billing|still running|it bills|kept running|was rented by|stop it with")


class Cloud:
    """One fake, seen the same way whichever cloud it is."""

    def __init__(self, name: str, fake):
        self.name, self.fake = name, fake

    def control(self, **faults) -> None:
        self.fake.control(**faults)

    def state(self) -> dict:
        return self.fake.state()

    def live(self) -> set[str]:
        return set(self.fake.live())

    def home(self, ident: str) -> Path | None:
        st = self.state()
        inst = (st["instances"] if self.name == "vast" else st["pods"]).get(ident)
        return Path(inst["home"]) if inst and inst.get("home") else None

    def marked(self) -> bool:
        return any((h := self.home(i)) is not None and (h / "m").exists() for i in self.live())


def _ids(text: str, name: str) -> set[str]:
    return {m for line in text.splitlines() if LEFT.search(line)
            for m in re.findall(rf"\b{name}[ :]([0-9a-z]*[0-9][0-9a-z]*)\b", line)}


def _phase_reached(c: Cloud, phase: str, stopped: str | None):
    if phase == "rent":
        return lambda: c.state()["creating"] >= 1
    if phase == "ready":
        if stopped:  # the start was asked for; the machine is not up yet
            return lambda: c.state()["instances"][stopped]["intended_status"] == "running"
        return lambda: c.state()["creating"] == 0 and bool(c.live())
    return c.marked


@pytest.mark.parametrize("cmd,phase,sig,cloud_name", CASES,
                         ids=[f"{c}-{p}-{signal.Signals(s).name}-{n}" for c, p, s, n in CASES])
def test_what_is_left_is_what_was_named(request, tmp_path, cmd, phase, sig, cloud_name):
    c = Cloud(cloud_name, request.getfixturevalue("vast" if cloud_name == "vast" else "runpod_fake"))
    name = c.name
    gpu = "RTX_4090" if name == "vast" else "RTX4090"
    stopped = None
    if cmd == "exec-stopped":
        stopped = c.fake.rent("1002", label="mine")
        c.fake.api("PUT", f"instances/{stopped}/", {"state": "stopped"})
        c.fake.wait(stopped, "exited")
    command = "touch ~/m; sleep 600"
    argv = {
        "pick": [*TRAIN, "recipe", "run", str(write_recipe(tmp_path / "p.recipe", (
            f"host gpu = placeholder\n{name}.pick @gpu gpu={gpu}\n{name}.wait timeout=2m\n"
            f"tmux.open @gpu as w\n@w > {command}\n"))), "--no-visual", "--autostop", "0"],
        "create": [*TRAIN, name, "create", "1002" if name == "vast" else "RTX4090"],
        "ow-exec": [*OW, "exec", "--provider", name, "--gpu", "RTX4090", "--no-sync", command],
        "exec-stopped": [*TRAIN, "exec", f"@gpu > {command}", "--host", f"gpu=vast:{stopped}",
                         "--no-visual"],
    }.get(cmd)
    if phase == "rent":
        c.control(slow_create=60)
    elif phase == "ready":
        c.control(start_delay=60)
    if cmd == "ow-ssh":
        out = _ow_ssh(tmp_path, c, sig)
    else:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_until(_phase_reached(c, phase, stopped), timeout=120, what=f"the {phase} phase")
            proc.send_signal(sig)
            c.control(slow_create=0, start_delay=0.3)
            o, e = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        out = o + e
        assert "Traceback" not in out, out
        assert proc.returncode == (-sig if sig == signal.SIGKILL else 128 + sig if cmd in ("create", "ow-exec")
                                   else 130), out
    if sig == signal.SIGKILL:  # nothing could be said: the command that names what is left does
        looked = train("recipe", "status") if cmd in ("pick", "exec-stopped") else train(name, "list")
        out = looked.stdout
    assert c.live() == _ids(out, name), (c.live(), out)


def _ow_ssh(tmp_path, c: Cloud, sig) -> str:
    from test_ow import Terminal

    ow_ssh = " ".join([*OW, "ssh", "--provider", c.name, "--gpu", "RTX4090", "--no-sync"])
    term = Terminal(tmp_path, f"sh -c 'echo PID=$$; exec {ow_ssh}'")
    try:
        pid = int(re.search(r"PID=(\d+)", term.expect("PID=")).group(1))
        term.type("touch ~/m; echo MARKED-$((40+2))")
        term.expect("MARKED-42", timeout=120)
        os.kill(pid, sig)
        if sig != signal.SIGKILL:
            term.expect("OW-EXIT=", timeout=120)
        return term.screen()
    finally:
        term.close()
