"""Hypothesis strategies for hostile input, shared by the unit and the fault-injection tests:
random bytes, deeply nested JSON, huge strings, NaN and infinities, wrong types, unicode edge
cases, 10 KB ids, negative and far-future timestamps, mixed with valid events.

Needs the ``test`` extra (hypothesis), like the tests that use it.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from state.user import ACTIONS as USER_ACTIONS

ACTIONS = list(USER_ACTIONS)
NOW = 1.8e9

_unicode_edges = st.sampled_from(
    ["", " ", "\x00", "\u202e", "\ud7ff", "\ufeff", "é", "好", "🛒", "a\nb", "x" * 129, "y" * 10_240]
)
ids = st.one_of(
    st.text(min_size=1, max_size=12, alphabet=st.characters(min_codepoint=48, max_codepoint=122)),
    _unicode_edges,
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
timestamps = st.one_of(
    st.floats(min_value=NOW - 86400, max_value=NOW),
    st.just(float("nan")),
    st.just(float("inf")),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.just(NOW * 1000),
    st.just(-1.0),
    st.text(max_size=5),
    st.booleans(),
)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def valid_click(n: int) -> dict[str, Any]:
    return {
        "event_id": f"fz-{n}",
        "user_id": f"fz-u{n % 17}",
        "item_id": f"fz-i{n % 23}",
        "action": ACTIONS[n % 5],
        "ts": NOW - 60 + n % 50,
    }


hostile_objects = st.fixed_dictionaries(
    {},
    optional={
        "event_id": ids,
        "user_id": ids,
        "item_id": ids,
        "action": st.one_of(st.sampled_from(ACTIONS), st.text(max_size=8), st.integers()),
        "ts": timestamps,
        "category": st.one_of(st.text(max_size=20), st.integers(), st.none()),
        "text": st.one_of(st.text(max_size=50), st.just("z" * 10_001), st.integers()),
        "rating": st.one_of(st.integers(min_value=-3, max_value=8), st.floats(), st.text(max_size=2)),
    },
)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


hostile_payloads = st.one_of(
    st.binary(max_size=300),
    hostile_objects.map(_json),
    st.integers(min_value=1, max_value=200_000).map(_nested),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
    st.just(b"301780,543546,4181361,pv,15"),
    st.just(b'{"ts": NaN}'),
    st.just(b'{"event_id": "' + b"e" * 300_000 + b'"}'),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=20,
    ).map(_json),
)
