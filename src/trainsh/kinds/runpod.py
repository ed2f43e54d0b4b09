"""`runpod:ID`: a RunPod pod on the user's account, by its pod id."""

from __future__ import annotations

from trainsh.numbers import pod_id
from trainsh.numbers import problem as number_problem

SCHEME, TITLE = "runpod", "RunPod"
INLINE = True
LOGIN = False


def problem(rest: str) -> str | None:
    return number_problem(pod_id, rest)  # (as `train runpod show ID` and the provider check it)
