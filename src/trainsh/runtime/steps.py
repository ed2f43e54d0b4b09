"""One handler per step kind. Each takes (ctx, idx, step, resume) and returns when the step is
done, or raises StepFailed. `resume` is the journal row when a resumed job re-enters the step
that was running when the runner stopped."""

from __future__ import annotations

import os
import sys
import time

from trainsh import masking
from trainsh.numbers import digits
from trainsh.recipe import model as m
from trainsh.recipe.expand import ExpandError, expand
from trainsh.remote.tmux import Pending, Session, Tmux
from trainsh.remote.waits import run_wait
from trainsh.runtime.context import Context, StepFailed, TimedOut, attach_command
from trainsh.runtime.notify import send
from trainsh.settings import config
from trainsh.settings.storages import StorageError, resolve
from trainsh.transfer import planner
from trainsh.transfer.side import Side


def start(ctx: Context, idx: int, step: m.Step, **detail) -> None:
    ctx.journal.step_started(ctx.job.id, idx, step.pos.line, step.kind, step.source, detail)


def done(ctx: Context, idx: int, exit_code: int | None = 0, **detail) -> None:
    ctx.journal.step_finished(ctx.job.id, idx, "done", exit_code, **({"detail": detail} if detail else {}))


# ---- commands in sessions ------------------------------------------------------------------

STOPPED_BY_CLOSE = "stopped when its session was closed"


def _collect(ctx: Context, s: Session, tmux: Tmux, p: Pending) -> None:
    """Record a finished command: its output into the job's logs, its exit code in the journal."""
    out, end = tmux.output_since(s, p.channel, s.log_offset, ended=p.rc is not None)
    s.log_offset = end
    p.output, p.collected = out, True
    path = None
    if out:
        ctx.events.output(s.name, out)
        if p.step is not None:
            path = ctx.job.folder / "output" / f"{p.step:04d}.log"
            path.write_text(out + "\n", encoding="utf-8")
    with ctx.journal.batch():
        if p.step is not None:
            # (a background command that tmux.close ended was asked to end: not a failure)
            status = "done" if p.rc == 0 else "stopped" if p.note == STOPPED_BY_CLOSE else "failed"
            ctx.journal.step_finished(ctx.job.id, p.step, status, p.rc,
                                      log_path=str(path) if path else None)
        ctx.save_session(s)


def _finish_previous(ctx: Context, s: Session, tmux: Tmux, until: float | None = None) -> Pending | None:
    """Wait for the session's command in flight (if any) and collect it."""
    p = s.current
    if p is None:
        return None
    if not p.done:
        tmux.wait(s, p, until=until)
        if not p.done:
            return p  # still running at `until`
    if not p.collected:
        _collect(ctx, s, tmux, p)
        if p.rc != 0:
            why = p.note or f"exit code {p.rc}"
            ctx.events.warn(f"background command in {s.name} failed ({why}): {_short(p.text)}")
    return p


