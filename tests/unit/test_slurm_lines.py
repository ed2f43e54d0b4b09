"""Slurm command lines and specs: what trainsh asks Slurm for, and how Slurm's errors read."""

from __future__ import annotations

import pytest

from trainsh.cloud import slurm
from trainsh.recipe.parser import check_host_spec
from trainsh.remote.shell import Result


def test_time_limits_in_slurm_form():
    assert slurm.slurm_time("4h") == "0-04:00:00"
    assert slurm.slurm_time("90m") == "0-01:30:00"
    assert slurm.slurm_time("1d2h3m4s") == "1-02:03:04"
    assert slurm.slurm_time("1.5s") == "0-00:00:02"  # rounded up: never shorter than asked


def test_specs_parse_with_any_login_and_check_their_options():
    s = slurm.Spec.parse("me@login -p 2222?nodes=2&gpus_per_node=8&time=4h")
    assert s.login == "me@login -p 2222" and s.job is None
    assert dict(s.options) == {"nodes": "2", "gpus_per_node": "8", "time": "4h"}
    assert slurm.Spec.parse("local?job=42") == slurm.Spec("local", (), "42")
    assert slurm.Spec.parse(s.text()[len("slurm:"):]) == s
    for bad, why in (("?nodes=2", "needs a login host"), ("h?nodes=0", "whole number"),
                     ("h?gpus=1", "unknown slurm option 'gpus'"), ("h?nodes", "KEY=VALUE"),
                     ("h?nodes=1&nodes=2", "given twice"), ("h?job=x", "job id"),
                     ("h?partition=a b", "takes a name")):
        with pytest.raises(ValueError, match=why):
            slurm.Spec.parse(bad)


def test_host_specs_check_the_login_host_too():
    assert check_host_spec("slurm:local?nodes=2") is None
    assert check_host_spec("slurm:me@login -p 22?time=1h") is None
    assert "bad port" in check_host_spec("slurm:me@login -p 0?time=1h")[1]
    assert "unknown slurm option" in check_host_spec("slurm:login?cpus=2")[1]


def test_slurm_errors_become_one_line_with_the_host_and_slurms_words():
    def r(code, err):
        return Result("x", code, "", err, 0.0)

    assert slurm._explain("login", "salloc", r(1, "salloc: error: Job submit/allocate failed: "
                                                  "Invalid partition name specified\n")) \
        == "login: Slurm: Invalid partition name specified"
    assert slurm._explain("login", "salloc", r(127, "sh: 1: salloc: not found\n")) \
        .startswith("login: salloc not found (is it a Slurm login host?")
    assert slurm._explain("h", "squeue", r(1, "squeue: error: Invalid user: x\n")) == "h: Slurm: Invalid user: x"
