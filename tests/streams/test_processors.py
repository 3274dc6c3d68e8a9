"""The per-message rules, driven directly: no Faust, no Kafka."""

import json
from collections.abc import Sequence
from typing import Any

import pytest

from model.serving import Recommendations
from state.catalog import Catalog
from state.item import AlertRule, ItemState
from state.user import UserState
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.processors.base import Incoming
from streams.processors.items import ActivityProcessor, CatalogProcessor, ItemReviewProcessor
from streams.processors.users import ActivityCounts, ClickProcessor, ImpressionProcessor, ReviewProcessor
from streams.settings import Settings
from streams.testing.memory_store import MemoryStore
from streams.topics import Topics

N = 4
NOW = 1.8e9
TOPICS = Topics(Settings())


class RecordingModel:
    """Recommends the catalog in a fixed order and remembers what it saw."""

    version = 7
    sentiment_threshold = 0.5

    def __init__(self, catalog: Catalog, items: Sequence[str]) -> None:
        self.catalog, self.items = catalog, list(items)
        self.rounds: list[list[int]] = []
        self.observed: list[tuple[int, str]] = []

    def observe_click(self, user: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        self.observed.append((sum(user.counts), item_id))

    def recommend_many(
        self, users: Sequence[UserState], now: float, k: int, plans: Sequence[Any] | None = None
    ) -> list[Recommendations]:
        from model.candidates import admissible

        self.rounds.append([sum(u.counts) for u in users])
        return [Recommendations(admissible(((i, 1.0) for i in self.items), u, self.catalog, k), []) for u in users]

    def sentiment_many(self, texts: Sequence[str]) -> list[float]:
        return [0.9 if "good" in t else 0.1 for t in texts]


def msg(
    topic: str, key: str | None, value: dict | bytes, offset: int, partition: int | None = None, waited_s: float = 0.0
) -> Incoming:
    """A message the processor's clock (``NOW + 100``) sees ``waited_s`` after it reached Kafka."""
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    p = partition if partition is not None else partition_for(key or "", N)
    return Incoming(topic, p, offset, key.encode() if key else None, body, None, int((NOW + 100 - waited_s) * 1000))


def click(n: int, user: str = "u1", item: str = "i1", action: str = "view", **extra: Any) -> dict:
    return {"event_id": f"e{n}", "user_id": user, "item_id": item, "action": action, "ts": NOW + n, **extra}


@pytest.fixture
def setup():
    catalog = Catalog(3600.0, refresh_s=0.0)
    stock = ItemState()
    stock.apply_catalog("c", "", None, False, 1.0)
    catalog.upsert("gone", stock)
    model = RecordingModel(catalog, ["gone", "i1", "i2", "i2", "i3", "i4"])
    users, metrics = MemoryStore(), Metrics()
    proc = ClickProcessor(
        TOPICS,
        N,
        metrics,
        users,
        catalog,
        lambda: model,
        ActivityCounts(),
        top_k=2,
        interest_half_life_s=3600.0,
        clock=lambda: NOW + 100,
    )
    return proc, users, model, metrics


def outputs(out, topic):
    return [json.loads(o.value) for o in out if o.topic == topic]


def test_click_publishes_a_filtered_recommendation_reflecting_it(setup):
    proc, users, _model, metrics = setup
    out = proc.process([msg(TOPICS.clicks, "u1", click(1, item="i1", action="buy", category="shoes"), 0)])
    [rec] = outputs(out, TOPICS.recommendations)
    # "gone" is out of stock, "i1" was just bought, "i2" appears once.
    assert [i["item_id"] for i in rec["items"]] == ["i2", "i3"]
    assert rec["model_version"] == 7 and rec["trigger_event_id"] == "e1"
    assert rec["published_ts"] >= rec["event_ts"]
    state = UserState.from_bytes(users.data["u1"])
    assert state.counts[4] == 1 and state.last is not None
    assert metrics.recommendations._value.get() == 1


def test_a_user_twice_in_a_batch_is_scored_in_two_rounds(setup):
    proc, users, model, _ = setup
    batch = [
        msg(TOPICS.clicks, "u1", click(1), 0),
        msg(TOPICS.clicks, "u2", click(2, user="u2"), 0),
        msg(TOPICS.clicks, "u1", click(3), 1),
    ]
    out = proc.process(batch)
    assert len(outputs(out, TOPICS.recommendations)) == 3
    assert model.rounds == [[1, 1], [2]]  # the second u1 click saw the first one's state
    assert UserState.from_bytes(users.data["u1"]).counts[0] == 2


def test_a_flooding_user_shares_one_recommendation_and_loses_no_click(setup):
    proc, users, model, _ = setup
    learned = []
    proc.learn = lambda _model, _state, click, _category: learned.append(click.event_id)
    behind = 5.0  # seconds the clicks waited in Kafka: the worker runs behind
    batch = [msg(TOPICS.clicks, "u1", click(n), n, waited_s=behind) for n in range(1, 11)]
    batch.insert(5, msg(TOPICS.clicks, "u2", click(99, user="u2"), 0, waited_s=behind))
    recs = outputs(proc.process(batch), TOPICS.recommendations)
    assert [r["trigger_event_id"] for r in recs] == ["e10", "e99"]
    assert model.rounds == [[10, 1]]  # one round, which saw all ten clicks of u1
    assert learned == ["e1", "e99"]  # the flood does not train the model
    state = UserState.from_bytes(users.data["u1"])
    assert state.counts[0] == 10 and state.last is not None and state.last.trigger_event_id == "e10"
    # Replayed, the flood changes nothing and is not scored again; each user's last answer is
    # published again, once, under the id of its last redelivered click.
    replayed = outputs(proc.process(batch), TOPICS.recommendations)
    assert sorted(r["trigger_event_id"] for r in replayed) == ["e10", "e99"]
    assert model.rounds == [[10, 1]]
    assert UserState.from_bytes(users.data["u1"]).counts[0] == 10


def test_redelivered_and_duplicated_events_change_nothing_and_are_answered_again(setup):
    proc, users, model, metrics = setup
    first = [msg(TOPICS.clicks, "u1", click(n), n) for n in range(5)]
    answers = outputs(proc.process(first), TOPICS.recommendations)
    out = proc.process(first[2:])  # redelivery after a crash: same offsets
    out += proc.process([msg(TOPICS.clicks, "u1", click(4), 9)])  # producer retry: new offset
    assert UserState.from_bytes(users.data["u1"]).counts[0] == 5
    assert metrics.events.labels(TOPICS.clicks, "duplicate")._value.get() == 4
    assert len(model.rounds) == 5  # nothing scored again
    # Every redelivered click is answered again (its answer may have been lost in the crash): the
    # last one with its own recommendation, the earlier ones with the latest under their own id.
    again = outputs(out, TOPICS.recommendations)
    assert [r["trigger_event_id"] for r in again] == ["e2", "e3", "e4", "e4"]
    assert again[-1] == answers[-1]
    assert all(r["items"] == answers[-1]["items"] for r in again)
    assert metrics.republished.labels(TOPICS.recommendations)._value.get() == 4


def test_a_redelivered_click_before_a_new_one_is_answered_first(setup):
    proc, _users, _model, _ = setup
    proc.process([msg(TOPICS.clicks, "u1", click(1), 0)])
    out = proc.process([msg(TOPICS.clicks, "u1", click(1), 0), msg(TOPICS.clicks, "u1", click(2), 1)])
    assert [r["trigger_event_id"] for r in outputs(out, TOPICS.recommendations)] == ["e1", "e2"]


def test_invalid_events_are_dead_lettered_and_the_rest_processed(setup):
    proc, _users, _, metrics = setup
    batch = [
        msg(TOPICS.clicks, "u1", click(1), 0),
        msg(TOPICS.clicks, None, b"\x00\xff binary", 1, partition=0),
        msg(TOPICS.clicks, "u1", click(2, action="teleport"), 2),
        msg(TOPICS.clicks, "u1", click(3), 3),
    ]
    out = proc.process(batch)
    dead = outputs(out, TOPICS.deadletter)
    assert [d["reason"] for d in dead] == ["encoding", "unknown_action"]
    assert dead[0]["source_topic"] == TOPICS.clicks and dead[0]["offset"] == 1
    assert "teleport" in dead[1]["error"] and "teleport" in dead[1]["payload"]
    assert len(outputs(out, TOPICS.recommendations)) == 2
    assert metrics.deadletters.labels("encoding")._value.get() == 1


def test_a_click_in_the_wrong_partition_is_forwarded_not_applied(setup):
    proc, users, _, metrics = setup
    wrong = (partition_for("u1", N) + 1) % N
    out = proc.process([msg(TOPICS.clicks, "someone-else", click(1), 0, partition=wrong)])
    [fwd] = out
    assert (fwd.topic, fwd.key) == (TOPICS.clicks, b"u1")
    assert json.loads(fwd.value)["event_id"] == "e1"
    assert users.data == {}
    assert metrics.events.labels(TOPICS.clicks, "forwarded")._value.get() == 1


def test_online_hit_rate_uses_the_last_published_list(setup):
    proc, _users, _, metrics = setup
    proc.process([msg(TOPICS.clicks, "u1", click(1, item="i1"), 0)])  # recommends i1, i2
    proc.process([msg(TOPICS.clicks, "u1", click(2, item="i2"), 1)])  # a hit
    proc.process([msg(TOPICS.clicks, "u1", click(3, item="zz"), 2)])  # a miss
    assert metrics.hit_rate == (1, 2)


def test_activity_is_counted_per_item_and_drained_once(setup):
    proc, *_ = setup
    proc.process([msg(TOPICS.clicks, "u1", click(n, item="i1", category="c"), n) for n in range(3)])
    drained = proc.activity.drain(TOPICS.item_activity)
    assert len(drained) == 1 and drained[0].key == b"i1"
    assert json.loads(drained[0].value)["counts"] == {"view": 3.0}
    assert proc.activity.drain(TOPICS.item_activity) == []


def test_reviews_are_scored_and_rekeyed_by_item_then_aggregated():
    users, items, metrics = MemoryStore(), MemoryStore(), Metrics()
    model = RecordingModel(Catalog(3600.0), [])
    reviews = ReviewProcessor(TOPICS, N, metrics, users, lambda: model, Catalog(3600.0), clock=lambda: NOW)
    review = {"event_id": "r1", "user_id": "u1", "item_id": "i9", "text": "good stuff", "rating": 5, "ts": NOW}
    out = reviews.process([msg(TOPICS.reviews, "u1", review, 0)])
    [fwd] = out
    assert fwd.topic == TOPICS.item_reviews and fwd.key == b"i9"
    assert UserState.from_bytes(users.data["u1"]).reviews == 1
    per_item = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule(), clock=lambda: NOW + 1)
    [sentiment] = outputs(per_item.process([msg(TOPICS.item_reviews, "i9", fwd.value, 0)]), TOPICS.sentiment)
    assert sentiment["label"] == "positive" and sentiment["score"] == 0.9
    assert sentiment["item_reviews"] == 1 and sentiment["item_positive_ratio"] == 1.0
    assert sentiment["model_version"] == 7 and sentiment["event_id"] == "r1"


