"""The rules topic's contract: each form of the README parses, every broken one is refused with a
reason, and records (puts, invalid puts, tombstones) fold into a book the way compaction leaves them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model.rules import RuleBook, Segment
from streams.errors import InvalidEvent
from streams.events import parse_rule
from streams.metrics import Metrics
from streams.processors.base import Incoming
from streams.processors.merchandising import RuleProcessor, apply_rule_record
from streams.settings import Settings
from streams.topics import Topics

TOPICS = Topics(Settings())


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_the_readme_forms_parse() -> None:
    pin = parse_rule(dump({"rule_id": "r1", "kind": "pin", "item_id": "x", "position": 1}))
    assert (pin.kind, pin.item_ids, pin.position) == ("pin", ("x",), 1)
    assert parse_rule(dump({"rule_id": "r2", "kind": "filter", "category": "c"})).category == "c"
    assert parse_rule(dump({"rule_id": "r2", "kind": "filter", "item_ids": ["a", "b", "a"]})).item_ids == ("a", "b")
    boost = parse_rule(dump({"rule_id": "r3", "kind": "boost", "category": "c", "factor": 2}))
    assert boost.factor == 2.0 and isinstance(boost.factor, float)
    promote = parse_rule(
        dump(
            {
                "rule_id": "r4",
                "kind": "promote",
                "item_ids": ["a", "b"],
                "slots": 2,
                "start_ts": 1.8e9,
                "end_ts": 1.9e9,
                "segment": {"interest": "shoes"},
            }
        ),
        "r4",
    )
    assert (promote.slots, promote.start_ts, promote.end_ts) == (2, 1.8e9, 1.9e9)
    assert promote.segment == Segment(interest="shoes")
    users = parse_rule(dump({"rule_id": "r5", "kind": "filter", "category": "c", "segment": {"user_ids": ["u1"]}}))
    assert users.segment == Segment(user_ids=frozenset({"u1"}))


PIN = {"rule_id": "r1", "kind": "pin", "item_id": "x", "position": 1}


@pytest.mark.parametrize(
    ("changes", "reason", "says"),
    [
        ({"kind": "teleport"}, "out_of_range", "field 'kind'"),
        ({"kind": None}, "missing_field", "field 'kind'"),
        ({"rule_id": ""}, "out_of_range", "field 'rule_id'"),
        ({"position": 0}, "out_of_range", "field 'position'"),
        ({"position": 1.5}, "wrong_type", "field 'position'"),
        ({"position": True}, "wrong_type", "field 'position'"),
        ({"item_id": None}, "missing_field", "field 'item_id'"),
        ({"start_ts": 2e9, "end_ts": 1.9e9}, "out_of_range", "start must be before the end"),
        ({"end_ts": 12}, "out_of_range", "field 'end_ts'"),
        ({"end_ts": "soon"}, "wrong_type", "field 'end_ts'"),
        ({"segment": []}, "wrong_type", "field 'segment'"),
        ({"segment": {}}, "missing_field", "field 'segment'"),
        ({"segment": {"interest": "a", "user_ids": ["u"]}}, "missing_field", "field 'segment'"),
        ({"segment": {"user_ids": [1]}}, "wrong_type", "field 'user_ids'"),
        ({"segment": {"user_ids": []}}, "out_of_range", "field 'user_ids'"),
    ],
)
def test_broken_rules_are_refused_with_a_reason(changes: dict[str, Any], reason: str, says: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_rule(dump({**PIN, **changes}))
    assert err.value.reason == reason and says in str(err.value)


@pytest.mark.parametrize(
    ("rule", "reason", "says"),
    [
        ({"kind": "filter"}, "missing_field", "exactly one of 'category' and 'item_ids'"),
        ({"kind": "filter", "category": "c", "item_ids": ["a"]}, "missing_field", "exactly one"),
        ({"kind": "filter", "item_ids": "a"}, "wrong_type", "field 'item_ids'"),
        ({"kind": "filter", "item_ids": [" a"]}, "out_of_range", "edge spaces"),
        ({"kind": "boost", "category": "c"}, "missing_field", "field 'factor'"),
        ({"kind": "boost", "category": "c", "factor": 0}, "out_of_range", "field 'factor'"),
        ({"kind": "boost", "category": "c", "factor": -2}, "out_of_range", "field 'factor'"),
        ({"kind": "boost", "category": "c", "factor": 1e300}, "out_of_range", "field 'factor'"),
        ({"kind": "boost", "category": "c", "factor": "2"}, "wrong_type", "field 'factor'"),
        ({"kind": "promote", "item_ids": ["a"]}, "missing_field", "field 'slots'"),
        ({"kind": "promote", "item_ids": ["a"], "slots": 101}, "out_of_range", "field 'slots'"),
        ({"kind": "promote", "slots": 1}, "missing_field", "field 'item_ids'"),
    ],
)
def test_each_kind_checks_its_fields(rule: dict[str, Any], reason: str, says: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_rule(dump({"rule_id": "r", **rule}))
    assert err.value.reason == reason and says in str(err.value)


def test_the_key_must_be_the_rule_id() -> None:
    with pytest.raises(InvalidEvent, match="not the message key"):
        parse_rule(dump(PIN), "r2")
    for payload, reason in ((b"{", "json"), (b"[]", "not_object"), (b"\xff", "encoding")):
        with pytest.raises(InvalidEvent) as err:
            parse_rule(payload, "r1")
        assert err.value.reason == reason


def test_records_fold_as_compaction_leaves_them() -> None:
    book = RuleBook()
    assert apply_rule_record(book, b"r1", dump(PIN)) is None
    assert [r.rule_id for r in book.rules()] == ["r1"]
    problem = apply_rule_record(book, b"r1", dump({**PIN, "position": -1}))
    assert problem is not None and problem.reason == "out_of_range"
    assert len(book) == 0  # the invalid latest record is the key's only survivor of compaction
    apply_rule_record(book, b"r1", dump(PIN))
    assert apply_rule_record(book, b"r1", None) is None and len(book) == 0
    assert apply_rule_record(book, b"never", None) is None
    missing = apply_rule_record(book, None, dump(PIN))
    assert missing is not None and missing.reason == "missing_field"


def test_the_rules_agent_dead_letters_invalid_records_only() -> None:
    msgs = [
        Incoming(TOPICS.rules, 0, 0, b"r1", dump(PIN)),
        Incoming(TOPICS.rules, 0, 1, b"r1", None),
        Incoming(TOPICS.rules, 1, 7, b"r9", dump({**PIN, "rule_id": "r9", "kind": "shove"})),
    ]
    out = RuleProcessor(TOPICS, 4, Metrics(), lambda: 1.8e9).process(msgs)
    assert len(out) == 1 and out[0].topic == TOPICS.deadletter
    letter = json.loads(out[0].value or b"")
    assert (letter["source_topic"], letter["offset"], letter["reason"]) == (TOPICS.rules, 7, "out_of_range")
    assert "field 'kind'" in letter["error"]
