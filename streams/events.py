"""The input contracts: click, review and catalog events, shoppers' questions, merchandising rules,
impressions, and their validation.

Every consumed message goes through :func:`parse_click`, :func:`parse_review`, :func:`parse_item`,
:func:`parse_question`, :func:`parse_rule` or :func:`parse_impression` before anything else
touches it. They either return a typed event or raise :class:`InvalidEvent` with a short
``reason`` (a low-cardinality code for metrics) and a precise message (for the dead-letter
record). Nothing here knows about Faust or Kafka.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec

from model.experiments import ARMS_MAX, CURRENT, PINNED, RULES, TRAINER, Arm, Experiment
from model.rules import KINDS, Rule, Segment
from model.trainer_variants import NAME as VARIANT_NAME
from state.user import ACTIONS as USER_ACTIONS
from streams.errors import InvalidEvent

ACTIONS = frozenset(USER_ACTIONS)
#: A click that is negative feedback, not an engagement: the item is demoted for the user, and the
#: model's inputs, the user's history and the training examples never see it.
DISLIKE = "dislike"
#: What the clicks topic accepts: the engagement actions and a dislike.
CLICK_ACTIONS = ACTIONS | {DISLIKE}
#: Items one impression may list.
IMPRESSION_ITEMS_MAX = 1_000
ID_MAX = 128
TEXT_MAX = 10_000
TITLE_MAX = 1_000
#: An item's ``attributes``: at most this many, names of at most ATTRIBUTE_NAME_MAX characters,
#: string values of at most ATTRIBUTE_VALUE_MAX.
ATTRIBUTES_MAX = 32
ATTRIBUTE_NAME_MAX = 64
ATTRIBUTE_VALUE_MAX = 200
#: A shopper's question to the guide, in characters.
QUESTION_MAX = 1_000
#: A rule lists at most this many items (a segment this many users), pins at most this deep, and
#: promotes into at most this many slots; a boost's factor is in (0, RULE_FACTOR_MAX].
RULE_ITEMS_MAX = 1_000
RULE_USERS_MAX = 10_000
RULE_POSITION_MAX = 1_000
RULE_SLOTS_MAX = 100
RULE_FACTOR_MAX = 1_000.0
#: Larger payloads are refused before parsing (10,000 CJK characters as \\u escapes fit well).
PAYLOAD_MAX = 256 * 1024
# Deeper JSON is refused before parsing. A fixed limit keeps the verdict the same wherever the parser
# runs: Python's recursion limit would otherwise decide it, and that depends on the caller's stack.
DEPTH_MAX = 32
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")
#: Timestamps further ahead of the worker's clock than this are refused (clock skew allowance).
MAX_FUTURE_S = 86_400.0
#: Timestamps before this (2000-01-01) are refused: no shop replays older traffic, and a value in
#: milliseconds or a small integer is a producer bug better caught at the door.
MIN_TS = 946_684_800.0


REASONS = (
    "too_large",
    "encoding",
    "json",
    "not_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "unknown_action",
)


@dataclass(frozen=True, slots=True)
class Click:
    event_id: str
    user_id: str
    item_id: str
    action: str
    ts: float
    category: str | None = None
    session_id: str | None = None

    def to_json(self) -> bytes:
        return compact_json({k: v for k, v in asdict(self).items() if v is not None})


@dataclass(frozen=True, slots=True)
class Review:
    event_id: str
    user_id: str
    item_id: str
    text: str
    ts: float
    rating: int | None = None

    def to_json(self) -> bytes:
        return compact_json({k: v for k, v in asdict(self).items() if v is not None})


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    category: str
    title: str | None = None
    price: float | None = None
    in_stock: bool = True
    ts: float | None = None
    attributes: dict[str, str | float] | None = field(default=None, hash=False)

    def to_json(self) -> bytes:
        return compact_json({k: v for k, v in asdict(self).items() if v is not None})


@dataclass(frozen=True, slots=True)
class Impression:
    """Items shown to a shopper together (a page of recommendations, a carousel)."""

    event_id: str
    user_id: str
    item_ids: tuple[str, ...]
    ts: float


@dataclass(frozen=True, slots=True)
class Question:
    """A shopper's question to the guide (``POST /ask`` or ``shopguide.questions``)."""

    user_id: str
    text: str
    item_id: str | None = None
    lang: str | None = None
    event_id: str | None = None