def test_reviews_are_labelled_at_the_models_threshold_not_at_one_half():
    """A model trained on a shop of mostly happy reviews labels "negative" up to its own threshold:
    a review it scores 0.9 is negative under a threshold of 0.95, and the item's figures, the
    sentiment message and the complaint aspects all follow that label."""
    users, items, metrics = MemoryStore(), MemoryStore(), Metrics()
    model = RecordingModel(Catalog(3600.0), [])
    model.sentiment_threshold = 0.95
    reviews = ReviewProcessor(TOPICS, N, metrics, users, lambda: model, Catalog(3600.0), clock=lambda: NOW)
    text = "good colour but the zipper broke"
    review = {"event_id": "r1", "user_id": "u1", "item_id": "i9", "text": text, "rating": 2, "ts": NOW}
    [fwd] = reviews.process([msg(TOPICS.reviews, "u1", review, 0)])
    scored = json.loads(fwd.value)
    assert scored["score"] == 0.9 and scored["positive"] is False and "aspects" in scored
    per_item = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule(), clock=lambda: NOW + 1)
    [sentiment] = outputs(per_item.process([msg(TOPICS.item_reviews, "i9", fwd.value, 0)]), TOPICS.sentiment)
    assert sentiment["label"] == "negative" and sentiment["score"] == 0.9
    assert sentiment["item_positive_ratio"] == 0.0


