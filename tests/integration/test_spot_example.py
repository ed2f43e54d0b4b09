"""examples/spot.recipe as it is, against the Vast fake and an S3 store (moto): its machine is
outbid mid-training, a second one brings the last pushed checkpoint down and trains on from it.
The store's history (which machine trained each epoch) is the evidence: every epoch exactly
once, those after the resume point on the second machine; the first machine was destroyed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import TRAIN, train, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN, EPOCHS = "t", 8


def _history(lake) -> list[tuple[int, str]]:
    """(epoch, machine) in the order they were pushed to the store."""
    try:
        body = lake["s3"].get_object(Bucket=lake["bucket"], Key=f"{RUN}/ckpt/history.log")["Body"].read()
    except lake["s3"].exceptions.NoSuchKey:
        return []
    return [(int(e), who) for e, who in (ln.split() for ln in body.decode().splitlines() if ln)]


def test_the_spot_example_resumes_from_the_last_pushed_checkpoint(vast, lake):
    p = subprocess.Popen([*TRAIN, "recipe", "run", str(EXAMPLES / "spot.recipe"), "--no-visual",
                          "--storage", "out=lake", "--var", f"BUCKET={lake['bucket']}",
                          "--var", f"ENDPOINT={lake['url']}", "--var", f"RUN={RUN}",
                          "--var", f"EPOCHS={EPOCHS}", "--var", "SECONDS=0.5",
                          "--var", f"SCRIPT={EXAMPLES / 'spot_train.py'}"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(_history(lake)) >= 3 or p.poll() is not None, timeout=90, what="three epochs in the store")
    assert p.poll() is None, (p.communicate(), train("recipe", "logs", "--last").stdout[-3000:])
    first = _history(lake)[-1][1]
    vast.preempt(first)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    history = _history(lake)
    assert [e for e, _ in history] == list(range(1, EPOCHS + 1)), history  # each epoch once, in order
    machines = [who for _, who in history]
    resumed = machines.index(next(w for w in machines if w != first))  # the first epoch trained again
    second = machines[resumed]
    assert resumed >= 3 and set(machines[:resumed]) == {first} and set(machines[resumed:]) == {second}
    assert f"resuming from the checkpoint of epoch {resumed}" in train("recipe", "logs", "--last").stdout
    state = vast.state()
    assert int(first) in state["destroyed"] and list(state["instances"]) == [second]
    assert lake["secret"] not in out + err
    train("vast", "destroy", second, "--yes")
