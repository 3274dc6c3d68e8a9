"""The shadow arm served from the served arms' scorings (``model.arms.BatchScorings``) publishes
exactly what serving it afresh publishes, over the multi-task network with the shop's rules,
shoppers' dislikes and a pinned model, while each shopper's pool is retrieved once per batch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from model.arms import serve
from model.experiments import ExperimentBook
from model.retrieval import CandidatePool
from model.rules import RuleBook
from model.scoring import NeuralServingModel, load_warm_start
from state.catalog import Catalog
from state.item import ItemState
from state.user import PublishedRecommendation, UserState
from streams import messages
from streams.bench.clickpath import shop_events
from streams.bench.shop import SimulatedShop
from streams.events import Click, parse_experiment, parse_rule
from streams.metrics import Metrics
from streams.processors.base import Incoming
from streams.processors.resident import ResidentUsers
from streams.processors.users import SHADOW_K, ActivityCounts, ClickProcessor
from streams.settings import Settings
from streams.testing.memory_store import MemoryStore
from streams.topics import Topics

HALF_LIFE_S = 3 * 3600.0
START_TS = 1.8e9
TOPICS = Topics(Settings())


class CountingModel(NeuralServingModel):
    """The network, counting the pools it retrieves (``with_snapshot`` keeps the count's class)."""

    retrieved = 0

    def pool(
        self, user: UserState, now: float, extra: Sequence[str] = (), half_life_s: float | None = None
    ) -> CandidatePool:
        CountingModel.retrieved += 1
        return super().pool(user, now, extra, half_life_s)

    def pools(self, users: Sequence[UserState], now: float) -> list[CandidatePool]:
        CountingModel.retrieved += len(users)
        return super().pools(users, now)


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def build(arms: list[dict[str, Any]]) -> tuple[ClickProcessor, list[float], CountingModel, NeuralServingModel]:
    shop = SimulatedShop(300, 1500, seed=3)
    clock = [START_TS]
    catalog = Catalog(3600.0, clock=lambda: clock[0])
    for n, item in enumerate(shop.catalog(START_TS - 60.0)):
        state = ItemState()
        state.apply_catalog(item.category, item.title or "", item.price, n % 11 != 0, item.ts or 0.0)
        catalog.upsert(item.item_id, state)
    snapshot = load_warm_start()
    current = CountingModel(snapshot, catalog, interest_half_life_s=HALF_LIFE_S)
    kernel = snapshot.weights["recommend/user/kernel"]
    weights = {**snapshot.weights, "recommend/user/kernel": kernel * np.float32(-0.5)}
    old = current.with_snapshot(dataclasses.replace(snapshot, version=snapshot.version - 1, weights=weights))
    rules = RuleBook()
    rules.put(parse_rule(dump({"rule_id": "f", "kind": "filter", "category": "c3"})))
    rules.put(parse_rule(dump({"rule_id": "b", "kind": "boost", "category": "c5", "factor": 3.0})))
    rules.put(parse_rule(dump({"rule_id": "p", "kind": "pin", "item_id": "i7", "position": 2})))
    book = ExperimentBook()
    book.put(parse_experiment(dump({"experiment_id": "x1", "arms": arms, "shadow": "ghost"})))
    proc = ClickProcessor(
        TOPICS,
        1,
        Metrics(),
        MemoryStore(),
        catalog,
        lambda: current,
        ActivityCounts(),
        top_k=8,
        interest_half_life_s=HALF_LIFE_S,
        resident=ResidentUsers(1000),  # the states the batch left, as the shadow pass saw them
        rules=rules,
        experiments=book,
        pinned=lambda version: old if version == old.version else None,
        clock=lambda: clock[0],
    )
    return proc, clock, current, old


def batches() -> list[list[Incoming]]:
    """Clicks of a simulated shop in batches of one round each (a shopper at most once), every
    fifth one a dislike (the shopper's feedback)."""
    clicks = [e for e in shop_events(SimulatedShop(1000, 1500, seed=3), 2400) if isinstance(e, Click)]
    out: list[list[Incoming]] = [[]]
    for n, click in enumerate(clicks):
        if n % 5 == 4:
            click = dataclasses.replace(click, action="dislike")
        if len(out[-1]) == 128 or any(m.key == click.user_id.encode() for m in out[-1]):
            out.append([])
        out[-1].append(
            Incoming(TOPICS.clicks, 0, n, click.user_id.encode(), click.to_json(), None, int(click.ts * 1000))
        )
    return out


def afresh(proc: ClickProcessor, batch: Sequence[Incoming], published_ts: float) -> list[bytes]:
    """The batch's shadow messages as a fresh ``serve`` for the shadow arm alone makes them, from
    the states the batch left (what serving reads of them is what the shadow pass saw)."""
    experiment = proc.experiments.active
    assert experiment is not None and experiment.shadow_arm is not None
    last: dict[str, str] = {}
    for msg in batch:
        body = json.loads(msg.value)
        last[body["user_id"]] = body["event_id"]
    user_ids = list(last)
    states = [proc.resident.load(proc.users, u, None) for u in user_ids]
    model = proc.model()
    served = serve(
        model,
        proc.pinned,
        proc.rules,
        user_ids,
        states,
        [experiment.shadow_arm] * len(states),
        now=published_ts,
        k=SHADOW_K,
        half_life_s=HALF_LIFE_S,
    )
    out = []
    for user_id, state, (rec, by, _) in zip(user_ids, states, served, strict=True):
        assert state.last is not None and state.last.trigger_event_id == last[user_id]
        shown = PublishedRecommendation(
            items=rec.items,
            interests=[],
            model_version=by.version,
            trigger_event_id=last[user_id],
            event_ts=state.last.event_ts,
            published_ts=published_ts,
            reasons=rec.reasons,
            experiment=experiment.experiment_id,
            arm=experiment.shadow_arm.name,
            rec_id=state.last.rec_id,
        )
        out.append(messages.shadow(user_id, shown))
    return out


@pytest.mark.parametrize(
    ("arms", "shadow_version"),
    [
        # Served arms and shadow on the current model: the shadow reuses the scores themselves.
        ([{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "rules": "none"}], "current"),
        # A pinned served arm: the shadow (current) scores all the users again, from their pools.
        ([{"name": "a", "share": 0.5}, {"name": "old", "share": 0.5, "model": "pinned:OLD"}], "current"),
        # A pinned shadow with the shop's rules: another model's weights over the same pools.
        ([{"name": "a", "share": 0.6}, {"name": "b", "share": 0.4, "rules": "none"}], "pinned:OLD"),
    ],
)
def test_the_shadow_arm_publishes_what_serving_it_afresh_publishes(
    arms: list[dict[str, Any]], shadow_version: str
) -> None:
    version = load_warm_start().version - 1
    arms = [{**a, "model": a["model"].replace("OLD", str(version))} if "model" in a else a for a in arms]
    ghost = {"name": "ghost", "share": 0.0, "model": shadow_version.replace("OLD", str(version))}
    if shadow_version == "current":
        ghost["rules"] = "none"
    proc, clock, _current, _old = build([*arms, ghost])
    compared = pinned_shown = 0
    for batch in batches():
        clock[0] = batch[-1].timestamp_ms / 1000.0 + 0.01  # the worker keeps up: every click answered
        CountingModel.retrieved = 0
        out = proc.process(batch)
        assert CountingModel.retrieved == len(batch), "one retrieval per shopper and batch"
        shadow = [o.value for o in out if o.topic == TOPICS.shadow]
        assert shadow == afresh(proc, batch, clock[0])
        compared += len(shadow)
        pinned_shown += sum(json.loads(m)["model_version"] == version for m in shadow)
        pinned_shown += sum(
            json.loads(o.value)["model_version"] == version for o in out if o.topic == TOPICS.recommendations
        )
    assert compared > 500
    assert pinned_shown > 0 or "pinned" not in json.dumps(arms) + shadow_version
