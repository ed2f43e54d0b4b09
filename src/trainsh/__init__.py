"""trainsh: training automation for rented GPU hosts and cloud storage.

`import trainsh as ts` is also the Python recipe API (`ts.Job`, `ts.secret`, `ts.main`, ...,
from trainsh/program/). It loads on first use through `__getattr__` below, never at import:
every `train` command imports this package, and `train --help` must stay fast.
"""

from trainsh.version import __version__

# The API's names. Only these load trainsh.program: `from trainsh import masking` asks this
# module for `masking` before importing the submodule, and must not pull the runtime in.
API = ("Job", "Host", "Session", "Storage", "Where", "Result", "Secret", "secret", "StepFailed",
       "Timeout", "HostLost", "main", "ChildFailed", "parse")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name not in API:
        raise AttributeError(f"module 'trainsh' has no attribute '{name}'")
    from trainsh import program

    return getattr(program, name)
