"""The question contract (HTTP body and ``shopguide.questions``) and items' optional attributes."""

import json

import pytest

from streams.events import QUESTION_MAX, InvalidEvent, parse_item, parse_question


def dump(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def test_a_question_parses_with_its_optional_fields():
    q = parse_question(
        dump({"user_id": "u1", "text": "电池怎么样", "item_id": "i1", "lang": "zh"}), need_event_id=False
    )
    assert (q.user_id, q.text, q.item_id, q.lang, q.event_id) == ("u1", "电池怎么样", "i1", "zh", None)
    q = parse_question(dump({"user_id": "u1", "text": "ship?\nfast?", "event_id": "q1"}), need_event_id=True)
    assert (q.item_id, q.event_id) == (None, "q1")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "json"),
        (b"not json", "json"),
        (b"\xff\xfe\x00binary", "encoding"),
        (b"[1, 2]", "not_object"),
        (dump({"user_id": "u1", "text": ""}), "out_of_range"),
        (dump({"user_id": "u1", "text": "   "}), "out_of_range"),
        (dump({"user_id": "u1", "text": "x" * (QUESTION_MAX + 1)}), "out_of_range"),
        (dump({"user_id": "u1", "text": "a\x00\x01b"}), "encoding"),
        (dump({"user_id": "u1"}), "missing_field"),
        (dump({"text": "hi"}), "missing_field"),
        (dump({"user_id": "u1", "text": 5}), "wrong_type"),
        (dump({"user_id": "u1", "text": "hi", "lang": "fr"}), "out_of_range"),
        (dump({"user_id": "u1", "text": "hi", "item_id": ""}), "out_of_range"),
    ],
)
def test_bad_questions_are_refused_with_a_reason(payload: bytes, reason: str):
    with pytest.raises(InvalidEvent) as exc:
        parse_question(payload, need_event_id=False)
    assert exc.value.reason == reason


def test_kafka_questions_need_an_event_id():
    with pytest.raises(InvalidEvent) as exc:
        parse_question(dump({"user_id": "u1", "text": "hi"}), need_event_id=True)
    assert exc.value.reason == "missing_field"


def test_item_attributes_are_bounded_strings_and_numbers():
    item = parse_item(dump({"item_id": "i1", "category": "shoes", "attributes": {"尺码": "42", "weight_g": 310}}))
    assert item.attributes == {"尺码": "42", "weight_g": 310}
    assert json.loads(item.to_json())["attributes"] == {"尺码": "42", "weight_g": 310}
    assert parse_item(dump({"item_id": "i1", "category": "shoes"})).attributes is None
    for bad, reason in [
        ([1], "wrong_type"),
        ({"a": True}, "wrong_type"),
        ({"a": {"b": 1}}, "wrong_type"),
        ({"a": "x" * 201}, "out_of_range"),
        ({"": "x"}, "out_of_range"),
        ({f"k{i}": i for i in range(33)}, "out_of_range"),
    ]:
        with pytest.raises(InvalidEvent) as exc:
            parse_item(dump({"item_id": "i1", "category": "shoes", "attributes": bad}))
        assert exc.value.reason == reason, bad
