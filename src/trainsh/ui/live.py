"""The live view of a running job: one screen with the steps and their state, what runs now
(with its time and timeout), the last lines of each session, transfers with a progress bar,
cloud machines with their cost, and the job id with how to attach.

It is a subscriber of the console's feed (runtime/feed.py) and knows nothing else of the run.
rich is imported only here, only when the view starts. The screen is redrawn when something
happened, at most 4 times a second, and once a second for the clocks; an idle view costs a
redraw a second and one read of the pane log's tail. It fits the terminal as it is resized,
and on exit leaves a short summary in the terminal (each step, exit code, time; the failing
step's last output; the last lines of each session's last command, so what a run printed at
its end, an evaluation's accuracy say, stays on the screen).
"""

# Pricing loads only when a cost is drawn (start-up).

from __future__ import annotations

import collections
import os
import shutil
import signal
import threading
import time

from trainsh import masking
from trainsh.recipe.model import format_seconds
from trainsh.runtime import feed as ev

ICONS = {"waiting": "·", "running": "▶", "done": "✓", "failed": "✗", "background": "↻",
         "interrupted": "‖", "skipped": "-", "stopped": "■"}
STYLES = {"waiting": "dim", "running": "bold yellow", "done": "green", "failed": "bold red",
          "background": "cyan", "interrupted": "magenta", "skipped": "dim", "stopped": "dim"}
OUTPUT_LINES = 10  # kept per session
SUMMARY_LINES = 5  # of each session's last command, left in the summary
SUMMARY_SESSIONS = 4  # sessions whose last output the summary shows (the latest ones)


def _merged(old: ev.MachineState | None, new: ev.MachineState) -> ev.MachineState:
    """What is known of a machine after `new`: a state change that does not repeat the price
    keeps it; a machine that stops keeps what it cost until then."""
    import dataclasses

    price = new.price_per_hour if new.price_per_hour is not None else old and old.price_per_hour
    started, cost = new.started_at, new.cost
    if new.state == "running" and started is None:
        started = old.started_at if old is not None and old.state == "running" and old.started_at \
            else new.at  # (running since it was first seen so)
    if cost is None and new.state != "running" and old is not None:
        cost = _spent(old, new.at)
    return dataclasses.replace(new, price_per_hour=price, started_at=started, cost=cost)


def _spent(m: ev.MachineState, now: float) -> float | None:
    """USD a machine has cost so far (this run of it), when that can be known."""
    if m.state == "running" and m.started_at and m.price_per_hour is not None:
        return m.price_per_hour * max(0.0, now - m.started_at) / 3600
    return m.cost


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _Step:
    __slots__ = ("text", "status", "started", "ended", "exit_code", "said")

    def __init__(self, text: str, status: str = "waiting"):
        self.text, self.status = text, status
        self.said: list[str] = []  # its result lines (the machine a pick took, a cost, ...)
        self.started: float | None = None
        self.ended: float | None = None
        self.exit_code: int | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started


