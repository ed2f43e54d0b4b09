"""Provider.wait_ready, the one wait every caller (train runpod start --wait, the NAME.wait step
and NAME:ID hosts, ow) shares: what a stopped or gone instance means, the timeout's words, and
the status changes it reports. No login here (login=False): the ssh side runs against real
sshd machines in the integration tests."""

from __future__ import annotations

import pytest

from trainsh.cloud import vast
from trainsh.cloud.provider import (GONE, RUNNING, STARTING, STOPPED, Instance, NotReady, Provider,
                                    SshEndpoint)


class Scripted(Provider):
    """A provider whose `get` answers the next state of a script (the last one for ever)."""

    name, title = "fake", "Fake"

    def __init__(self, *states: str, again: bool = False):
        self.states, self.again, self.gets = list(states), again, 0

    def get(self, instance_id):
        self.gets += 1
        status = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        ssh = SshEndpoint("root", "127.0.0.1", 22) if status == RUNNING else None
        return Instance("fake", instance_id, status, status.upper(), ssh=ssh)

    def starting_again(self, inst):
        return self.again

    search = create = list = start = stop = destroy = None


FAST = (0.001, 1.0, 0.001)


def test_a_running_instance_is_ready_and_each_status_change_is_said_once():
    heard = []
    p = Scripted(STARTING, STARTING, STARTING, RUNNING)
    inst = p.wait_ready("7", 5, login=False, say=heard.append, poll=FAST)
    assert inst.status == RUNNING and inst.ssh.port == 22
    assert heard == ["starting (STARTING)"] and p.gets == 4


def test_a_stopped_instance_nobody_starts_ends_the_wait_at_once():
    p = Scripted(STOPPED)
    with pytest.raises(NotReady) as e:
        p.wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "stopped" and p.gets == 1
    assert str(e.value) == "Fake: instance 7 is stopped while waiting for it to start"


def test_a_stopped_instance_being_started_is_waited_for():
    p = Scripted(STOPPED, STOPPED, RUNNING, again=True)
    assert p.wait_ready("7", 5, login=False, poll=FAST).status == RUNNING


def test_a_gone_instance_ends_the_wait_even_when_it_was_being_started():
    with pytest.raises(NotReady) as e:
        Scripted(STARTING, GONE, again=True).wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "gone" and e.value.inst.status == GONE


def test_the_timeout_names_what_it_saw_last():
    with pytest.raises(NotReady) as e:
        Scripted(STARTING).wait_ready("7", 0.05, login=False, poll=(0.01, 1.0, 0.01))
    assert e.value.why == "timeout" and e.value.status == "starting (STARTING)"
    assert str(e.value) == "Fake: instance 7 not ready after 0s (status starting)"


def test_the_first_look_may_be_an_instance_fresh_from_get():
    p = Scripted(STARTING)
    seen = Instance("fake", "7", RUNNING, "RUNNING", ssh=SshEndpoint("root", "127.0.0.1", 22))
    assert p.wait_ready("7", 5, login=False, seen=seen) is seen and p.gets == 0


@pytest.mark.parametrize(("intended", "again"), [("running", True), ("stopped", False)])
def test_a_stopped_vast_instance_is_starting_again_while_the_user_asks_it_to_run(intended, again):
    inst = vast.instance({"id": 9, "actual_status": "exited", "intended_status": intended,
                          "cur_state": "stopped"})
    assert inst.status == STOPPED
    assert vast.VastProvider(key="k").starting_again(inst) is again


def test_the_last_look_is_at_the_deadline_not_one_poll_before_it():
    # A poll longer than what is left used to end the wait early (a 20 s wait gave up at 16 s).
    p = Scripted(STARTING, RUNNING)
    inst = p.wait_ready("7", 0.3, login=False, poll=(5.0, 1.0, 5.0))
    assert inst.status == RUNNING and p.gets == 2


class VastScripted(vast.VastProvider):
    """Vast's own reading of a script of raw instances (the last one for ever)."""

    def __init__(self, *raws: dict):
        super().__init__(key="k")
        self.raws, self.gets = list(raws), 0

    def get(self, instance_id):
        self.gets += 1
        raw = self.raws.pop(0) if len(self.raws) > 1 else self.raws[0]
        return vast.instance({"id": int(instance_id), **raw})


def _raw(actual, intended="running", cur="running", msg=None):
    return {"actual_status": actual, "intended_status": intended, "cur_state": cur, "status_msg": msg,
            "ssh_host": "127.0.0.1", "ssh_port": 22}


@pytest.mark.parametrize(("actual", "why"), [("unknown", "unknown: no heartbeat from the host"),
                                             ("offline", "offline: the host is disconnected")])
def test_a_vast_instance_whose_host_is_lost_is_crashed_at_the_first_look(actual, why):
    # "exited", "unknown", "offline" "will never reach running" (vast-ai/docs hello-world.mdx)
    p = VastScripted(_raw(actual))
    with pytest.raises(NotReady) as e:
        p.wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "crashed" and e.value.last == why and p.gets == 1
    assert str(e.value) == f"Vast.ai: instance 7 crashed ({why})"


def test_a_vast_container_that_exits_after_loading_crashed():
    p = VastScripted(_raw("loading"), _raw("exited", msg="container exited\x1b[31m with code 1\n"))
    with pytest.raises(NotReady) as e:
        p.wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "crashed" and p.gets == 2
    assert e.value.last == "exited: the container stopped: container exited [31m with code 1"


def test_an_exited_vast_instance_asked_to_run_crashed_unless_this_process_just_started_it():
    # a stopped instance says "exited" as well; once started, intended_status is "running"
    # before the host acts: after a start of ours the wait goes on until it moves
    with pytest.raises(NotReady) as e:
        VastScripted(_raw("exited")).wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "crashed" and e.value.last == "exited: the container stopped"
    vast._STARTS.add("7")  # as VastProvider.start leaves it
    p = VastScripted(_raw("exited"), _raw("exited"), _raw("loading"), _raw("running"))
    assert p.wait_ready("7", 5, login=False, poll=FAST).status == RUNNING and p.gets == 4
    assert "7" not in vast._STARTS  # seen moving: the start was acted on
    vast._STARTS.add("7")
    with pytest.raises(NotReady) as e:
        VastScripted(_raw("exited"), _raw("loading"), _raw("exited")).wait_ready("7", 5, login=False,
                                                                                 poll=FAST)
    assert e.value.why == "crashed" and "7" not in vast._STARTS


def test_an_exited_vast_instance_whose_status_msg_names_an_error_crashed_at_once():
    # as the official CLI's own wait reads status_msg (vast-cli machines.py wait_for_instance)
    p = VastScripted(_raw("exited", msg="Error response from daemon: OCI runtime create failed"))
    with pytest.raises(NotReady) as e:
        p.wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "crashed" and "OCI runtime create failed" in e.value.last and p.gets == 1


def test_a_vast_instance_the_user_stopped_is_not_crashed():
    p = VastScripted(_raw("exited", "stopped", "stopped"))
    with pytest.raises(NotReady) as e:
        p.wait_ready("7", 5, login=False, poll=FAST)
    assert e.value.why == "stopped"
    assert p.crashed(p.get("7"), True) == ""
    assert p.crashed(vast.instance({"id": 7, **_raw("unknown", "stopped")}), True) == ""
