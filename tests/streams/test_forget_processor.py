"""Forgetting a user, as pure logic: the state goes (a delete, which the table turns into a
changelog tombstone), the latest recommendation gets a tombstone, bad requests are dead-lettered."""

from __future__ import annotations

import json

from streams.events import forget_request
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.processors.base import Incoming
from streams.processors.users import ForgetProcessor
from streams.settings import Settings
from streams.testing.memory_store import MemoryStore
from streams.topics import Topics

N = 4
TOPICS = Topics(Settings())


def request(payload: bytes, key: str, partition: int | None = None) -> Incoming:
    p = partition_for(key, N) if partition is None else partition
    return Incoming(TOPICS.forget, p, 0, key.encode(), payload, None, 0)


def test_a_user_is_forgotten_and_the_recommendation_tombstoned():
    store = MemoryStore({"gone": b"state", "kept": b"state"})
    out = ForgetProcessor(TOPICS, N, Metrics(), store).process([request(forget_request("gone"), "gone")])
    assert store.data == {"kept": b"state"}
    assert [(o.topic, o.key, o.value) for o in out] == [(TOPICS.recommendations, b"gone", None)]


def test_forgetting_an_unknown_user_is_harmless_and_repeatable():
    store = MemoryStore({"gone": b"state", "kept": b"state"})
    proc = ForgetProcessor(TOPICS, N, Metrics(), store)
    for _ in range(2):
        out = proc.process([request(forget_request("never-seen"), "never-seen")])
        assert [o.value for o in out] == [None]
    assert set(store.data) == {"gone", "kept"}


def test_bad_requests_are_dead_lettered_and_misplaced_ones_forwarded():
    store = MemoryStore({"gone": b"state", "kept": b"state"})
    proc = ForgetProcessor(TOPICS, N, Metrics(), store)
    wrong = (partition_for("gone", N) + 1) % N
    out = proc.process(
        [
            request(b"{not json", "x"),
            request(json.dumps({"user_id": " spaced "}).encode(), "x"),
            request(forget_request("gone"), "gone", partition=wrong),
        ]
    )
    assert [o.topic for o in out] == [TOPICS.deadletter, TOPICS.deadletter, TOPICS.forget]
    assert out[2].key == b"gone" and store.data["gone"] == b"state"  # the owner deletes it
    assert json.loads(out[0].value)["payload"] == "{not json"
