"""Slurm command lines and specs: what trainsh asks Slurm for, and how Slurm's errors read."""

from __future__ import annotations

import pytest

from trainsh.cloud import slurm
from trainsh.kinds import slurm as slurm_spec
from trainsh.kinds import spec_problem as check_host_spec
from trainsh.remote.shell import Result


def test_time_limits_in_slurm_form():
    assert slurm_spec.slurm_time("4h") == "0-04:00:00"
    assert slurm_spec.slurm_time("90m") == "0-01:30:00"
    assert slurm_spec.slurm_time("1d2h3m4s") == "1-02:03:04"
    assert slurm_spec.slurm_time("1.5s") == "0-00:00:02"  # rounded up: never shorter than asked


def test_specs_parse_with_any_login_and_check_their_options():
    s = slurm_spec.Spec.parse("me@login -p 2222?nodes=2&gpus_per_node=8&time=4h")
    assert s.login == "me@login -p 2222" and s.job is None
    assert dict(s.options) == {"nodes": "2", "gpus_per_node": "8", "time": "4h"}
    assert slurm_spec.Spec.parse("local?job=42") == slurm_spec.Spec("local", (), "42")
    assert slurm_spec.Spec.parse(s.text()[len("slurm:"):]) == s
    for bad, why in (("?nodes=2", "needs a login host"), ("h?nodes=0", "whole number"),
                     ("h?gpus=1", "unknown slurm option 'gpus'"), ("h?nodes", "KEY=VALUE"),
                     ("h?nodes=1&nodes=2", "given twice"), ("h?job=x", "job id"),
                     ("h?partition=a b", "takes a name")):
        with pytest.raises(ValueError, match=why):
            slurm_spec.Spec.parse(bad)


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


def test_allocation_options_become_salloc_arguments():
    assert slurm.salloc_args({"nodes": "1", "ntasks": "2", "ntasks_per_node": "2", "gres": "gpu:a100:2",
                              "exclusive": "true", "time": "1h"}) \
        == ["--nodes=1", "--ntasks=2", "--ntasks-per-node=2", "--gres=gpu:a100:2", "--exclusive",
            "--time=0-01:00:00"]
    assert slurm.salloc_args({"exclusive": "false"}) == []
    assert slurm.salloc_args({"extra": "--reservation=mine --comment 'two words'"}) \
        == ["--reservation=mine", "--comment", "two words"]  # split as a shell would
    s = slurm_spec.Spec.parse("h?ntasks=4&exclusive=yes&extra=--qos=high --begin=now")
    assert dict(s.options)["extra"] == "--qos=high --begin=now"
    for bad, why in (("h?ntasks=0", "whole number"), ("h?exclusive=maybe", "true or false"),
                     ("h?extra='open", "No closing quotation"), ("h?extra=reservation", "salloc options"),
                     ("h?gres=gpu 1", "Slurm's form")):
        with pytest.raises(ValueError, match=why):
            slurm_spec.Spec.parse(bad)


def test_salloc_refusals_are_one_line_of_every_error_slurm_gave():
    def r(out):
        return Result("x", 1, out, "", 0.0)

    assert slurm._explain("h", "salloc", r("salloc: unrecognized option '--bogus'\n"
                                            "Try \"salloc --help\" for more information\n")) \
        == "h: Slurm: unrecognized option '--bogus'"
    assert slurm._explain("h", "salloc", r("salloc: error: Memory specification can not be satisfied\n"
                                            "salloc: error: Job submit/allocate failed: Requested node "
                                            "configuration is not available\n")) \
        == "h: Slurm: Memory specification can not be satisfied; Requested node configuration is not available"


def test_pending_reasons_that_never_clear_by_themselves():
    def never(reason, **kw):
        return slurm.never_starts(None, "h", slurm.State("PENDING", reason, partition="gpu", **kw))

    assert "(5 nodes, 5 CPUs) does not fit partition gpu's" in never("PartitionConfig", num_nodes="5", num_cpus="5")
    assert "time= is over partition gpu's time limit" in never("PartitionTimeLimit")
    for reason in ("BadConstraints", "InvalidAccount", "InvalidQOS", "AccountNotAllowed", "QOSNotAllowed",
                   "DependencyNeverSatisfied", "ReservationDeleted", "MaxMemPerLimit",
                   "AssocMaxNodePerJobLimit", "QOSMaxWallDurationPerJobLimit", "QOSMaxGRESPerNode",
                   "AssocMaxCpuMinutesPerJobLimit", "QOSMinGRES"):
        assert never(reason), reason
    # these clear by themselves: other jobs end, nodes come back, a time comes, a hold is released
    for reason in ("Resources", "Priority", "Dependency", "BeginTime", "None", "",
                   "ReqNodeNotAvail, UnavailableNodes:n2", "NodeDown", "PartitionDown", "PartitionInactive",
                   "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions",
                   "JobHeldUser", "JobHeldAdmin", "AssocMaxJobsLimit", "AssocMaxSubmitJobLimit",
                   "AssocGrpCpuLimit", "QOSGrpNodeLimit", "QOSMaxCpuPerUserLimit", "QOSMaxJobsPerUserLimit",
                   "MaxCpuPerAccount", "Licenses", "Reservation"):
        assert never(reason) is None, reason
    assert slurm.never_starts(None, "h", slurm.State("RUNNING", "PartitionConfig")) is None


def test_an_alloc_takes_recover():
    from trainsh.recipe.parser import parse

    [alloc] = parse("host login = local\nslurm.alloc @login as cl nodes=1 recover=2\n", "r.recipe").steps
    assert alloc.option("recover") == "2" and alloc.option("nodes") == "1"
