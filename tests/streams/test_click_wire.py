"""A click decoded by msgspec (the well-formed ones) is exactly what the field-by-field parser
makes of the same bytes, and every payload the fast decoding passes on gets the parser's verdict."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.errors import InvalidEvent
from streams.events import Click, _parse_click, parse_click
from streams.testing.fuzzing import NOW, hostile_payloads

_FIELDS = ("event_id", "user_id", "item_id", "action", "ts", "category", "session_id")
#: JSON texts of values, the awkward ones included (as written, not as Python would print them).
_VALUES = st.sampled_from(
    [
        '"e-1"',
        '"u-7"',
        '"item-3"',
        '"view"',
        '"buy"',
        '"dislike"',
        '"Buy"',
        '""',
        '" e"',
        '"e "',
        '"\\u0000x"',
        '"a\\u007fb"',
        '"\\u00e9t\\u00e9"',
        '"\\ud83d\\uded2"',
        '"\\ud800"',
        '"好"',
        '"x\\ty"',
        '"' + "i" * 128 + '"',
        '"' + "i" * 129 + '"',
        "true",
        "false",
        "null",
        "[]",
        "{}",
        '["e"]',
        "0",
        "1800000000",
        '"1800000000"',
    ]
)
_TIMES = st.sampled_from(
    [
        "1800000000",
        "1800000000.5",
        "1.8e9",
        "18E8",
        "1799999999.999999999999999999",
        "946684800",
        "946684799.9999999",
        "1800086400",
        "1800086400.0000001",
        "1800086401",
        "-0",
        "1e400",
        "-1800000000",
        "NaN",
        "Infinity",
        "true",
        "null",
        '"1800000000"',
    ]
)
_EXTRAS = st.sampled_from(
    [
        '"x":1',
        '"x":"\\u0000"',
        '"x":[[[[1]]]]',
        '"x":' + "[" * 40 + "]" * 40,
        '"x":1' + "0" * 4400,
        '"x":1e999',
        '"x":"' + "é" * 10 + '"',
        '"ev\\u0065nt_id":"esc"',
        '"ts":null',
        '"category":null',
        '"category":"c"',
    ]
)


@st.composite
def clicks(draw: st.DrawFn) -> bytes:
    """A click's JSON with fields dropped, repeated, replaced by other values, extra ones added,
    and spacing varied: mostly well-formed, often not."""
    good = {"event_id": '"e-1"', "user_id": '"u-7"', "item_id": '"item-3"', "action": '"click"', "ts": "1800000000.25"}
    pairs = []
    for name in _FIELDS:
        roll = draw(st.integers(0, 7))
        value = good.get(name) if roll > 1 else draw(_TIMES if name == "ts" else _VALUES) if roll else None
        if value is not None:
            pairs.append(f'"{name}":{value}')
    pairs += draw(st.lists(_EXTRAS, max_size=2))
    if pairs and draw(st.booleans()):
        pairs.append(draw(st.sampled_from(pairs)))  # a key given twice: the last one counts
    order = draw(st.permutations(pairs))
    space = draw(st.sampled_from(["", " ", "\n\t "]))
    text = "{" + space + ("," + space).join(order) + space + "}"
    raw = text.encode("utf-8")
    if draw(st.booleans()):
        raw = raw.replace("é".encode(), b"\xe9")  # Latin-1, not UTF-8
    if draw(st.integers(0, 19)) == 0:
        raw += draw(st.sampled_from([b"\xff", b" x", b"\xef\xbb\xbf"]))
    return raw


def _verdict(parse, payload: bytes | None) -> Click | tuple[str, str]:
    try:
        return parse(payload, NOW)
    except InvalidEvent as exc:
        return exc.reason, str(exc)


_GOOD = b'"event_id":"e-1","user_id":"u-7","item_id":"item-3","action":"click","ts":1800000000.25'


@settings(max_examples=3000, deadline=None)
@given(payload=st.one_of(clicks(), hostile_payloads))
@example(payload=b"{" + _GOOD + b',"x":"\xe9t\xe9"}')  # not UTF-8 in a field msgspec skips
@example(payload=b"{" + _GOOD + b',"x":1' + b"0" * 4400 + b"}")  # more digits than json converts
@example(payload=b"{" + _GOOD + b',"x":' + b"[" * 40 + b"]" * 40 + b"}")  # deeper than DEPTH_MAX
@example(payload=b"{" + _GOOD.replace(b"1800000000.25", b"1800086400.0000001") + b"}")  # a day ahead, just
def test_a_click_parses_as_the_field_by_field_parser_parses_it(payload: bytes) -> None:
    fast, checked = _verdict(parse_click, payload), _verdict(_parse_click, payload)
    assert fast == checked
    if isinstance(fast, Click):
        assert isinstance(checked, Click) and repr(fast.ts) == repr(checked.ts)


def test_well_formed_clicks_take_the_fast_decoding_and_bad_ones_keep_their_messages() -> None:
    body = {"event_id": "e", "user_id": "u", "item_id": "i", "action": "view", "ts": NOW, "category": "c"}
    assert parse_click(json.dumps(body).encode(), NOW) == Click("e", "u", "i", "view", NOW, "c")
    assert _verdict(
        parse_click,
        json.dumps(body | {"action": "look"}).encode(),
    ) == (
        "unknown_action",
        "field 'action': expected one of buy, cart, click, dislike, fav, view, got 'look'",
    )
    assert _verdict(parse_click, json.dumps(body | {"user_id": " u"}).encode()) == (
        "out_of_range",
        "field 'user_id': ids must not contain control characters or edge spaces",
    )
    assert _verdict(parse_click, None) == ("json", "empty message: no value")
