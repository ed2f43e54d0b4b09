"""Who watches a job as it runs: the console's plain lines, or the live view on a terminal;
notifications when it ends on its own; the tmux view of its sessions with `--attach`. The
runner runs the same in every case: these all hear the console's feed."""

# The live view (rich) and the attach view load only when they are wanted (start-up).

from __future__ import annotations

import time

from trainsh.runtime import feed as ev


def run(runner, journal, console, *, live: bool = False, attach: bool = False,
        resumed: bool = False) -> int:
    job = runner.job
    journal.watch = console.emit
    from trainsh.runtime.notify import on_job_end

    console.feed.subscribe(on_job_end(console))
    if attach:
        from trainsh.ui.attach import follower

        console.feed.subscribe(follower(journal, job, console))
    view = None
    if live:
        from trainsh.ui.live import LiveView

        view = LiveView(console)
    rows = journal.steps(job.id) if resumed else []
    statuses = {r["idx"]: r["status"] for r in rows}
    earlier = {r["idx"]: (r["ended"] - r["started"], r["exit_code"]) for r in rows
               if r["ended"] and r["started"]}
    said = {r["idx"]: [text for _, text in r["detail"].get("said", [])] for r in rows}
    console.emit(ev.JobStarted(job.id, job.recipe_path, tuple(s.source for s in runner.recipe.steps),
                               statuses, resumed, earlier=earlier, said=said))
    start, rc = time.time(), 1
    try:
        if view is not None:
            view.start()
        rc = runner.run()
        return rc
    finally:
        j = journal.job(job.id)
        status = j.status if j else ("done" if rc == 0 else "failed")
        console.emit(ev.JobEnded(job.id, job.recipe_path, status, rc, time.time() - start,
                                 (j.error or "") if j else ""))
        if view is not None:
            view.stop()
        journal.watch = None