def parse_click(payload: bytes | None, now: float | None = None) -> Click:
    """A click. A well-formed one is decoded straight into its typed fields; anything else goes
    through the field-by-field parser, which says what is wrong with it."""
    if payload is not None:
        wire = _wire_click(payload)
        if wire is not None:
            ts = wire.ts
            limit = (time.time() if now is None else now) + MAX_FUTURE_S
            category, session_id = wire.category, wire.session_id
            if (
                wire.action in CLICK_ACTIONS
                and MIN_TS <= ts <= limit
                and id_error(wire.event_id) is None
                and id_error(wire.user_id) is None
                and id_error(wire.item_id) is None
                and (category is None or 0 < len(category) <= ID_MAX)
                and (session_id is None or 0 < len(session_id) <= ID_MAX)
            ):
                return Click(wire.event_id, wire.user_id, wire.item_id, wire.action, ts, category, session_id)
    return _parse_click(payload, now)


class _WireClick(msgspec.Struct):
    """A click's fields as JSON types (any other fields are ignored, as the parser ignores them)."""

    event_id: str
    user_id: str
    item_id: str
    action: str
    ts: float
    category: str | None = None
    session_id: str | None = None


_CLICKS = msgspec.json.Decoder(_WireClick)
#: Shorter payloads cannot hold an integer literal longer than Python's default limit on the
#: digits it converts (4,300), which makes ``json`` refuse what msgspec would skip.
_WIRE_MAX = 4_096


def _wire_click(payload: bytes) -> _WireClick | None:
    """The payload decoded by msgspec when ``json`` would decode it to the same fields: short,
    UTF-8 throughout (msgspec does not check the fields it skips), few brackets; None otherwise,
    or when msgspec refuses it (a field of another type, a literal ``json`` may accept)."""
    if len(payload) > _WIRE_MAX or payload.count(b"[") + payload.count(b"{") > DEPTH_MAX:
        return None
    try:
        payload.decode("utf-8")
        return _CLICKS.decode(payload)
    except (UnicodeDecodeError, msgspec.DecodeError):
        return None


def _parse_click(payload: bytes | None, now: float | None) -> Click:
    obj = _load(payload)
    action = _str(obj, "action", 16)
    if action not in CLICK_ACTIONS:
        raise InvalidEvent(
            "unknown_action",
            f"field 'action': expected one of {', '.join(sorted(CLICK_ACTIONS))}, got {action!r}",
        )
    return Click(
        event_id=_id(obj, "event_id"),
        user_id=_id(obj, "user_id"),
        item_id=_id(obj, "item_id"),
        action=action,
        ts=_ts(obj, now),
        category=_opt_str(obj, "category", ID_MAX),
        session_id=_opt_str(obj, "session_id", ID_MAX),
    )


def parse_review(payload: bytes | None, now: float | None = None) -> Review:
    obj = _load(payload)
    rating = obj.get("rating")
    if rating is not None:
        if type(rating) is not int:
            raise InvalidEvent("wrong_type", f"field 'rating': expected an integer 1..5, got {_kind(rating)}")
        if not 1 <= rating <= 5:
            raise InvalidEvent("out_of_range", f"field 'rating': must be 1..5, got {rating}")
    return Review(
        event_id=_id(obj, "event_id"),
        user_id=_id(obj, "user_id"),
        item_id=_id(obj, "item_id"),
        text=_str(obj, "text", TEXT_MAX),
        ts=_ts(obj, now),
        rating=rating,
    )


def parse_item(payload: bytes | None, now: float | None = None) -> Item:
    obj = _load(payload)
    price = obj.get("price")
    if price is not None:
        if not _is_number(price):
            raise InvalidEvent("wrong_type", f"field 'price': expected a number, got {_kind(price)}")
        if _finite(price) is None or price < 0:
            raise InvalidEvent("out_of_range", f"field 'price': must be finite and >= 0, got {str(price)[:40]}")
    in_stock = obj.get("in_stock", True)
    if in_stock is None:
        in_stock = True
    if type(in_stock) is not bool:
        raise InvalidEvent("wrong_type", f"field 'in_stock': expected true or false, got {_kind(in_stock)}")
    return Item(
        item_id=_id(obj, "item_id"),
        category=_str(obj, "category", ID_MAX),
        title=_opt_str(obj, "title", TITLE_MAX),
        price=float(price) if price is not None else None,
        in_stock=in_stock,
        ts=_ts(obj, now) if obj.get("ts") is not None else None,
        attributes=_attributes(obj.get("attributes")),
    )


def parse_impression(payload: bytes | None, now: float | None = None) -> Impression:
    """Items shown to a user: 1..IMPRESSION_ITEMS_MAX valid ids (repeats count once)."""
    obj = _load(payload)
    return Impression(
        event_id=_id(obj, "event_id"),
        user_id=_id(obj, "user_id"),
        item_ids=_ids(obj, "item_ids", IMPRESSION_ITEMS_MAX),
        ts=_ts(obj, now),
    )