def _short(text: str, n: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= n and "\n" not in text.strip() else line[: n - 3] + "..."


def command(ctx: Context, idx: int, step: m.Command, resume: dict | None = None) -> None:
    p = _run_command(ctx, idx, step, resume)
    if p is not None:
        ctx.console.ok(f"exit 0 in {m.format_seconds(round(time.time() - p.started, 1))}")
        _show_tail(ctx, p.output)


def _run_command(ctx: Context, idx: int, step: m.Command, resume: dict | None) -> Pending | None:
    """Send the command (or pick it up on resume) and wait for it: its Pending when it ended
    with exit code 0, None when it went to the background; StepFailed otherwise."""
    s, tmux = ctx.session(step.session)
    text, secret_values = ctx.expand_command(step.text)
    timeout = step.timeout.seconds if step.timeout else config.duration("defaults.command_timeout")

    p = s.current
    resumed = bool(resume and p and p.step == idx)
    if not resumed:
        if p is not None and not p.done:
            ctx.console.info(f"waiting for the command still running in {s.name} first: {_short(p.text)}")
            ctx.console.live(f"{s.name}: waiting for {_short(p.text, 40)}", session=s.name)
        # Bounded by this command's own timeout: every wait has one.
        prev = _finish_previous(ctx, s, tmux, until=time.time() + timeout)
        ctx.console.live_done()
        if prev is not None and not prev.done:
            start(ctx, idx, step, session=s.name)
            raise TimedOut(f"{s.name} was still running '{_short(prev.text)}' after "
                             f"{m.format_seconds(timeout)} (this command's timeout); wait for it "
                             f"with 'wait @{s.name} idle timeout=...' or give this command a longer timeout=")
        s.count += 1
        channel = f"{s.real}-c{s.count}"
        rc_path = s.rc_path(s.count)
        started = time.time()
        deadline = None if step.background and not step.timeout else started + timeout
        p = Pending(channel, rc_path, text, s.count, started, deadline, step=idx,
                    secrets=sorted(secret_values))
        s.current = p
        s.marker, s.cmd_offset = channel, s.log_offset
        with ctx.journal.batch():  # before sending: a resume must know what may be running
            start(ctx, idx, step, session=s.name, channel=channel, rc=rc_path,
                   background=step.background)
            ctx.save_session(s)
        if secret_values:  # the command removes them as it starts; the job's end, if not
            ctx.secret_files += [(s.host, f) for f in tmux.write_secrets(s, s.count, secret_values)]
        if step.background:
            tmux.send(s, p)
            ctx.journal.step_update(ctx.job.id, idx, status="background")
            ctx.console.info(f"running in the background in {s.name}")
            return None
    elif not p.done and not tmux.was_started(s, p):
        # Journaled, but the runner stopped before typing it: type it now.
        ctx.console.info(f"sending the command the runner had not sent yet: {_short(p.text)}")
        resumed = False
        if step.background:
            tmux.send(s, p)
            ctx.journal.step_update(ctx.job.id, idx, status="background")
            return None
    else:
        ctx.console.info(f"picking up the command sent before the runner stopped: {_short(p.text)}")
        if step.background:
            return None
    peek = lambda: tmux.last_lines(s)  # noqa: E731
    ctx.console.live(f"{s.name}: {_short(p.text, 50)}", peek, session=s.name, deadline=p.deadline)
    try:
        if resumed:
            tmux.wait(s, p)
        else:
            tmux.run_command(s, p)
    finally:
        ctx.console.live_done()
    _collect(ctx, s, tmux, p)
    out = p.output
    if p.rc != 0:
        if p.rc is None:
            limit = m.format_seconds(timeout)
            if "timed out" in p.note:
                raise TimedOut(f"command timed out after {limit} and was interrupted (Ctrl-C)", None, out)
            raise StepFailed(f"command failed: {p.note}", None, out)
        raise StepFailed(f"command exited with code {p.rc}", p.rc, out)
    return p


def _show_tail(ctx: Context, out: str, n: int = 5) -> None:
    lines = out.splitlines()
    if len(lines) > n:
        more = len(lines) - n
        ctx.console.output(f"... {more} more line{'s' if more > 1 else ''} (train recipe logs {ctx.job.id})")
    ctx.console.output("\n".join(lines[-n:]))


def host_command(ctx: Context, idx: int, step: m.HostCommand, resume: dict | None = None) -> None:
    """`train exec '@host > cmd'`: the command runs in a throw-away session on the host, closed
    when it ends (kept like any session when the job is interrupted, or fails with
    --keep-sessions). Its output is what `train exec` is for: it goes to stdout, pipeable."""
    name = f"{step.host}:{idx + 1}"  # ':' is in no session name a recipe can write
    if name not in ctx.sessions:  # (on resume it may be open already, its command in flight)
        _open_session(ctx, name, step.host, f"{step.host}-{ctx.job.tag}-{idx + 1}", resume)
    # In a subshell: `exit 3` is the command's exit code, not the end of the session's shell.
    # Its stderr goes to a file of the session (a pane merges both streams), relayed to ours;
    # not with secrets, whose values only the pane (through MASKER) may see.
    text = f"( {step.text}\n)" + ("" if _uses_secrets(ctx, step.text) else ' 2>>"$TRAINSH_RUN/stderr"')
    cmd = m.Command(step.pos, step.source, session=name, text=text, timeout=step.timeout)
    s = ctx.sessions[name]
    try:
        p = _run_command(ctx, idx, cmd, resume)
    except StepFailed as e:
        if e.output:
            print(e.output, flush=True)
        _relay_stderr(ctx, s)
        raise StepFailed(str(e), e.exit_code) from None
    if p is not None and p.output:
        print(p.output, flush=True)
    _relay_stderr(ctx, s)
    close_session(ctx, s)


def _uses_secrets(ctx: Context, text: str) -> bool:
    named: list[str] = []
    try:  # (no value looked up: the step does that, and says what is wrong)
        expand(text, ctx.variables, lambda name: named.append(name) or "")
    except ExpandError:
        return False
    return bool(named)


def _relay_stderr(ctx: Context, s: Session) -> None:
    data = ctx.host(s.host).tmux.shell.read_file(f"{s.rc_dir}/stderr")
    if data:
        sys.stderr.write(masking.mask(data.decode("utf-8", "replace")))
        sys.stderr.flush()


# ---- waits ---------------------------------------------------------------------------------

def wait(ctx: Context, idx: int, step: m.Wait, resume: dict | None = None) -> None:
    s, tmux = ctx.session(step.session)
    timeout = step.timeout.seconds if step.timeout else config.duration("defaults.wait_timeout")
    condition = ctx.expand(step.condition)
    start(ctx, idx, step, session=s.name, condition=condition)
    begin = time.monotonic()
    limit = m.format_seconds(timeout)
    ctx.console.live(f"{s.name}: waiting for {condition}",
                     lambda: tmux.last_lines(s),
                     session=s.name, deadline=time.time() + timeout)
    try:
        if step.idle:
            p = _finish_previous(ctx, s, tmux, until=time.time() + timeout)
            if p is not None and not p.done:
                raise TimedOut(f"timed out after {limit}: still running in {s.name}: {_short(p.text)}")
            if p is not None and p.rc != 0:
                why = p.note or f"exited with code {p.rc}"
                raise StepFailed(f"{s.name} is idle, but its command {why}: {_short(p.text)}",
                                 p.rc, p.output)
            detail = "idle"
        else:
            h = ctx.host(s.host)
            if step.pattern is not None:
                cur = s.current
                pattern = ctx.expand(step.pattern)
                spec = {"kind": "pattern", "pattern": pattern, "log": s.log_path,
                        "marker": s.marker, "offset": s.cmd_offset,
                        "rc": cur.rc_path if cur is not None else None}
            elif step.file is not None:
                spec = {"kind": "file", "path": ctx.expand(step.file)}
            else:
                port = ctx.expand(step.port or "")
                if not digits(port) or not 0 < int(port) < 65536:
                    raise StepFailed(f"bad port '{port}'")
                spec = {"kind": "port", "port": int(port)}
            spec["claim"] = f"{s.rc_dir}/wait.pid"  # a newer wait on the session replaces this one
            outcome = run_wait(h.node_shell if spec["kind"] == "port" and h.node_shell else h.shell,
                               spec, timeout)
            if not outcome.ok:
                if outcome.reason == "timeout":
                    raise TimedOut(f"timed out after {limit} waiting for {condition}")
                if outcome.reason == "ended":
                    raise StepFailed(f"the command in {s.name} ended (exit {outcome.rc}) without "
                                     f"printing '{pattern}'")
                raise StepFailed(f"wait failed: {outcome.detail}")
            detail = outcome.detail
    finally:
        ctx.console.live_done()
    took = time.monotonic() - begin
    done(ctx, idx, 0, session=s.name, condition=condition, seconds=round(took, 3), found=detail)
    ctx.console.ok(f"{condition} after {m.format_seconds(round(took, 2))}"
                   + (f": {detail}" if step.pattern is not None and detail else ""))


# ---- sessions ------------------------------------------------------------------------------

def tmux_open(ctx: Context, idx: int, step: m.TmuxOpen, resume: dict | None = None) -> None:
    h = ctx.host(step.host)
    start(ctx, idx, step, host=step.host)
    s = _open_session(ctx, step.name, step.host, f"{step.name}-{ctx.job.tag}", resume)
    done(ctx, idx, 0, session=s.name, real=s.real)
    ctx.console.ok(f"session {s.name} on {step.host}: {attach_command(h, s.real)}")


def _open_session(ctx: Context, name: str, host: str, real: str, resume: dict | None) -> Session:
    h = ctx.host(host)
    s = Session(name, real, host, h.run_dir)
    if resume and h.tmux.exists(s):
        h.tmux.close(s)  # half-opened before the runner stopped: start clean
    h.tmux.open(s, cwd=ctx.job.cwd)
    ctx.sessions[s.name] = s
    ctx.journal.session_opened(ctx.job.id, s.name, host, s.real, s.run_dir)
    ctx.save_session(s)
    return s


def tmux_close(ctx: Context, idx: int, step: m.TmuxClose, resume: dict | None = None) -> None:
    if step.session not in ctx.sessions and any(  # (a resumed job: it ended with its machine)
            r["name"] == step.session and r["status"] == "gone" for r in ctx.journal.sessions(ctx.job.id)):
        start(ctx, idx, step, session=step.session)
        done(ctx, idx, 0, machine="stopped")
        ctx.console.ok(f"session {step.session} closed (its machine is stopped)")
        return
    s, _ = ctx.session(step.session)
    start(ctx, idx, step, session=s.name)
    held = ctx.machines.get(s.host) if ctx.machines is not None else None
    if held and held.state == "stopped":  # vast.stop ended its machine, and the session with it
        del ctx.sessions[s.name]
        ctx.journal.session_closed(ctx.job.id, s.name)
        done(ctx, idx, 0, machine="stopped")
        ctx.console.ok(f"session {s.name} closed (its machine is stopped)")
        return
    close_session(ctx, s)
    done(ctx, idx, 0)
    ctx.console.ok(f"session {s.name} closed")


def close_session(ctx: Context, s: Session) -> None:
    """Close a session; a command still running in it is stopped, its output kept."""
    tmux = ctx.host(s.host).tmux
    p = s.current
    if p is not None and not p.done:
        p.rc = tmux.read_rc(p.rc_path)
        if p.rc is None:
            ctx.events.info(f"stopping the command still running in {s.name}: {_short(p.text)}")
            p.note = STOPPED_BY_CLOSE
        p.done = True
    if p is not None and not p.collected:
        _collect(ctx, s, tmux, p)
    tmux.close(s)
    del ctx.sessions[s.name]
    ctx.journal.session_closed(ctx.job.id, s.name)


def tmux_config(ctx: Context, idx: int, step: m.TmuxConfig, resume: dict | None = None) -> None:
    h = ctx.host(step.host)
    options = config.get("tmux.options")
    start(ctx, idx, step, host=step.host)
    h.tmux.set_options({str(k): str(v) for k, v in options.items()})
    done(ctx, idx, 0, options=options)
    ctx.console.ok(f"tmux options on {step.host}: " + ", ".join(f"{k}={v}" for k, v in options.items()))


# ---- transfers -----------------------------------------------------------------------------

def transfer(ctx: Context, idx: int, step: m.Transfer, resume: dict | None = None) -> None:
    start(ctx, idx, step)
    src, dst = _side(ctx, step.src), _side(ctx, step.dst)
    label = f"copying {src} -> {dst}"
    ctx.console.live(label)
    progress = (lambda p: ctx.console.progress(p, label)) if ctx.console.visual else None
    try:
        summary = planner.copy(src, dst, delete=step.delete, excludes=step.excludes, progress=progress)
    finally:
        ctx.console.live_done()
    done(ctx, idx, 0, src=str(src), dst=str(dst), summary=summary)
    ctx.console.ok(summary)


def _side(ctx: Context, ep: m.Endpoint):
    path = ctx.expand(ep.path, "a transfer path")
    if ep.name is not None and ep.name != "local":
        if ep.name in ctx.storage_specs:
            spec = ctx.expand(ctx.storage_specs[ep.name], "a storage spec").strip()
            if spec == "placeholder":
                raise StepFailed(f"storage @{ep.name} is a placeholder: give it a storage with "
                                 f"--storage {ep.name}=SPEC")
            try:
                return Side(path, storage=resolve(spec))
            except StorageError as e:
                raise StepFailed(f"storage @{ep.name}: {e}") from None
        h = ctx.host(ep.name)
        if not h.shell.is_local():
            if path == "~" or path.startswith("~/"):
                path = h.shell.home() + path[1:]
            return Side(path, h.shell)
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(ctx.job.cwd, path)
    return Side(path)


# ---- the rest ------------------------------------------------------------------------------

def notify(ctx: Context, idx: int, step: m.Notify, resume: dict | None = None) -> None:
    message = ctx.expand(step.message)
    start(ctx, idx, step)
    ctx.console.plain(f"  >> {message}")  # (kept with the step, as every step's result line)
    sent, problem = send(message, ctx.expand)
    if problem:
        ctx.events.warn(problem)
    done(ctx, idx, 0, message=message, sent=sent)


def sleep(ctx: Context, idx: int, step: m.Sleep, resume: dict | None = None) -> None:
    start(ctx, idx, step)
    ctx.console.live(f"sleeping {step.duration}", deadline=time.time() + step.duration.seconds)
    try:
        time.sleep(step.duration.seconds)
    finally:
        ctx.console.live_done()
    done(ctx, idx, 0)
