"""Reasons: every recommended item says how retrieval found it (read from its feature row) and
which rules acted on it, aligned with the items."""

from __future__ import annotations

import pytest
from model_fixtures import random_serving

from model.candidate_features import FEATURE_INDEX
from model.covisitation import CovisIndex
from model.related import PURCHASE_WINDOW
from model.rules import Rule, RulePlan
from model.scoring import NeuralServingModel
from state.user import UserState


@pytest.fixture(scope="module", params=["shared_ids", "own_ids"])
def serving(stream, request) -> NeuralServingModel:
    """The stream's model with a co-purchase index fed by its shoppers' purchases, over the
    catalog's ids (the engine's: one compiled lookup) or its own (each index's lookups)."""
    base = random_serving(stream, seed=1, version=3)
    purchases = CovisIndex(ids=stream.catalog.item_ids) if request.param == "shared_ids" else CovisIndex()
    for user in stream.users.values():
        for n, item_id in enumerate(user.bought):
            purchases.pair(item_id, user.bought[:n][::-1][:PURCHASE_WINDOW])
    return NeuralServingModel(
        base.snapshot, stream.catalog, interest_half_life_s=base.half_life, index=stream.index, purchases=purchases
    )


def strongest_source(serving: NeuralServingModel, user: UserState, item_id: str) -> str | None:
    """The oracle of ``covisited:<item_id>``: of the user's last 10 distinct items, the one whose
    top 30 neighbours hold ``item_id`` with the largest weight / (1 + its place), the newer on a tie."""
    newest_first = list(dict.fromkeys(r.item_id for r in reversed(user.recent)))
    best, named = 0.0, None
    for rank, source in enumerate(newest_first[: serving.retrieval.covis_sources]):
        weights = serving.index.neighbours(source)
        top = sorted(weights, key=weights.__getitem__, reverse=True)[: serving.retrieval.covis_per_source]
        if item_id in top and 1.0 / (rank + 1) * weights[item_id] > best:
            best, named = 1.0 / (rank + 1) * weights[item_id], source
    return named


def test_reasons_follow_each_item_feature_row(serving, stream) -> None:
    users = list(stream.users.values())
    recs = serving.recommend_many(users, 2000.0, 10)
    said = set()
    for user, rec in zip(users, recs, strict=True):
        assert len(rec.reasons) == len(rec.items)
        pool = serving.pool(user, 2000.0)
        for (item_id, _), why in zip(rec.items, rec.reasons, strict=True):
            if why == ["explore"]:  # placed for being fresh, whatever retrieval found
                assert item_id in serving.catalog.fresh(serving.catalog.category_of(item_id))
                said.add("explore")
                continue
            row = pool.features[pool.items.index(item_id)]
            category = pool.categories[pool.items.index(item_id)]
            assert ("viewed" in why) == bool(row[FEATURE_INDEX["seen"]])
            assert ("viewed" in why) == (item_id in {r.item_id for r in user.recent})
            covisited = [r for r in why if r.startswith("covisited")]
            assert bool(covisited) == bool(row[FEATURE_INDEX["covis"]])
            if covisited:
                assert covisited == [f"covisited:{strongest_source(serving, user, item_id)}"]
            bought_with = any(item_id in serving.purchases.neighbours(b) for b in user.bought)
            assert ("bought_together" in why) == bought_with
            assert ("followed" in why) == bool(row[FEATURE_INDEX["after"]])
            assert (f"interest:{category}" in why) == bool(row[FEATURE_INDEX["interest"]])
            assert (f"popular_in:{category}" in why) == bool(row[FEATURE_INDEX["category_rank"]])
            assert ("popular" in why) == bool(row[FEATURE_INDEX["popularity_rank"]])
            said.update(r.split(":")[0] for r in why)
    # The stream shows each.
    assert {"viewed", "covisited", "bought_together", "interest", "popular_in", "popular", "explore"} <= said


def test_rule_reasons_come_first_and_unretrieved_items_have_only_them(serving, stream) -> None:
    user = stream.users["u1"]
    [before] = serving.recommend_many([user], 2000.0, 5)
    top = before.items[0][0]
    plan = RulePlan(
        [Rule("pin", "pin", item_ids=("never-retrieved",), position=2), Rule("b", "boost", item_ids=(top,), factor=2.0)]
    )
    [rec] = serving.recommend_many([user], 2000.0, 5, [plan])
    assert [i for i, _ in rec.items][:2] == [top, "never-retrieved"]
    assert rec.reasons[0][0] == "rule:b" and rec.reasons[0][1:] == before.reasons[0]
    assert rec.reasons[1] == ["rule:pin"]