def parse_question(payload: bytes | None, *, need_event_id: bool) -> Question:
    """A question of 1..QUESTION_MAX characters of text (not blank, no control characters other
    than line breaks and tabs: binary pasted into a chat box is refused); the Kafka topic's
    questions also carry an ``event_id``."""
    obj = _load(payload)
    text = _str(obj, "text", QUESTION_MAX)
    if not text.strip():
        raise InvalidEvent("out_of_range", "field 'text': must not be blank")
    if any((ord(ch) < 32 and ch not in "\n\r\t") or ord(ch) == 127 or ch == "\ufffd" for ch in text):
        raise InvalidEvent("encoding", "field 'text': contains control characters or undecodable bytes (binary?)")
    lang = _opt_str(obj, "lang", 8)
    if lang is not None and lang not in ("zh", "en"):
        raise InvalidEvent("out_of_range", f"field 'lang': expected zh or en, got {lang!r}")
    return Question(
        user_id=_id(obj, "user_id"),
        text=text,
        item_id=_id(obj, "item_id") if obj.get("item_id") is not None else None,
        lang=lang,
        event_id=_id(obj, "event_id") if need_event_id or obj.get("event_id") is not None else None,
    )


def parse_rule(payload: bytes | None, key: str | None = None) -> Rule:
    """A merchandising rule (the README's forms); ``key``, when given, must be its ``rule_id``."""
    obj = _load(payload)
    rule_id = _id(obj, "rule_id")
    if key is not None and key != rule_id:
        raise InvalidEvent("out_of_range", f"field 'rule_id': {rule_id!r} is not the message key {key[:40]!r}")
    kind = _str(obj, "kind", 16)
    if kind not in KINDS:
        raise InvalidEvent("out_of_range", f"field 'kind': expected one of {', '.join(KINDS)}, got {kind!r}")
    start, end = _opt_rule_ts(obj, "start_ts"), _opt_rule_ts(obj, "end_ts")
    if start is not None and end is not None and start >= end:
        raise InvalidEvent("out_of_range", "fields 'start_ts', 'end_ts': the start must be before the end")
    common: dict[str, Any] = {"rule_id": rule_id, "kind": kind, "start_ts": start, "end_ts": end}
    common["segment"] = _segment(obj.get("segment"))
    if kind == "pin":
        position = _int(obj, "position", 1, RULE_POSITION_MAX)
        return Rule(item_ids=(_id(obj, "item_id"),), position=position, **common)
    if kind == "promote":
        slots = _int(obj, "slots", 1, RULE_SLOTS_MAX)
        return Rule(item_ids=_ids(obj, "item_ids", RULE_ITEMS_MAX), slots=slots, **common)
    if (obj.get("category") is None) == (obj.get("item_ids") is None):
        raise InvalidEvent("missing_field", f"a {kind} rule needs exactly one of 'category' and 'item_ids'")
    if obj.get("category") is not None:
        common["category"] = _str(obj, "category", ID_MAX)
    else:
        common["item_ids"] = _ids(obj, "item_ids", RULE_ITEMS_MAX)
    if kind == "filter":
        return Rule(**common)
    factor = _present(obj, "factor")
    value = _number("factor", factor, "a number")
    if value is None or not 0.0 < value <= RULE_FACTOR_MAX:
        raise InvalidEvent("out_of_range", f"field 'factor': must be > 0 and <= {RULE_FACTOR_MAX:g}, got {factor}")
    return Rule(factor=value, **common)


def parse_experiment(payload: bytes | None, key: str | None = None) -> Experiment:
    """An experiment (the README's form); ``key``, when given, must be its ``experiment_id``."""
    obj = _load(payload)
    experiment_id = _id(obj, "experiment_id")
    if key is not None and key != experiment_id:
        raise InvalidEvent(
            "out_of_range", f"field 'experiment_id': {experiment_id!r} is not the message key {key[:40]!r}"
        )
    arms = _present(obj, "arms")
    if not isinstance(arms, list):
        raise InvalidEvent("wrong_type", f"field 'arms': expected an array, got {_kind(arms)}")
    if not 1 <= len(arms) <= ARMS_MAX:
        raise InvalidEvent("out_of_range", f"field 'arms': 1..{ARMS_MAX} arms, got {len(arms)}")
    shadow = obj.get("shadow")
    if shadow is not None:
        shadow = _id(obj, "shadow")
    experiment = Experiment(experiment_id, tuple(_arm(n, a) for n, a in enumerate(arms)), shadow)
    problem = experiment.problem()
    if problem is not None:
        raise InvalidEvent("out_of_range", problem)
    return experiment