def test_redelivered_reviews_publish_their_signals_again_and_count_once():
    users, items, metrics = MemoryStore(), MemoryStore(), Metrics()
    model = RecordingModel(Catalog(3600.0), [])
    reviews = ReviewProcessor(TOPICS, N, metrics, users, lambda: model, Catalog(3600.0), clock=lambda: NOW)
    review = {"event_id": "r1", "user_id": "u1", "item_id": "i9", "text": "bad", "rating": 1, "ts": NOW}
    [fwd] = reviews.process([msg(TOPICS.reviews, "u1", review, 0)])
    [again] = reviews.process([msg(TOPICS.reviews, "u1", review, 0)])
    assert (again.topic, again.key, again.value) == (fwd.topic, fwd.key, fwd.value)
    assert UserState.from_bytes(users.data["u1"]).reviews == 1
    per_item = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule(window=3, min_reviews=1), clock=lambda: NOW)
    first = outputs(per_item.process([msg(TOPICS.item_reviews, "i9", fwd.value, 0)]), TOPICS.sentiment)
    assert [m["label"] for m in first] == ["negative", "alert"]
    second = outputs(per_item.process([msg(TOPICS.item_reviews, "i9", again.value, 0)]), TOPICS.sentiment)
    assert second == first  # the signal and the alert it raised, published again
    assert ItemState.from_bytes(items.data["i9"]).reviews == 1
    assert metrics.republished.labels(TOPICS.sentiment)._value.get() == 1


