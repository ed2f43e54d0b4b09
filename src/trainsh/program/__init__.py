"""Recipes as Python programs (`import trainsh as ts`): a typed API on the recipe engine.

api.py builds the DSL's steps from calls, engine.py runs them as a job and replays them on
resume, load.py reads a program's main() and --vars, launch.py runs it from `train` or Python.
This floor sits above ui/ (a program run from `python FILE.py` shows the same console and live
view) and below cli/ (which hands `.py` recipes here).
"""

from trainsh.program.api import (ChildFailed, Host, HostLost, Job, Result, Secret, Session, StepFailed,
                                  Storage, Timeout, Where, parse, secret)
from trainsh.program.launch import main

__all__ = ["ChildFailed", "Host", "HostLost", "Job", "Result", "Secret", "Session", "StepFailed", "Storage",
           "Timeout", "Where", "main", "parse", "secret"]