def _arm(n: int, value: Any) -> Arm:
    if not isinstance(value, dict):
        raise InvalidEvent("wrong_type", f"field 'arms[{n}]': expected an object, got {_kind(value)}")
    try:
        name = _id(value, "name")
        share = _number("share", _present(value, "share"), "a number in [0, 1]")
        if share is None or not 0.0 <= share <= 1.0:
            raise InvalidEvent("out_of_range", f"field 'share': must be in [0, 1], got {value['share']}")
        model = CURRENT if value.get("model") is None else _str(value, "model", ID_MAX)
        pinned, variant = model.removeprefix(PINNED), model.removeprefix(TRAINER)
        if model != CURRENT and not (
            (model.startswith(PINNED) and pinned.isascii() and pinned.isdigit())
            or (model.startswith(TRAINER) and VARIANT_NAME.match(variant))
        ):
            raise InvalidEvent(
                "out_of_range", f"field 'model': 'current', 'pinned:<version>' or 'trainer:<variant>', got {model!r}"
            )
        rules = "all" if value.get("rules") is None else _str(value, "rules", 8)
        if rules not in RULES:
            raise InvalidEvent("out_of_range", f"field 'rules': 'all' or 'none', got {rules!r}")
    except InvalidEvent as exc:
        raise InvalidEvent(exc.reason, f"arms[{n}]: {exc}") from None
    return Arm(name, share, model, rules)


def _segment(value: Any) -> Segment | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidEvent("wrong_type", f"field 'segment': expected an object, got {_kind(value)}")
    if (value.get("interest") is None) == (value.get("user_ids") is None):
        raise InvalidEvent("missing_field", "field 'segment': needs exactly one of 'interest' and 'user_ids'")
    if value.get("interest") is not None:
        return Segment(interest=_str(value, "interest", ID_MAX))
    return Segment(user_ids=frozenset(_ids(value, "user_ids", RULE_USERS_MAX)))


def _ids(obj: dict[str, Any], name: str, most: int) -> tuple[str, ...]:
    value = _present(obj, name)
    if not isinstance(value, list):
        raise InvalidEvent("wrong_type", f"field {name!r}: expected an array of ids, got {_kind(value)}")
    if not 1 <= len(value) <= most:
        raise InvalidEvent("out_of_range", f"field {name!r}: {len(value)} ids, expected 1..{most}")
    for v in value:
        if not isinstance(v, str):
            raise InvalidEvent("wrong_type", f"field {name!r}: expected ids (strings), got {_kind(v)}")
        error = id_error(v)
        if error:
            raise InvalidEvent("out_of_range", f"field {name!r}: {error}")
    return tuple(dict.fromkeys(value))


