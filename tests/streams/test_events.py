import json

import pytest

from streams.errors import InvalidEvent
from streams.events import (
    ID_MAX,
    IMPRESSION_ITEMS_MAX,
    PAYLOAD_MAX,
    TEXT_MAX,
    parse_click,
    parse_impression,
    parse_item,
    parse_review,
)

NOW = 1.8e9
CLICK = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": NOW - 5}
REVIEW = {"event_id": "r1", "user_id": "u1", "item_id": "i1", "text": "很好 great", "rating": 5, "ts": NOW}
ITEM = {"item_id": "i1", "category": "shoes", "title": "Boot", "price": 9.5, "in_stock": False}


def dump(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def with_(base: dict, **changes: object) -> bytes:
    obj = {**base, **changes}
    return dump({k: v for k, v in obj.items() if v is not ...})


def test_valid_events_parse():
    c = parse_click(with_(CLICK, category="shoes", session_id="s"), NOW)
    assert (c.user_id, c.action, c.category, c.session_id) == ("u1", "view", "shoes", "s")
    r = parse_review(dump(REVIEW), NOW)
    assert (r.text, r.rating) == ("很好 great", 5)
    i = parse_item(dump(ITEM), NOW)
    assert (i.in_stock, i.price, i.ts) == (False, 9.5, None)
    assert parse_item(dump({"item_id": "x", "category": "c"}), NOW).in_stock is True


def test_round_trip_through_json():
    c = parse_click(with_(CLICK, category="c"), NOW)
    assert parse_click(c.to_json(), NOW) == c
    r = parse_review(dump(REVIEW), NOW)
    assert parse_review(r.to_json(), NOW) == r


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (None, "json", "no value"),
        (b"", "json", "invalid JSON"),
        (b"\xff\xfe garbage", "encoding", "not UTF-8"),
        (b"{not json", "json", "invalid JSON"),
        (b"301780,543546,4181361,pv,15", "json", "invalid JSON"),  # a CSV line pasted as a value
        (b"[1, 2]", "not_object", "got array"),
        (b'"just a string"', "not_object", "got string"),
        (b"[" * 50_000 + b"]" * 50_000, "json", "nested deeper than"),
        (b"[" * 33 + b"]" * 33, "json", "nested deeper than"),
        (b"[" * 32 + b"]" * 32, "not_object", "got array"),
        (b'{"a": "' + b"[" * 40 + b'"}', "missing_field", "missing"),  # brackets inside a string
        (b'{"ts": NaN}', "json", "NaN"),
        (b'{"ts": Infinity}', "json", "Infinity"),
        (b"x" * (PAYLOAD_MAX + 1), "too_large", "exceeds"),
        (with_(CLICK, user_id=...), "missing_field", "'user_id': missing"),
        (with_(CLICK, user_id=None), "missing_field", "'user_id': missing"),
        (with_(CLICK, user_id=42), "wrong_type", "'user_id': expected a string, got number"),
        (with_(CLICK, user_id=""), "out_of_range", "must not be empty"),
        (with_(CLICK, user_id="u" * (ID_MAX + 1)), "out_of_range", "at most 128"),
        (with_(CLICK, item_id="a\nb"), "out_of_range", "control characters"),
        (with_(CLICK, event_id=" e"), "out_of_range", "edge spaces"),
        (with_(CLICK, action="purchase"), "unknown_action", "got 'purchase'"),
        (with_(CLICK, action=["view"]), "wrong_type", "'action'"),
        (with_(CLICK, ts="yesterday"), "wrong_type", "'ts'"),
        (with_(CLICK, ts=True), "wrong_type", "'ts'"),
        (with_(CLICK, ts=-1), "out_of_range", "'ts'"),
        (with_(CLICK, ts=15), "out_of_range", "'ts'"),
        (with_(CLICK, ts=1.7e12), "out_of_range", "'ts'"),  # milliseconds
        (with_(CLICK, ts=NOW + 2 * 86400), "out_of_range", "'ts'"),
        (b'{"event_id":"e","user_id":"u","item_id":"i","action":"view","ts":1e999}', "out_of_range", "'ts'"),
        (with_(CLICK, ts=10**400), "out_of_range", "'ts'"),
        (b'{"ts": ' + b"9" * 5000 + b"}", "json", "invalid JSON"),
        (with_(CLICK, category=7), "wrong_type", "'category'"),
    ],
)
def test_invalid_clicks_have_a_reason_and_a_precise_message(payload, reason, fragment):
    with pytest.raises(InvalidEvent) as exc:
        parse_click(payload, NOW)
    assert exc.value.reason == reason
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (with_(REVIEW, text=...), "missing_field", "'text': missing"),
        (with_(REVIEW, text=""), "out_of_range", "must not be empty"),
        (with_(REVIEW, text="x" * (TEXT_MAX + 1)), "out_of_range", "at most 10000"),
        (with_(REVIEW, rating=0), "out_of_range", "1..5"),
        (with_(REVIEW, rating=6), "out_of_range", "1..5"),
        (with_(REVIEW, rating=4.5), "wrong_type", "integer"),
        (with_(REVIEW, rating="5"), "wrong_type", "integer"),
        (with_(REVIEW, rating=True), "wrong_type", "integer"),
    ],
)
def test_invalid_reviews(payload, reason, fragment):
    with pytest.raises(InvalidEvent) as exc:
        parse_review(payload, NOW)
    assert exc.value.reason == reason
    assert fragment in str(exc.value)


def test_ten_thousand_cjk_characters_fit_even_escaped():
    text = "好" * TEXT_MAX
    payload = json.dumps({**REVIEW, "text": text}).encode()  # \\uXXXX escapes: 6 bytes a character
    assert parse_review(payload, NOW).text == text


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (with_(ITEM, category=...), "missing_field"),
        (with_(ITEM, price=-1), "out_of_range"),
        (with_(ITEM, price="cheap"), "wrong_type"),
        (with_(ITEM, in_stock="yes"), "wrong_type"),
        (with_(ITEM, ts="now"), "wrong_type"),
    ],
)
def test_invalid_items(payload, reason):
    with pytest.raises(InvalidEvent) as exc:
        parse_item(payload, NOW)
    assert exc.value.reason == reason


IMPRESSION = {"event_id": "s1", "user_id": "u1", "item_ids": ["a", "b", "a"], "ts": NOW}


def test_a_dislike_is_a_click_action_and_impressions_parse() -> None:
    assert parse_click(with_(CLICK, action="dislike"), NOW).action == "dislike"
    shown = parse_impression(dump(IMPRESSION), NOW)
    assert (shown.user_id, shown.item_ids) == ("u1", ("a", "b"))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (with_(IMPRESSION, item_ids=[]), "out_of_range"),
        (with_(IMPRESSION, item_ids=["ok", ""]), "out_of_range"),
        (with_(IMPRESSION, item_ids=["x"] * (IMPRESSION_ITEMS_MAX + 1)), "out_of_range"),
        (with_(IMPRESSION, item_ids=[1]), "wrong_type"),
        (with_(IMPRESSION, item_ids="a"), "wrong_type"),
        (with_(IMPRESSION, user_id=...), "missing_field"),
        (with_(IMPRESSION, ts=1.0), "out_of_range"),
    ],
)
def test_invalid_impressions(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as exc:
        parse_impression(payload, NOW)
    assert exc.value.reason == reason
