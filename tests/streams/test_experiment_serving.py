"""Experiments on the click path, driven directly: each shopper is served by their arm's model
and rules, the recommendation names its arm and id, a later action on one of its items is
attributed, a shadow arm writes only to the shadow topic; without an experiment nothing changes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from model.arms import PinnedModels
from model.experiments import ExperimentBook
from model.rules import RuleBook
from model.serving import Recommendations
from state.catalog import Catalog
from state.user import PublishedRecommendation, UserState
from streams.events import parse_experiment, parse_rule
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.processors.base import Incoming
from streams.processors.experiment_records import ExperimentProcessor, apply_experiment_record
from streams.processors.users import ActivityCounts, ClickProcessor
from streams.settings import Settings
from streams.testing.memory_store import MemoryStore
from streams.topics import Topics

N = 4
NOW = 1.8e9
TOPICS = Topics(Settings())
ITEMS = ["i1", "i2", "i3", "i4"]


class PlanModel:
    """Recommends ``ITEMS`` in order, each for reason ``popular``; remembers the plans it got."""

    sentiment_threshold = 0.5

    def __init__(self, version: int) -> None:
        self.version = version
        self.plans: list[Any] = []

    def observe_click(self, user: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        pass

    def recommend_many(
        self, users: Sequence[UserState], now: float, k: int, plans: Sequence[Any] | None = None
    ) -> list[Recommendations]:
        self.plans.append(plans)
        return [Recommendations([(i, 1.0) for i in ITEMS[:k]], [], [["popular"]] * k) for _ in users]

    def sentiment_many(self, texts: Sequence[str]) -> list[float]:
        return [0.5 for _ in texts]


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def click(n: int, user: str, item: str = "i1", action: str = "view") -> Incoming:
    body = {"event_id": f"e{n}", "user_id": user, "item_id": item, "action": action, "ts": NOW + n}
    return Incoming(TOPICS.clicks, partition_for(user, N), n, user.encode(), dump(body), None, int((NOW + 100) * 1000))


@pytest.fixture
def served() -> tuple[ClickProcessor, ExperimentBook, PlanModel, PlanModel, Metrics]:
    current, old = PlanModel(9), PlanModel(3)
    rules = RuleBook()
    rules.put(parse_rule(dump({"rule_id": "r1", "kind": "filter", "category": "c"})))
    book, metrics = ExperimentBook(), Metrics()
    proc = ClickProcessor(
        TOPICS,
        N,
        metrics,
        MemoryStore(),
        Catalog(3600.0, refresh_s=0.0),
        lambda: current,
        ActivityCounts(),
        top_k=3,
        interest_half_life_s=3600.0,
        rules=rules,
        experiments=book,
        pinned=lambda version: old if version == 3 else None,
        clock=lambda: NOW + 100,
    )
    return proc, book, current, old, metrics


def recs(out: list[Any], topic: str = TOPICS.recommendations) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in out if o.topic == topic]


def experiment(*arms: dict[str, Any], shadow: str | None = None) -> Any:
    body: dict[str, Any] = {"experiment_id": "x1", "arms": list(arms)}
    if shadow:
        body["shadow"] = shadow
    return parse_experiment(dump(body))


def test_without_an_experiment_the_message_has_no_experiment_fields(served: Any) -> None:
    proc, _book, current, _old, _metrics = served
    [rec] = recs(proc.process([click(1, "u1")]))
    assert not {"rec_id", "arm", "experiment"} & rec.keys()
    assert rec["model_version"] == 9 and current.plans[0] is not None  # the rule's plan


def test_each_arm_is_served_by_its_model_and_rules(served: Any) -> None:
    proc, book, current, old, metrics = served
    book.put(
        experiment(
            {"name": "plain", "share": 0.4, "rules": "none"},
            {"name": "old", "share": 0.3, "model": "pinned:3"},
            {"name": "lost", "share": 0.3, "model": "pinned:1"},
        )
    )
    users = [f"u{n}" for n in range(60)]
    out = proc.process([click(n, u) for n, u in enumerate(users)])
    by_user = {r["user_id"]: r for r in recs(out)}
    arms = {u: book.active.arm_of(u).name for u in users}
    assert set(arms.values()) == {"plain", "old", "lost"}
    for user, rec in by_user.items():
        assert rec["arm"] == arms[user] and rec["experiment"] == "x1" and len(rec["rec_id"]) == 24
        assert rec["model_version"] == (3 if arms[user] == "old" else 9)
    assert len({r["rec_id"] for r in by_user.values()}) == len(users)
    # One call per model: "plain" and "lost" (fallen back) together on the current model, "plain"
    # without the shop's rules (no plan), "lost" with the filter's plan; "old" on the pinned one.
    [plans] = current.plans
    counts = list(arms.values())
    assert len(plans) == counts.count("plain") + counts.count("lost")
    assert sum(p is None for p in plans) == counts.count("plain")
    [old_plans] = old.plans
    assert len(old_plans) == counts.count("old") and all(p is not None for p in old_plans)
    lost = sum(1 for a in arms.values() if a == "lost")
    assert metrics.pinned_fallbacks.labels("x1", "lost")._value.get() == lost
    assert metrics.arm_recommendations.labels("x1", "old")._value.get() == list(arms.values()).count("old")


def test_a_pinned_version_not_held_is_loaded_once_and_serves_once_there(served: Any) -> None:
    """The engine's loads run in the background; here they are asked for and answered by hand."""
    proc, book, _current, old, metrics = served
    asked: list[int] = []
    pinned = proc.pinned = PinnedModels(load=asked.append)
    book.put(
        experiment(
            {"name": "old", "share": 0.5, "model": "pinned:3"}, {"name": "lost", "share": 0.5, "model": "pinned:1"}
        )
    )
    wanted = {3, 1}
    users = [f"u{n}" for n in range(40)]
    arms = {u: book.active.arm_of(u).name for u in users}
    for round_ in (0, 1):  # asked for while loading: one load each, the current model serves meanwhile
        out = proc.process([click(100 * round_ + n, u) for n, u in enumerate(users)])
        assert {r["model_version"] for r in recs(out)} == {9}
    assert sorted(asked) == [1, 3] and metrics.pinned_fallbacks.labels("x1", "old")._value.get() == 2 * list(
        arms.values()
    ).count("old")
    pinned.offer(old, wanted)  # version 3 loaded
    pinned.unfound(1)  # version 1 not stored
    out = proc.process([click(200 + n, u) for n, u in enumerate(users)])
    for rec in recs(out):
        assert rec["model_version"] == (3 if arms[rec["user_id"]] == "old" else 9)
    assert sorted(asked) == [1, 3]  # an unfound version is not asked for again while pinned
    assert metrics.pinned_fallbacks.labels("x1", "old")._value.get() == 2 * list(arms.values()).count("old")
    pinned.offer(old, {3})  # the experiment changed: version 1 no longer pinned, then again
    pinned.offer(old, wanted)
    proc.process([click(300 + n, u) for n, u in enumerate(users)])
    assert sorted(asked) == [1, 1, 3]