def _int(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = _present(obj, name)
    if type(value) is not int:
        raise InvalidEvent("wrong_type", f"field {name!r}: expected an integer {low}..{high}, got {_kind(value)}")
    if not low <= value <= high:
        raise InvalidEvent("out_of_range", f"field {name!r}: must be {low}..{high}, got {value}")
    return value


def _opt_rule_ts(obj: dict[str, Any], name: str) -> float | None:
    """A rule's optional unix-seconds bound (any time after 2000-01-01: rules are set ahead)."""
    value = obj.get(name)
    if value is None:
        return None
    ts = _number(name, value, "unix seconds (a number)")
    if ts is None or ts < MIN_TS:
        raise InvalidEvent("out_of_range", f"field {name!r}: {str(value)[:40]} is not unix seconds after 2000-01-01")
    return ts


def _attributes(value: Any) -> dict[str, str | float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidEvent("wrong_type", f"field 'attributes': expected an object, got {_kind(value)}")
    if len(value) > ATTRIBUTES_MAX:
        raise InvalidEvent("out_of_range", f"field 'attributes': {len(value)} entries, at most {ATTRIBUTES_MAX}")
    out: dict[str, str | float] = {}
    for name, v in value.items():
        if not name or len(name) > ATTRIBUTE_NAME_MAX or _has_control(name):
            raise InvalidEvent(
                "out_of_range",
                f"field 'attributes': names are 1..{ATTRIBUTE_NAME_MAX} characters without control characters",
            )
        if isinstance(v, str):
            if len(v) > ATTRIBUTE_VALUE_MAX:
                raise InvalidEvent(
                    "out_of_range",
                    f"field 'attributes.{name[:40]}': {len(v)} characters, at most {ATTRIBUTE_VALUE_MAX}",
                )
            out[name] = v
        elif _is_number(v):
            if _finite(v) is None:
                raise InvalidEvent("out_of_range", f"field 'attributes.{name[:40]}': must be finite")
            out[name] = v
        else:
            raise InvalidEvent(
                "wrong_type", f"field 'attributes.{name[:40]}': expected a string or a number, got {_kind(v)}"
            )
    return out


def forget_request(user_id: str) -> bytes:
    """A request to erase everything the engine keeps about a user (``shopguide forget``), sent to
    the forget topic keyed by the user id."""
    return compact_json({"user_id": user_id})


def parse_forget(payload: bytes | None) -> str:
    """The user id of a forget request."""
    return _id(_load(payload), "user_id")


def _reject_constant(name: str) -> Any:
    raise InvalidEvent("json", f"invalid JSON: {name} is not a number JSON allows")


def _load(payload: bytes | None) -> dict[str, Any]:
    if payload is None:
        raise InvalidEvent("json", "empty message: no value")
    if len(payload) > PAYLOAD_MAX:
        raise InvalidEvent("too_large", f"payload of {len(payload)} bytes exceeds {PAYLOAD_MAX}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            "encoding", f"payload is not UTF-8: byte 0x{payload[exc.start]:02x} at position {exc.start}"
        ) from None
    if _depth(text) > DEPTH_MAX:
        raise InvalidEvent("json", f"invalid JSON: nested deeper than {DEPTH_MAX} levels")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except InvalidEvent:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidEvent("json", f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise InvalidEvent("json", f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"expected a JSON object, got {_kind(obj)}")
    return obj


def _depth(text: str) -> int:
    """Deepest bracket nesting outside strings; cheap when there are few brackets at all."""
    if text.count("[") + text.count("{") <= DEPTH_MAX:
        return 0
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _has_control(value: str) -> bool:
    """Whether ``value`` holds a control character (code point below 32, or 127)."""
    return _CONTROL.search(value) is not None


def _str(obj: dict[str, Any], name: str, max_len: int) -> str:
    value = _present(obj, name)
    if not isinstance(value, str):
        raise InvalidEvent("wrong_type", f"field {name!r}: expected a string, got {_kind(value)}")
    if not value:
        raise InvalidEvent("out_of_range", f"field {name!r}: must not be empty")
    if len(value) > max_len:
        raise InvalidEvent("out_of_range", f"field {name!r}: {len(value)} characters, at most {max_len}")
    return value


def id_error(value: str) -> str | None:
    """Why ``value`` is not a valid id (the rule of every contract and of the HTTP API), or None."""
    if not value or len(value) > ID_MAX:
        return f"ids are 1..{ID_MAX} characters"
    if value.strip() != value or _has_control(value):
        return "ids must not contain control characters or edge spaces"
    return None


def _id(obj: dict[str, Any], name: str) -> str:
    value = _str(obj, name, ID_MAX)
    error = id_error(value)
    if error:
        raise InvalidEvent("out_of_range", f"field {name!r}: {error}")
    return value


def _opt_str(obj: dict[str, Any], name: str, max_len: int) -> str | None:
    if obj.get(name) is None:
        return None
    return _str(obj, name, max_len)


def _finite(value: int | float) -> float | None:
    """The value as a float, or None when it is NaN, infinite or too large for a float."""
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _present(obj: dict[str, Any], name: str) -> Any:
    """The field's value; a ``missing_field`` error when it is absent or null."""
    value = obj.get(name)
    if value is None:
        raise InvalidEvent("missing_field", f"field {name!r}: missing")
    return value


def _number(name: str, value: Any, expected: str) -> float | None:
    """``value`` as a float (None when it is not finite); a ``wrong_type`` error when it is not
    a number."""
    if not _is_number(value):
        raise InvalidEvent("wrong_type", f"field {name!r}: expected {expected}, got {_kind(value)}")
    return _finite(value)


def _ts(obj: dict[str, Any], now: float | None) -> float:
    value = _present(obj, "ts")
    ts = _number("ts", value, "unix seconds (a number)")
    limit = (time.time() if now is None else now) + MAX_FUTURE_S
    if ts is None or ts < MIN_TS or ts > limit:
        raise InvalidEvent(
            "out_of_range",
            f"field 'ts': {str(value)[:40]} is not unix seconds between 2000-01-01 and a day from now",
        )
    return ts


#: What ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`` builds on every call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def compact_json(obj: Any) -> bytes:
    """UTF-8 JSON without spaces or ASCII escapes: the form of every message the engine writes."""
    return _COMPACT.encode(obj).encode("utf-8")
