"""Notifications through the apprise URLs of config `notify.urls`: a recipe's `notify` step,
and the end of a job on its own (done or failed, as config `notify.on` asks; a recovery's end,
"recovered", is told where it happens: runtime/clouds.py `replaced`)."""

from __future__ import annotations

from trainsh.settings import config
from trainsh.recipe.model import format_seconds
from trainsh.runtime.feed import JobEnded


def send(message: str, expand=str) -> tuple[int, str | None]:
    """Send `message` to every configured URL (each through `expand`, which may fill in
    secrets). Returns how many URLs got it and a warning when some did not. Never raises: a
    failed notification never fails a job."""
    urls = config.get("notify.urls")
    if not urls:
        return 0, None
    try:
        import apprise  # heavy: only when there is somewhere to send

        ap = apprise.Apprise()
        for url in urls:
            ap.add(expand(str(url)))
        if ap.notify(title="trainsh", body=message):
            return len(urls), None
        return 0, "notification could not be delivered to every URL"
    except Exception as e:
        return 0, f"notification failed: {e}"


def on_job_end(console):
    """A feed subscriber: says when a job ends on its own (not when it is interrupted)."""
    def hear(e) -> None:
        if not isinstance(e, JobEnded) or e.status not in ("done", "failed") \
                or e.status not in config.get("notify.on"):
            return
        import os

        message = (f"job {e.job_id} ({os.path.basename(e.recipe)}) {e.status}: exit "
                   f"{e.exit_code} after {format_seconds(int(e.seconds))}")
        if e.error:
            message += f"; {e.error}"
        _, problem = send(message)
        if problem:
            console.warn(problem)

    return hear
