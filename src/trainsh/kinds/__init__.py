"""Host kinds, the spec half: what each kind of host's spec looks like, checked with no side
effects. The recipe parser, preflight, `hosts.toml` and the CLI check specs here alone, so
nothing of this package imports anything of ours but `trainsh.numbers`.

A host is `local`, an ssh destination or alias, a `hosts.toml` name (kinds/ssh.py), or
`SCHEME:REST` of a kind listed in KINDS. How a kind is reached (a shell, readiness, release)
is its other half, in runtime/reach/ under the same name; a new kind is one module here, one
there, and a line in each registry.
"""

from __future__ import annotations

from trainsh.kinds import colab, runpod, slurm, ssh, vast

KINDS = {k.SCHEME: k for k in (vast, runpod, colab, slurm)}
SCHEMES = tuple(KINDS)
# kinds a command line may name inline (`@vast:123 > nvidia-smi`): one word after the scheme
INLINE = tuple(s for s, k in KINDS.items() if k.INLINE)


def title(scheme: str) -> str:
    """A kind's name as its makers write it: `vast` -> Vast.ai."""
    kind = KINDS.get(scheme)
    return kind.TITLE if kind else scheme


def scheme_of(spec: str) -> tuple[str, str]:
    """`colab:c1` -> ("colab", "c1"); an ssh spec or a name -> ("", spec)."""
    first = spec.split()[0] if spec.split() else ""
    if ":" in first and "@" not in first.partition(":")[0]:
        head, _, rest = first.partition(":")
        if head.isalpha():
            return head, rest
    return "", spec


def spec_problem(spec: str) -> tuple[int, str] | None:
    """A lexical check of a host spec; (offset, message) when it is malformed.

    Accepts `local`, `placeholder`, `SCHEME:REST` of a kind above (`vast:ID`, `runpod:ID`,
    `colab:NAME`, `slurm:LOGIN?...`), a name from hosts.toml, and `[user@]host [-p PORT]
    [-i KEY] [-J JUMP] [-o OPT=VAL]`.
    """
    head = spec.lstrip()
    for scheme, kind in KINDS.items():  # kinds whose REST may hold spaces (a login's ssh spec)
        if kind.LOGIN and head.startswith(scheme + ":"):
            rest = head[len(scheme) + 1:].strip()
            problem = kind.problem(rest)
            if problem is None:
                login = kind.login(rest)
                inner = None if login == "local" else spec_problem(login)
                problem = inner and inner[1]
            return (spec.index(":") + 1, problem) if problem else None
    words = ssh.words(spec)
    if isinstance(words, tuple):
        return words
    if words and ":" in words[0][0] and not words[0][0].startswith("[") and len(words) == 1:
        scheme, _, rest = words[0][0].partition(":")
        if scheme in KINDS:
            if not rest:
                return len(scheme) + 1, f"'{scheme}:' needs an instance id"
            problem = None if "$" in rest else KINDS[scheme].problem(rest)
            return (len(scheme) + 1, problem) if problem else None
        if "$" in words[0][0]:
            return None
    return ssh.problem(words)
