"""What this version can run: a handler per step kind, and per cloud action (`vast.pick`, see
Step.handler_key). `train recipe check` names every step without one, and a run refuses such
a recipe before its first step.

The handlers live by what they touch: sessions, commands, waits and transfers in steps.py,
cloud machines in clouds.py (and pick.py, a pick over several clouds), Slurm allocations in
allocations.py. A cloud's actions are clouds.py's under its name (recipe/model.py's CLOUDS).
"""

from __future__ import annotations

from trainsh.kinds import title
from trainsh.recipe import model as m
from trainsh.runtime import allocations, clouds, pick, steps
from trainsh.runtime.context import Context, StepFailed

HANDLERS = {
    "command": steps.command,
    "host_command": steps.host_command,
    "wait": steps.wait,
    "tmux.open": steps.tmux_open,
    "tmux.close": steps.tmux_close,
    "tmux.config": steps.tmux_config,
    "transfer": steps.transfer,
    "notify": steps.notify,
    "sleep": steps.sleep,
    "slurm.alloc": allocations.alloc,
    "slurm.wait": allocations.wait,
    "slurm.release": allocations.release,
    "pick": pick.pick,
}
for _cloud in m.CLOUDS:
    HANDLERS.update(clouds.handlers(_cloud))


def cannot_run(step: m.Step) -> str | None:
    """Why this version cannot run `step`, or None when it can."""
    if step.handler_key in HANDLERS:
        return None
    if isinstance(step, m.Cloud):
        return f"{step.handler_key}: {title(step.provider)} control is not supported yet in this version"
    return f"{step.handler_key} steps are not supported in this version"


def handler_for(step: m.Step):
    """The step's handler; for a step this version cannot run, one that fails saying why."""
    handler = HANDLERS.get(step.handler_key)
    if handler is None:
        def handler(ctx: Context, idx: int, step: m.Step, resume: dict | None = None) -> None:
            steps.start(ctx, idx, step)
            raise StepFailed(cannot_run(step))
    return handler
