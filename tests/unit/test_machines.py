"""The lifecycle of machines a job brought up, with a kind that records what it was asked to do
(the real kinds, Vast and Slurm, are tested end to end against their fake and cluster)."""

from __future__ import annotations

import io

from trainsh.runtime.reach import REACH
from trainsh.runtime.journal import Journal
from trainsh.runtime.machines import Machines
from trainsh.runtime.reach.base import Kind, Machine
from trainsh.ui.console import Console


class Recorder(Kind):
    def __init__(self, fail: bool = False):
        self.released: list[str] = []
        self.fail = fail

    def release(self, m):
        if self.fail:
            raise RuntimeError("API down")
        self.released.append(m.ident)
        return "stopped"

    def describe(self, m):
        return f"test machine {m.ident}"

    def release_hint(self, m):
        return f"train test stop {m.ident}"


def setup(monkeypatch, fail=False):
    kind = Recorder(fail)
    monkeypatch.setitem(REACH, "test", kind)
    journal = Journal()
    ms = Machines(journal, "job1")
    ms.add(Machine("gpu", "test", "11", "rented", state="running"))
    ms.add(Machine("spare", "test", "22", "found", state="running"))
    ms.add(Machine("old", "test", "33", "started", state="running"))
    out = io.StringIO()
    return kind, ms, Console(out, visual=False), out


def test_a_failed_job_releases_what_it_brought_up_and_leaves_the_users_own(monkeypatch):
    kind, ms, console, out = setup(monkeypatch)
    ms.on_failed(console)
    assert kind.released == ["11", "33"]
    assert {m.host: m.state for m in ms.all()} == {"gpu": "stopped", "spare": "running", "old": "stopped"}
    text = out.getvalue()
    assert "test machine 11: stopped (the job failed)" in text
    assert "test machine 22 was running before this job: left running" in text
    assert ms.live() == [ms.get("spare")]


def test_keep_hosts_and_interruption_name_what_still_bills(monkeypatch):
    kind, ms, console, out = setup(monkeypatch)
    ms.on_failed(console, keep=True)
    assert kind.released == []
    assert "kept (--keep-hosts); stop it with: train test stop 11" in out.getvalue()
    ms.on_interrupted(console)
    assert out.getvalue().count("still running and billing") == 3


def test_a_release_that_fails_is_said_not_hidden(monkeypatch):
    kind, ms, console, out = setup(monkeypatch, fail=True)
    ms.on_failed(console)
    assert "could NOT be released (API down)" in out.getvalue()
    assert ms.get("gpu").state == "running"