def test_reviews_held_back_behind_later_ones_are_counted_once_each():
    """Offsets 17-42 of an item-reviews partition reached the worker after 43-57 (a delivery hole
    after a restart, fetched again): the item counts every review, and the replay of all of them
    after a crash counts none again."""
    items, metrics = MemoryStore(), Metrics()
    proc = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule(), clock=lambda: NOW)

    def review(n: int, offset: int) -> Incoming:
        body = {"event_id": f"r{n}", "user_id": "u", "item_id": "i64", "ts": NOW, "score": 0.9, "model_version": 1}
        return msg(TOPICS.item_reviews, "i64", body, offset)

    held_back = [review(1, 20), review(2, 30), review(3, 40)]
    proc.process([review(4, 46)])
    signals = outputs(proc.process(held_back), TOPICS.sentiment)
    assert [s["item_reviews"] for s in signals] == [2, 3, 4]
    replayed = outputs(proc.process([*held_back, review(4, 46)]), TOPICS.sentiment)
    assert [s["event_id"] for s in replayed] == ["r1", "r2", "r3", "r4"]  # published again
    assert ItemState.from_bytes(items.data["i64"]).reviews == 4


def test_a_negative_burst_raises_one_alert():
    items, metrics = MemoryStore(), Metrics()
    proc = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule(window=10, min_reviews=5))
    out = []
    for n in range(30):
        score = 0.9 if n < 20 else 0.1
        body = {"event_id": f"r{n}", "user_id": "u", "item_id": "i1", "ts": NOW, "score": score, "model_version": 1}
        out += proc.process([msg(TOPICS.item_reviews, "i1", body, n)])
    alerts = [m for m in outputs(out, TOPICS.sentiment) if m["label"] == "alert"]
    assert len(alerts) == 1
    assert alerts[0]["recent_negative_ratio"] >= 0.5 and alerts[0]["item_id"] == "i1"


def test_internal_topics_dead_letter_foreign_messages():
    items, metrics = MemoryStore(), Metrics()
    proc = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule())
    out = proc.process([msg(TOPICS.item_reviews, "i1", {"item_id": "i1", "score": "high"}, 0)])
    assert [m["reason"] for m in outputs(out, TOPICS.deadletter)] == ["wrong_type"]
    bad_score = {"event_id": "r", "user_id": "u", "item_id": "i1", "ts": NOW, "score": float("nan"), "model_version": 1}
    out = proc.process([msg(TOPICS.item_reviews, "i1", json.dumps(bad_score).encode(), 1)])
    assert [m["reason"] for m in outputs(out, TOPICS.deadletter)] == ["out_of_range"]