def test_a_variant_arm_is_served_by_the_variants_model_even_at_the_current_version(served: Any) -> None:
    """A variant's versions count on their own: one at the current model's version is still
    another model, scored in a call of its own."""
    proc, book, current, _old, metrics = served
    fast: dict[str, PlanModel] = {}
    proc.variants = fast.get
    book.put(experiment({"name": "main", "share": 0.5}, {"name": "fast", "share": 0.5, "model": "trainer:fast"}))
    users = [f"u{n}" for n in range(40)]
    arms = {u: book.active.arm_of(u).name for u in users}
    proc.process([click(n, u) for n, u in enumerate(users)])  # no model of the variant yet
    assert len(current.plans) == 1 and len(current.plans[0]) == len(users)
    assert metrics.pinned_fallbacks.labels("x1", "fast")._value.get() == list(arms.values()).count("fast")
    fast["fast"] = variant = PlanModel(9)
    out = proc.process([click(100 + n, u) for n, u in enumerate(users)])
    assert {r["model_version"] for r in recs(out)} == {9}
    assert len(current.plans[1]) == list(arms.values()).count("main")
    assert len(variant.plans[0]) == list(arms.values()).count("fast")
    assert metrics.pinned_fallbacks.labels("x1", "fast")._value.get() == list(arms.values()).count("fast")
    hits: list[tuple[int, bool]] = []
    proc.on_hit = lambda version, hit: hits.append((version, hit))
    proc.process([click(200 + n, u, item="i1", action="click") for n, u in enumerate(users)])
    assert hits == [(9, True)] * list(arms.values()).count("main")  # the main model's rollback watch only


