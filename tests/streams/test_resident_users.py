"""Users' states kept decoded between their events: the same outputs as decoding every time, the
stored copy always equal to the resident one, bounded, and never trusted after a failed batch or
an erasure."""

from __future__ import annotations

from typing import Any

import pytest

from state.catalog import Catalog
from state.user import UserState
from streams.events import forget_request
from streams.metrics import Metrics
from streams.processors.base import Incoming, Outgoing
from streams.processors.resident import ResidentUsers
from streams.processors.users import ActivityCounts, ClickProcessor, ForgetProcessor
from streams.testing.memory_store import MemoryStore
from tests.streams.test_processors import NOW, TOPICS, N, RecordingModel, click, msg


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str, handle: Any) -> bytes | None:
        self.gets += 1
        return super().get(key, handle)


class FailingOnce(RecordingModel):
    fail = True

    def recommend_many(self, users: Any, now: float, k: int, plans: Any = None) -> Any:
        if self.fail:
            self.fail = False
            raise RuntimeError("scoring failed")
        return super().recommend_many(users, now, k, plans)


def processor(store: MemoryStore, resident: ResidentUsers, model: RecordingModel | None = None) -> ClickProcessor:
    catalog = Catalog(3600.0, refresh_s=0.0)
    chosen = model or RecordingModel(catalog, ["i1", "i2", "i3", "i4"])
    return ClickProcessor(
        TOPICS, N, Metrics(), store, catalog, lambda: chosen, ActivityCounts(), top_k=2,
        interest_half_life_s=3600.0, resident=resident, clock=lambda: NOW + 100,
    )  # fmt: skip


def batches() -> list[list[Incoming]]:
    events = [click(n, user=f"u{n % 3}", item=f"i{n % 4 + 1}") for n in range(12)]
    messages = [msg(TOPICS.clicks, e["user_id"], e, offset) for offset, e in enumerate(events)]
    return [messages[:5], messages[5:], messages[3:8]]  # the last one redelivered


def replay(resident: ResidentUsers) -> tuple[list[tuple[str, bytes | None]], dict[str, bytes]]:
    store = MemoryStore()
    proc = processor(store, resident)
    out: list[Outgoing] = []
    for batch in batches():
        out += proc.process(batch)
    return [(o.topic, o.value) for o in out], store.data


def test_resident_states_give_the_outputs_and_stored_states_of_decoding_every_time() -> None:
    assert replay(ResidentUsers(100)) == replay(ResidentUsers(0))


def test_a_resident_state_is_decoded_once_and_equals_the_stored_one() -> None:
    store, resident = CountingStore(), ResidentUsers(100)
    proc = processor(store, resident)
    for batch in batches():
        proc.process(batch)
    assert store.gets == 3  # one per user
    for user in ("u0", "u1", "u2"):
        assert UserState.from_bytes(store.data[user]) == resident.load(store, user, None)


def test_the_resident_set_is_bounded_least_recently_used_out() -> None:
    store, resident = CountingStore(), ResidentUsers(2)
    for user in ("a", "b", "a", "c"):
        resident.load(store, user, None)
    assert len(resident) == 2 and store.gets == 3
    resident.load(store, "b", None)  # was dropped: read again
    assert store.gets == 4


def test_a_failed_batch_leaves_nothing_resident_and_its_redelivery_equals_a_clean_run() -> None:
    store, resident = MemoryStore(), ResidentUsers(100)
    catalog = Catalog(3600.0, refresh_s=0.0)
    proc = processor(store, resident, FailingOnce(catalog, ["i1", "i2", "i3", "i4"]))
    first, *rest = batches()
    with pytest.raises(RuntimeError):
        proc.process(first)  # the states were changed in memory, not written
    assert len(resident) == 0
    out = [(o.topic, o.value) for batch in (first, *rest) for o in proc.process(batch)]
    assert (out, store.data) == replay(ResidentUsers(0))


def test_an_erased_user_is_not_resident_any_more() -> None:
    store, resident = MemoryStore(), ResidentUsers(100)
    proc = processor(store, resident)
    proc.process(batches()[0])
    forget = Incoming(
        TOPICS.forget, msg(TOPICS.forget, "u1", b"", 0).partition, 0, b"u1", forget_request("u1"), None, 0
    )
    ForgetProcessor(TOPICS, N, Metrics(), store, resident).process([forget])
    assert "u1" not in store.data
    assert resident.load(store, "u1", None) == UserState()