def test_catalog_and_activity_update_the_item_table():
    items, metrics = MemoryStore(), Metrics()
    catalog = CatalogProcessor(TOPICS, N, metrics, items, clock=lambda: NOW)
    catalog.process([msg(TOPICS.items, "i1", {"item_id": "i1", "category": "shoes", "in_stock": False, "ts": NOW}, 0)])
    catalog.process([msg(TOPICS.items, "i1", {"item_id": "i1", "category": "bags", "ts": NOW - 10}, 1)])  # stale
    state = ItemState.from_bytes(items.data["i1"])
    assert (state.category, state.in_stock) == ("shoes", False)
    activity = ActivityProcessor(TOPICS, N, metrics, items, 3600.0)
    body = {"item_id": "i1", "category": "", "counts": {"view": 2, "buy": 1, "bogus": 5}, "ts": NOW}
    activity.process([msg(TOPICS.item_activity, "i1", body, 0)])
    activity.process([msg(TOPICS.item_activity, "i1", body, 0)])  # redelivered
    state = ItemState.from_bytes(items.data["i1"])
    assert state.popularity.weights == {"view": 2.0, "buy": 1.0}


def test_an_alert_counts_the_complaint_aspects_of_the_recent_negative_reviews():
    users, items, metrics = MemoryStore(), MemoryStore(), Metrics()
    model = RecordingModel(Catalog(3600.0), [])
    reviews = ReviewProcessor(TOPICS, N, metrics, users, lambda: model, Catalog(3600.0), clock=lambda: NOW)
    per_item = ItemReviewProcessor(TOPICS, N, metrics, items, AlertRule(window=4, min_reviews=3), clock=lambda: NOW)
    texts = ["bad, runs two sizes too small", "bad: the box arrived crushed", "bad, too small and bad quality"]
    out = []
    for n, text in enumerate(texts):
        review = {"event_id": f"r{n}", "user_id": f"u{n}", "item_id": "i1", "text": text, "ts": NOW}
        [fwd] = reviews.process([msg(TOPICS.reviews, f"u{n}", review, n)])
        out += per_item.process([msg(TOPICS.item_reviews, "i1", fwd.value, n)])
    [alert] = [m for m in outputs(out, TOPICS.sentiment) if m["label"] == "alert"]
    assert alert["aspects"]["size_fit"] == 2 and alert["aspects"]["packaging"] == 1


def test_a_dislike_is_answered_and_touches_only_the_feedback(setup) -> None:
    proc, users, model, metrics = setup
    proc.neighbours = lambda item_id: ["i3", "i4"]
    proc.process([msg(TOPICS.clicks, "u1", click(1, item="i1", action="view", category="c"), 0)])
    before = UserState.from_bytes(users.data["u1"])
    observed = list(model.observed)
    out = proc.process([msg(TOPICS.clicks, "u1", click(2, item="i2", action="dislike"), 1)])
    [rec] = outputs(out, TOPICS.recommendations)
    assert rec["trigger_event_id"] == "e2"
    after = UserState.from_bytes(users.data["u1"])
    assert (after.counts, after.recent, after.interests) == (before.counts, before.recent, before.interests)
    assert [(d.item_id, d.neighbours) for d in after.feedback.disliked] == [("i2", ["i3", "i4"])]
    assert model.observed == observed  # no index, popularity or training sees it
    assert [o.key for o in proc.activity.drain(TOPICS.item_activity)] == [b"i1"]
    assert metrics.hit_rate == (0, 0)
    proc.process([msg(TOPICS.clicks, "u1", click(2, item="i2", action="dislike"), 1)])  # redelivered
    assert len(UserState.from_bytes(users.data["u1"]).feedback.disliked) == 1


def test_impressions_count_once_per_event_and_bad_ones_are_dead_lettered() -> None:
    users, metrics = MemoryStore(), Metrics()
    proc = ImpressionProcessor(TOPICS, N, metrics, users, clock=lambda: NOW + 100)

    def shown(n: int, items: object, offset: int) -> object:
        return msg(
            TOPICS.impressions, "u1", {"event_id": f"s{n}", "user_id": "u1", "item_ids": items, "ts": NOW}, offset
        )

    out = proc.process(
        [
            shown(1, ["a", "b"], 0),
            shown(1, ["a", "b"], 1),  # the producer sent it twice
            shown(2, [], 2),
            shown(3, "a", 3),
            msg(TOPICS.impressions, "u1", b"{", 4),
            shown(4, ["a"], 5),
        ]
    )
    assert [d["reason"] for d in outputs(out, TOPICS.deadletter)] == ["out_of_range", "wrong_type", "json"]
    assert UserState.from_bytes(users.data["u1"]).feedback.shown == {"b": 1, "a": 2}
    assert metrics.events.labels(TOPICS.impressions, "duplicate")._value.get() == 1