def test_at_most_the_limit_of_pinned_versions_is_held_or_loading() -> None:
    asked: list[int] = []
    pinned = PinnedModels(limit=2, load=asked.append)
    wanted = {1, 2, 3, 4}
    assert [pinned(v) for v in (1, 2, 3)] == [None, None, None] and asked == [1, 2]  # 3: beyond the limit
    pinned.offer(PlanModel(1), wanted)
    assert pinned(1) is not None and pinned(3) is None and asked == [1, 2]
    pinned.unfound(2)
    assert pinned(3) is None and asked == [1, 2, 3]
    pinned.offer(PlanModel(3), wanted)
    pinned.offer(PlanModel(4), wanted)  # served after being pinned: the oldest held gives way
    assert pinned.versions() == [3, 4]
    pinned.offer(PlanModel(5), {4})
    assert pinned.versions() == [4]


def test_a_later_action_on_a_recommended_item_is_attributed_once(served: Any) -> None:
    proc, book, _current, _old, metrics = served
    book.put(experiment({"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}))
    arm = book.active.arm_of("u1").name
    proc.process([click(1, "u1")])
    proc.process([click(2, "u1", item="i2", action="buy")])  # on the first answer's items
    proc.process([click(3, "u1", item="zz", action="click")])  # on none of the second's
    proc.process([click(4, "u1", item="i1", action="view")])  # a view is not attributed
    attributed = metrics.attributed.labels("x1", arm, "buy", "popular")._value.get()
    assert attributed == 1
    figures = proc.tally.report()["x1"][arm]
    assert figures["recommendations"] == 4
    assert figures["attributed"]["buy"]["actions"] == 1  # type: ignore[index]
    assert figures["attributed"]["click"]["actions"] == 0  # type: ignore[index]


def test_a_shadow_arm_writes_only_to_the_shadow_topic(served: Any) -> None:
    proc, book, _current, old, metrics = served
    book.put(
        experiment(
            {"name": "live", "share": 1.0},
            {"name": "ghost", "share": 0.0, "model": "pinned:3", "rules": "none"},
            shadow="ghost",
        )
    )
    out = proc.process([click(n, f"u{n}") for n in range(5)])
    live, ghost = recs(out), recs(out, TOPICS.shadow)
    assert len(live) == len(ghost) == 5
    assert {r["arm"] for r in live} == {"live"} and {r["arm"] for r in ghost} == {"ghost"}
    assert {r["model_version"] for r in live} == {9} and {r["model_version"] for r in ghost} == {3}
    assert [r["rec_id"] for r in live] == [r["rec_id"] for r in ghost]
    # The shadow's top 10 (all 4 items the test model holds), whatever the served top k (3).
    assert len(ghost[0]["items"]) == 4 and len(live[0]["items"]) == 3
    assert old.plans == [None]  # the shadow arm served without the shop's rules
    assert metrics.shadow_recommendations.labels("x1", "ghost")._value.get() == 5
    assert metrics.recommendations._value.get() == 5


def test_experiment_records_fold_and_invalid_ones_are_dead_lettered() -> None:
    book = ExperimentBook()
    good = {"experiment_id": "x1", "arms": [{"name": "a", "share": 1}]}
    assert apply_experiment_record(book, b"x1", dump(good)) is None and len(book) == 1
    problem = apply_experiment_record(book, b"x1", dump({**good, "arms": [{"name": "a", "share": 0.5}]}))
    assert problem is not None and problem.reason == "out_of_range" and len(book) == 0
    apply_experiment_record(book, b"x1", dump(good))
    assert apply_experiment_record(book, b"x1", None) is None and book.active is None
    assert apply_experiment_record(book, None, dump(good)) is not None
    batch = [
        Incoming(TOPICS.experiments, 0, 0, b"x1", dump(good)),
        Incoming(TOPICS.experiments, 0, 1, b"x2", dump({**good, "experiment_id": "x2", "shadow": "a"})),
    ]
    out = ExperimentProcessor(TOPICS, N, Metrics(), lambda: NOW).process(batch)
    [letter] = [json.loads(o.value) for o in out if o.topic == TOPICS.deadletter]
    assert letter["offset"] == 1 and "share must be 0" in letter["error"]


def test_a_recommendation_keeps_its_arm_in_the_state_and_old_states_decode() -> None:
    rec = PublishedRecommendation([("i1", 1.0)], [], 9, "e1", NOW, NOW, [["popular"]], "x1", "a", "r1")
    user = UserState(last=rec)
    assert UserState.from_bytes(user.to_bytes()).last == rec
    plain = PublishedRecommendation([("i1", 1.0)], [], 9, "e1", NOW, NOW, [["popular"]])
    # Outside an experiment the fields are the seven of before: old and new states read alike.
    assert len(plain.to_fields()) == 7 and PublishedRecommendation.from_fields(plain.to_fields()) == plain
    assert PublishedRecommendation.from_fields(plain.to_fields()[:6]).reasons == []
