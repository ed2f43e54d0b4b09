"""`slurm:LOGIN?KEY=VALUE&...`: an allocation on a Slurm cluster reached through its login host
LOGIN (any host spec, or `local`): `slurm:login1?nodes=2&time=4h` asks for a new one,
`slurm:login1?job=123` names one held. cloud/slurm.py speaks to the cluster."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from trainsh.numbers import digits, seconds

SCHEME, TITLE = "slurm", "Slurm"
INLINE = False  # a spec with options: named in a host line, not inline
LOGIN = True    # REST is LOGIN?OPTIONS, LOGIN a host spec of its own


FLAGS = {"nodes": "--nodes", "ntasks": "--ntasks", "ntasks_per_node": "--ntasks-per-node",
         "gpus_per_node": "--gpus-per-node", "cpus_per_task": "--cpus-per-task", "gres": "--gres",
         "mem": "--mem", "time": "--time", "partition": "--partition", "account": "--account",
         "qos": "--qos", "constraint": "--constraint", "exclusive": "--exclusive", "extra": ""}
COUNTS = ("nodes", "ntasks", "ntasks_per_node", "gpus_per_node", "cpus_per_task")
_WORD = re.compile(r"[A-Za-z0-9_.,:|&\[\]-]+\Z")
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


def option_problem(key: str, value: str) -> str | None:
    """What is wrong with one allocation option, or None."""
    if key not in FLAGS:
        return f"unknown slurm option '{key}' (known: {', '.join(k + '=' for k in FLAGS)})"
    if "$" in value:  # expanded when the step runs
        return None
    if key in COUNTS:
        return None if re.fullmatch(r"[1-9]\d{0,5}", value, re.ASCII) else f"{key}= takes a whole number from 1, got '{value}'"
    if key == "exclusive":
        return None if value.lower() in TRUE + FALSE else f"exclusive= takes true or false, got '{value}'"
    if key == "extra":
        try:
            words = shlex.split(value)
        except ValueError as e:
            return f"extra= takes salloc options as a shell would split them: {e}"
        if not words:
            return "extra= takes salloc options, like extra=\"--reservation=mine --begin=now+1hour\""
        if not words[0].startswith("-"):
            return f"extra= takes salloc options, starting with one like --reservation=NAME, got '{words[0]}'"
        return None
    if key == "mem":
        return None if re.fullmatch(r"\d+[KMGT]?", value, re.I | re.ASCII) else \
            f"mem= takes a size like 16G or 500M, got '{value}'"
    if key == "time":
        try:
            seconds(value)
        except ValueError as e:
            return str(e)
        return None
    if key == "gres":
        return None if _WORD.match(value) else f"gres= takes Slurm's form like gpu:2 or gpu:a100:2, got '{value}'"
    return None if _WORD.match(value) else f"{key}= takes a name, got '{value}'"


def slurm_time(text: str) -> str:
    """A duration (`4h`, `90m`) as Slurm writes a time limit (D-HH:MM:SS)."""
    total = int(-(-seconds(text) // 1))
    d, rem = divmod(total, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}"


@dataclass(frozen=True)
class Spec:
    """`slurm:LOGIN?nodes=2&time=4h` (a new allocation) or `slurm:LOGIN?job=123` (one held)."""

    login: str
    options: tuple[tuple[str, str], ...] = ()
    job: str | None = None

    @classmethod
    def parse(cls, rest: str) -> Spec:
        login, _, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
        login = login.strip()
        if not login:
            raise ValueError("'slurm:' needs a login host: slurm:LOGIN?nodes=2&time=4h")
        options, job = [], None
        for part in query.split("&") if query else []:
            key, eq, value = part.partition("=")
            if not eq or not value:
                raise ValueError(f"bad slurm option '{part}' (expected KEY=VALUE)")
            if key == "job":
                if not digits(value):
                    raise ValueError(f"job= takes a Slurm job id, got '{value}'")
                job = value
                continue
            problem = option_problem(key, value)
            if problem:
                raise ValueError(problem)
            if any(k == key for k, _ in options):
                raise ValueError(f"{key}= given twice")
            options.append((key, value))
        return cls(login, tuple(options), job)

    def text(self) -> str:
        query = "&".join([f"{k}={v}" for k, v in self.options] + ([f"job={self.job}"] if self.job else []))
        return f"slurm:{self.login}" + (f"?{query}" if query else "")


def spec_problem(rest: str) -> str | None:
    try:
        Spec.parse(rest)
    except ValueError as e:
        return str(e)
    return None


def problem(rest: str) -> str | None:
    return spec_problem(rest)


def login(rest: str) -> str:
    """The login host's spec in REST."""
    return (rest.rpartition("?")[0] if "?" in rest else rest).strip()
