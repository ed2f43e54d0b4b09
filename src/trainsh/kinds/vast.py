"""`vast:ID`: a Vast.ai instance on the user's account, by its numeric id."""

from __future__ import annotations

from trainsh.numbers import vast_id
from trainsh.numbers import problem as number_problem

SCHEME, TITLE = "vast", "Vast.ai"
INLINE = True   # `@vast:123 > cmd` names it inline
LOGIN = False   # its REST is one word


def problem(rest: str) -> str | None:
    return number_problem(vast_id, rest)  # (as `train vast show ID` and the provider check it)
