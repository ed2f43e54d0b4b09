"""Reading an answer with its expected shape (cloud/http.py Reply), and the small readers of
a server's words: what a wrong shape says, and that it is always one line."""

from __future__ import annotations

import email.utils
import time

import pytest

from trainsh.cloud.http import Reply, _retry_after, one_line
from trainsh.cloud.provider import LostAnswer, ProviderError


def reply(value, lost=False) -> Reply:
    return Reply(value, "Cloud", "GET things/", lost=lost)


def wrong(fn) -> str:
    with pytest.raises(ProviderError) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_values_of_the_expected_type_are_read_and_defaults_fill_missing_or_null():
    r = reply({"id": 7, "name": "a", "n": "2.5", "k": 3, "on": True, "sub": {"x": 1}, "rows": [{"y": 2}],
               "null": None})
    assert (r.ident(), r.text("name"), r.number("n"), r.number("k"), r.flag("on")) == ("7", "a", 2.5, 3, True)
    assert r.text("null", "-") == "-" and r.number("absent", None) is None and r.child("null") is None
    assert r.child("sub").number("x") == 1 and [c.number("y") for c in r.children("rows")] == [2]
    assert r.children("absent") == [] and r.has("sub") and not r.has("null")


@pytest.mark.parametrize(("value", "read", "says"), [
    ("oops", lambda r: r.obj(), "Cloud: GET things/: the answer is a string, not an object"),
    (None, lambda r: r.obj(), "the answer is empty, not an object"),
    ({"rows": {"a": 1}}, lambda r: r.children("rows"), "the answer's rows is an object, not a list"),
    ({"rows": [1]}, lambda r: r.children("rows"), "the answer's rows[0] is a number, not an object"),
    ({"rows": [{"name": 5}]}, lambda r: r.children("rows")[0].text("name"),
     "the answer's rows[0].name is a number, not a string"),
    ({"a": {"b": {"c": []}}}, lambda r: r.child("a").child("b").number("c"),
     "the answer's a.b.c is a list, not a number"),
    ({"n": True}, lambda r: r.number("n"), "the answer's n is true/false, not a number"),
    ({"n": "many"}, lambda r: r.number("n"), "the answer's n is a string, not a number"),
    ({"n": "nan"}, lambda r: r.number("n"), "the answer's n is a string, not a finite number"),
    ({"on": "yes"}, lambda r: r.flag("on"), "the answer's on is a string, not true or false"),
    ({}, lambda r: r.ident(), "the answer's id is missing, not an id"),
    ({"id": None}, lambda r: r.text("id"), "the answer's id is empty, not a string"),
    ([1], lambda r: r.each(), "the answer's item 0 is a number, not an object"),
])
def test_a_wrong_shape_names_the_cloud_the_call_and_where(value, read, says):
    assert says in wrong(lambda: read(reply(value)))
    assert wrong(lambda: read(reply(value))).startswith("Cloud: GET things/: ")


def test_a_wrong_shape_in_an_answer_that_acted_is_a_lost_answer():
    with pytest.raises(LostAnswer, match="the answer's data.pod.id is a list"):
        reply({"data": {"pod": {"id": [1]}}}, lost=True).child("data").child("pod").ident()
    with pytest.raises(ProviderError) as e:
        reply({"id": [1]}).ident()
    assert type(e.value) is ProviderError


def test_retry_after_in_seconds_or_as_a_date():
    assert _retry_after("3600") == 3600 and _retry_after("0.5") == 0.5 and _retry_after("-3") == 0
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < _retry_after(later) <= 121
    assert _retry_after(None) is None and _retry_after("soon") is None and _retry_after("nan") is None


def test_a_servers_words_become_one_short_line():
    assert one_line("a\nb\r\n  c") == "a b c"
    assert len(one_line("x" * 500)) == 200 and one_line("x" * 500).endswith("...")