class LiveView:
    def __init__(self, console, stream=None):
        self.console = console
        self.stream = stream or console.stream
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None
        self._paused = False
        self._rates = None
        self._old_winch = None
        self.job_id = ""
        self.recipe = ""
        self.started = time.monotonic()
        self.steps: list[_Step] = []
        self.current: int | None = None
        # The steps of child jobs (job.parallel) take rows after those the job had when the
        # first child started; the job's own later steps are placed after them too.
        self._rows: dict[tuple[str, int], int] = {}
        self._child_from: int | None = None
        self.activity: ev.Activity | None = None
        self.activity_text = ""
        self.activity_started = 0.0
        self.progress = None
        self.outputs: dict[str, list[str]] = {}
        self.last_output: dict[str, list[str]] = {}  # each session's last command's last lines
        self.last_session: str | None = None
        self.closed: set[str] = set()
        self.machines: dict[str, ev.MachineState] = {}
        self.messages: collections.deque = collections.deque(maxlen=50)
        self.closing: list[ev.Message] = []  # what was said after the last step ended
        self.slow_call = ""  # "still waiting for <cloud call>" of the step that runs, if said
        self._said_waiting = None  # cloud/http.py's own hook, put back when the view ends
        self._just_said: str | None = None
        self.ended: ev.JobEnded | None = None
        console.feed.subscribe(self.hear)

    # ---- events (any thread)
    def hear(self, e) -> None:
        if isinstance(e, ev.Prompting):
            self._step_aside(e.active)
            return
        with self._lock:
            now = time.monotonic()
            if isinstance(e, ev.JobStarted):
                self.job_id, self.recipe = e.job_id, e.recipe
                self._rows, self._child_from = {}, None
                self.steps = [_Step(t, {"done": "done", "background": "background", "stopped": "stopped"}.get(
                    e.statuses.get(i, ""), "waiting") if e.resumed else "waiting")
                    for i, t in enumerate(e.steps)]
                if e.resumed:
                    for i, st in e.statuses.items():
                        if st == "failed" and i < len(self.steps):
                            self.steps[i].status = "background"  # a background command that failed
                    for i, (secs, code) in e.earlier.items():
                        if i < len(self.steps) and self.steps[i].status != "waiting":
                            step = self.steps[i]
                            step.started, step.ended, step.exit_code = 0.0, secs, code  # (a span)
                    for i, lines in e.said.items():
                        if i < len(self.steps) and self.steps[i].status != "waiting":
                            self.steps[i].said = [t for t in lines if not t.startswith("exit ")]
            elif isinstance(e, ev.StepStarted):
                row = self._row(e.child, e.idx, e.total)
                step = self.steps[row]
                step.text = step.text or e.text
                step.status, step.started, step.ended, step.exit_code = "running", now, None, None
                self.current = row
                self.closing, self.slow_call = [], ""
            elif isinstance(e, ev.StepEnded):
                row = self._row(e.child, e.idx)
                if row is not None and 0 <= row < len(self.steps):
                    step = self.steps[row]
                    step.status, step.exit_code = e.status, e.exit_code
                    step.ended = now if step.started is not None else None
                if row is not None and self.current == row:
                    self.current = None
                self.closing, self.slow_call = [], ""
            elif isinstance(e, ev.Activity):
                self.activity, self.activity_text, self.activity_started = e, e.text, now
                self.progress = None
                if e.session:
                    self.last_session = e.session
            elif isinstance(e, ev.ActivityText):
                self.activity_text = e.text
            elif isinstance(e, ev.ActivityEnded):
                self.activity, self.progress = None, None
            elif isinstance(e, ev.Message):
                self.messages.append(e)
                if self._just_said is None or e.text.strip() != self._just_said:
                    self.closing.append(e)
                self._just_said = None
                if e.level == "output" and self.last_session and not e.text.startswith("... "):
                    self._add_output(self.last_session, e.text.splitlines())
                    lines = [ln for ln in e.text.splitlines() if ln.strip()]
                    self.last_output.pop(self.last_session, None)  # (the latest goes last)
                    self.last_output[self.last_session] = lines[-SUMMARY_LINES:]
            elif isinstance(e, ev.SessionOpened):
                self.outputs.setdefault(e.name, [])
                self.closed.discard(e.name)
            elif isinstance(e, ev.SessionClosed):
                self.closed.add(e.name)
            elif isinstance(e, ev.MachineState):
                self.machines[e.name] = _merged(self.machines.get(e.name), e)
            elif isinstance(e, ev.StepSaid):
                # (a command's "exit 0 in 2s" is its row's own exit code and time)
                row = self._row(e.child, e.idx)
                if row is not None and 0 <= row < len(self.steps) and not e.text.startswith("exit "):
                    self.steps[row].said.append(e.text)
                    self._just_said = e.text  # (its Message comes next: the summary has it)
            elif isinstance(e, ev.JobEnded):
                self.ended = e
            elif type(e).__name__ == "Progress":
                self.progress = e
            else:
                return
        self._wake.set()

    def _row(self, child: str, idx: int, total: int | None = None) -> int | None:
        """The row of step `idx` of the job (child "") or of a child; `total` given: the step
        starts, and gets a row if it has none."""
        key = (child, idx)
        if key in self._rows:
            return self._rows[key]
        if not child and (self._child_from is None or idx < self._child_from):
            if total is not None:
                while len(self.steps) < max(total, idx + 1):  # (a program's grow)
                    self.steps.append(_Step(""))
            return idx if idx < len(self.steps) else None
        if total is None:
            return None
        if self._child_from is None:
            self._child_from = len(self.steps)
        self.steps.append(_Step(""))
        self._rows[key] = len(self.steps) - 1
        return self._rows[key]

    def _add_output(self, session: str, lines: list[str]) -> None:
        have = self.outputs.setdefault(session, [])
        if lines and have[-len(lines):] == lines:
            return
        self.outputs[session] = (have + lines)[-OUTPUT_LINES:]

    def _peek(self) -> None:
        """The running work's latest output (outside the lock: on a host it takes a call)."""
        with self._lock:
            a = self.activity
        if a is None or a.peek is None or not a.session:
            return
        try:
            seen = a.peek()
        except Exception:  # a peek is a nicety: never let it break the view
            seen, a = None, None
        with self._lock:
            if self.activity is not None and self.activity.session and a is None:
                self.activity = ev.Activity(self.activity.text, self.activity.session,
                                            self.activity.deadline, None)
            lines = seen if isinstance(seen, list) else [seen] if seen else []
            if lines and a is not None:
                self.outputs[a.session] = list(lines[-OUTPUT_LINES:])

    # ---- the screen
    def start(self) -> None:
        from rich.console import Console as RichConsole
        from rich.live import Live

        self.console.printing = False
        self._rich = RichConsole(file=self.stream, highlight=False)
        self._live = Live(console=self._rich, screen=True, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        from trainsh.cloud import http

        # A slow cloud call's notice, printed on the terminal, would be drawn over at the next
        # redraw: while the view is up it is a line of the view.
        self._said_waiting, http.waiting = http.waiting, self._slow_call
        if threading.current_thread() is threading.main_thread():
            self._old_winch = signal.signal(signal.SIGWINCH, lambda *a: self._wake.set())
        self._thread = threading.Thread(target=self._loop, name="live-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._old_winch is not None:
            signal.signal(signal.SIGWINCH, self._old_winch)
        if self._said_waiting is not None:
            from trainsh.cloud import http

            http.waiting, self._said_waiting = self._said_waiting, None
        if self._live is not None:
            self._live.stop()
            self._live = None
            self._summary()
        self.console.feed.unsubscribe(self.hear)
        self.console.printing = True

    def _slow_call(self, text: str) -> None:
        """http.waiting while the view is up: a line of the view (the terminal's, while a step
        asks the user something and the screen is theirs)."""
        with self._lock:
            if self._paused and self._said_waiting is not None:
                self._said_waiting(text)
                return
            self.slow_call = text
        self._wake.set()

    def _step_aside(self, asking: bool) -> None:
        """While a step asks the user something, the screen is theirs: the view leaves it (no
        summary) and comes back after."""
        from rich.live import Live

        with self._lock:
            if asking and self._live is not None:
                self._paused = True
                self._live.stop()
            elif not asking and self._paused:
                self._paused = False
                self._live = Live(console=self._rich, screen=True, auto_refresh=False,
                                  transient=False, redirect_stdout=False, redirect_stderr=False)
                self._live.start()
                self._wake.set()

    def _loop(self) -> None:
        last_draw = last_peek = 0.0
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            if now - last_peek >= 1.0:
                self._peek()
                last_peek = now
            gap = 0.25 - (now - last_draw)
            if gap > 0 and self._stop.wait(gap):
                break
            self._draw()
            last_draw = time.monotonic()

    def _draw(self) -> None:
        if self._paused:
            return
        try:
            width, height = self._measure()
            with self._lock:
                frame = self.render(width, height)
            self._live.update(frame, refresh=True)
        except Exception:
            if os.environ.get("TRAINSH_DEBUG"):
                raise

    def _measure(self) -> tuple[int, int]:
        try:  # the terminal's own size, as it is now (COLUMNS and LINES may be stale)
            width, height = os.get_terminal_size(self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            width, height = shutil.get_terminal_size((100, 30))
        self._rich.size = (width, height)
        return width, height

    def render(self, width: int, height: int):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        rows: list = []

        def line(*parts, style: str = "") -> Text:
            t = Text.assemble(*parts, style=style, no_wrap=True, overflow="ellipsis")
            t.truncate(width, overflow="ellipsis")
            return t

        state = self.ended.status if self.ended else "running"
        rows.append(line(("trainsh ", "bold"), (f"job {self.job_id}", "bold cyan"),
                         f"  {os.path.basename(self.recipe)}  ", (state, STYLES.get(state, "bold")),
                         f"  {_clock(now - self.started)}"))
        rows.append(line(f"attach: train recipe attach {self.job_id}    "
                         f"logs: train recipe logs {self.job_id}", style="dim"))

        # what runs now
        now_rows: list = []
        if self.activity is not None:
            spent = _clock(now - self.activity_started)
            left = ""
            if self.activity.deadline is not None:
                left = f"  (time left {_clock(self.activity.deadline - time.time())})"
            now_rows.append(line(("▶ ", "bold yellow"), masking.mask(self.activity_text),
                                 (f"  {spent}", "bold"), (left, "dim")))
            if self.progress is not None:
                from rich.progress_bar import ProgressBar

                p = self.progress
                grid = Table.grid(padding=(0, 1))
                grid.add_column(width=max(10, min(40, width // 3)))
                grid.add_column(no_wrap=True, overflow="ellipsis")
                grid.add_row(ProgressBar(total=p.total or None, completed=p.done), str(p))
                now_rows.append(grid)
        if self.slow_call:
            from trainsh.cloud import http

            if not http.calls_waiting():  # the call it was about has ended
                self.slow_call = ""
        if self.slow_call:
            now_rows.append(line(("… ", "yellow"), masking.mask(self.slow_call), style="yellow"))

        machine_rows: list = []
        if self.machines:
            machine_rows = self._machines(width)
        # (and what a Python recipe printed, labelled so: the view holds its terminal)
        notes = [m for m in self.messages if m.level in ("warn", "fail") or m.label == "program:"][-3:]
        note_rows = [line(("warning: " if m.level == "warn" else m.label + " ",
                           "yellow" if m.level == "warn" else "bold red" if m.level == "fail" else "cyan"),
                          masking.mask(m.text))
                     for m in notes]

        sessions = [n for n, lines in self.outputs.items() if lines]
        if self.last_session in sessions:  # the busy one first
            sessions.remove(self.last_session)
            sessions.insert(0, self.last_session)
        machine_lines = len(self.machines) + 1 if self.machines else 0
        fixed = len(rows) + len(now_rows) + machine_lines + len(note_rows) + 1
        room = max(0, height - fixed)
        n = len(self.steps)
        want_out = sum(min(len(self.outputs[s]), OUTPUT_LINES) + 1 for s in sessions)
        step_rows = min(n, max(min(n, 3), room - min(want_out, room // 2)))
        out_room = max(0, room - step_rows)

        rows.append(line(("steps", "bold underline")))
        rows += self._steps(step_rows, width, now)
        rows += now_rows
        for s in sessions:
            if out_room < 2:
                break
            take = min(len(self.outputs[s]), out_room - 1,
                       max(1, out_room // len(sessions) - 1) if s != sessions[0] else out_room - 1)
            tag = " (closed)" if s in self.closed else ""
            rows.append(line((f"─ {s}{tag} ", "bold blue"), ("─" * max(0, width - len(s) - 4), "blue")))
            for text in self.outputs[s][-take:]:
                rows.append(line(("  " + masking.mask(text), "")))
            out_room -= take + 1
        rows += machine_rows
        rows += note_rows
        return Group(*rows)

    def _steps(self, count: int, width: int, now: float) -> list:
        from rich.text import Text

        n = len(self.steps)
        if count <= 0 or n == 0:
            return []
        focus = self.current if self.current is not None else next(
            (i for i, s in enumerate(self.steps) if s.status == "waiting"), n - 1)
        first = max(0, min(focus - count // 2, n - count))
        out = []
        for i in range(first, first + count):
            s = self.steps[i]
            took = s.seconds
            when = "" if took is None else (_clock(took) if s.status == "running" else f"{took:.1f}s")
            if s.exit_code not in (None, 0):
                when = f"exit {s.exit_code}  {when}"
            mark = ICONS.get(s.status, "?")
            room = max(4, width - len(when) - 2)
            t = Text(f"{mark} {i + 1:>3}  " + masking.mask(s.text.strip()),
                     style=STYLES.get(s.status, ""), no_wrap=True)
            if s.said:  # what it said last, after it: the machine it took, the cost, ...
                t.append("  → " + masking.mask(s.said[-1]), style="dim")
            if len(t.plain) > room:
                t.truncate(room - 1)
                t.append("…")
            t.pad_right(max(0, room - len(t.plain) + 2))
            t.append(when, style="dim" if s.status != "running" else "bold")
            t.truncate(width)
            out.append(t)
        if first > 0:
            out[0] = Text(f"  … {first} step{'s' if first > 1 else ''} above", style="dim")
        if first + count < n:
            more = n - first - count
            out[-1] = Text(f"  … {more} more step{'s' if more > 1 else ''}", style="dim")
        return out

    def _machines(self, width: int) -> list:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        for _ in range(6):
            table.add_column(no_wrap=True, overflow="ellipsis")
        table.add_row(*(Text(h, style="bold") for h in ("machine", "provider", "id", "state", "$/h", "cost so far")))
        for row in self._machine_rows():
            table.add_row(*row)
        return [table]

    def _machine_rows(self) -> list:
        """Each machine: name, provider, id, state, $/h, cost so far (as text)."""
        from trainsh.cloud import pricing

        if self._rates is None:
            try:
                self._rates = pricing.rates(offline=True)
            except Exception:
                self._rates = False
        rows = []
        for m in self.machines.values():
            per_hour = cost = ""
            if m.price_per_hour is not None:
                per_hour = pricing.money(m.price_per_hour, table=self._rates or None) + "/h"
            spent = _spent(m, time.time())
            if spent is not None:
                cost = pricing.money(spent, table=self._rates or None)
            rows.append((m.name, m.provider, m.id, m.state, per_hour, cost))
        return rows

    # ---- what stays on the screen
    def _summary(self) -> None:
        from rich.text import Text

        out = self._rich
        self._measure()
        e = self.ended
        head = Text.assemble(("job ", "bold"), (self.job_id, "bold cyan"), " ",
                             ((e.status if e else "ended"), STYLES.get(e.status if e else "", "bold")))
        if e:
            head.append(f" after {format_seconds(int(e.seconds))}")
        head.append(f": {self.recipe}")
        out.print(head, soft_wrap=True)
        shown = list(enumerate(self.steps))
        if len(shown) > 20:  # a long recipe: the steps that say something
            quiet = [i for i, s in shown if s.status in ("done", "waiting") and not s.said]
            shown = [(i, s) for i, s in shown if i not in quiet or i == len(self.steps) - 1]
            out.print(Text(f"  ({len(quiet)} steps done or not run, saying nothing, are not listed)",
                           style="dim"))
        for i, s in shown:
            took = s.seconds
            code = "" if s.exit_code is None else f"exit {s.exit_code}"
            when = "" if took is None else f"{took:.1f}s"
            status = "not run" if s.status == "waiting" else s.status
            t = Text(f"  {ICONS.get(s.status, '?')} {i + 1:>3}  ", style=STYLES.get(s.status, ""))
            t.append(f"{status:<11}{code:<9}{when:>8}  ")
            t.append(masking.mask(s.text.strip()))
            out.print(t, no_wrap=True, overflow="ellipsis", crop=True)
            for said in s.said:  # whole: a hint in it is there to be followed
                out.print(Text(" " * 20 + masking.mask(said), style="dim"), soft_wrap=True)
        if self.machines:
            from rich.table import Table

            table = Table.grid(padding=(0, 2))
            for _ in range(6):
                table.add_column(no_wrap=True)
            for row in self._machine_rows():
                table.add_row(*row)
            from rich.padding import Padding

            out.print(Text("  machines:", style="bold"))
            out.print(Padding(table, (0, 0, 0, 4)), crop=True)
        told = {ln for m in self.closing if m.level == "output" for ln in m.text.splitlines()}
        latest = list(self.last_output.items())[-SUMMARY_SESSIONS:]
        for name, lines in latest:  # what each session's last command printed last
            if not lines or all(ln in told for ln in lines):
                continue  # (said below already: the failing command's output)
            out.print(Text(f"  {name}: last output", style="bold"), no_wrap=True, crop=True)
            for ln in lines:
                out.print(Text("    | " + masking.mask(ln), style="dim"), no_wrap=True,
                          overflow="ellipsis", crop=True)
        for m in self.closing:  # how the runner said it ended: error, last output, hints
            if m.level == "step":
                continue
            text = masking.mask(m.text)
            if m.level == "output":
                for ln in text.splitlines():
                    out.print(Text(m.label + ln, style="dim"), soft_wrap=True)
            elif m.level == "fail":
                out.print(Text.assemble((m.label, "bold red"), " " + text), soft_wrap=True)
            elif m.level == "warn":
                out.print(Text.assemble(("  warning:", "yellow"), " " + text), soft_wrap=True)
            elif m.level in ("ok", "info"):
                out.print(Text(("  ok " if m.level == "ok" else "  ") + text), soft_wrap=True)
            else:
                out.print(Text(text), soft_wrap=True)
        self.stream.flush()

