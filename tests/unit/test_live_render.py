"""The live view's screen from events alone (no terminal): a transfer's progress bar, cloud
machines with their price and cost so far, secrets masked, and a layout that fits."""

from __future__ import annotations

import io
import time

from rich.console import Console as RichConsole

from trainsh import masking
from trainsh.runtime import feed as ev
from trainsh.transfer.report import Progress
from trainsh.ui.console import Console
from trainsh.ui.live import LiveView


def screen(view: LiveView, width: int, height: int) -> str:
    out = RichConsole(file=io.StringIO(), width=width, height=height, color_system=None)
    out.print(view.render(width, height))
    return out.file.getvalue()


def test_progress_machines_masking_and_fit(monkeypatch):
    monkeypatch.setenv("TRAINSH_HOME", "/nonexistent-trainsh-home")
    console = Console(io.StringIO(), visual=False)
    view = LiveView(console)
    steps = ("tmux.open @gpu as w", "@w > python train.py --token hunter2secret",
             "@gpu:/out -> ./out") + tuple(f"@w > step {i}" for i in range(30))
    masking.register("hunter2secret")
    try:
        console.emit(ev.JobStarted("abcd1234", "/x/train.recipe", steps))
        console.step(1, len(steps), steps[0])
        console.emit(ev.StepEnded(0, "done", 0))
        console.step(3, len(steps), steps[2])
        console.live("copying @gpu:/out -> ./out")
        console.emit(Progress(512 * 1024**2, 1024**3, 50 * 1024**2, 10.0))
        console.emit(ev.MachineState("gpu", "vast", "123456", "running", 0.5, time.time() - 7200))
        console.output("loss=0.1 token hunter2secret")
        text = screen(view, 100, 30)
    finally:
        masking.clear()
    assert "job abcd1234" in text and "train.recipe" in text
    assert "━" in text and "512.0 MiB / 1.0 GiB  50%  50.0 MiB/s  ETA 0:10" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("gpu"))
    assert "vast" in row and "123456" in row and "running" in row and "$0.50" in row
    assert "$1.00" in row  # two hours at $0.50/h
    assert "hunter2secret" not in text
    lines = text.splitlines()
    assert len(lines) <= 30 and all(len(ln) <= 100 for ln in lines)
    assert any("more steps" in ln for ln in lines)  # 33 steps do not fit in 30 rows
    assert any(ln.startswith("▶   3") for ln in lines)

    small = screen(view, 40, 10).splitlines()
    assert len(small) <= 10 and all(len(ln) <= 40 for ln in small)
    assert small[0].startswith("trainsh job abcd1234")
