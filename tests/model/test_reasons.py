"""Reasons: every recommended item says how retrieval found it (read from its feature row) and
which rules acted on it, aligned with the items."""

from __future__ import annotations

import pytest
from model_fixtures import random_serving

from model.candidate_features import FEATURE_INDEX
from model.rules import Rule, RulePlan
from model.scoring import NeuralServingModel


@pytest.fixture(scope="module")
def serving(stream) -> NeuralServingModel:
    return random_serving(stream, seed=1, version=3)


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
            assert ("covisited" in why) == bool(row[FEATURE_INDEX["covis"]])
            assert ("followed" in why) == bool(row[FEATURE_INDEX["after"]])
            assert (f"interest:{category}" in why) == bool(row[FEATURE_INDEX["interest"]])
            assert (f"popular_in:{category}" in why) == bool(row[FEATURE_INDEX["category_rank"]])
            assert ("popular" in why) == bool(row[FEATURE_INDEX["popularity_rank"]])
            said.update(r.split(":")[0] for r in why)
    assert {"viewed", "covisited", "interest", "popular_in", "popular", "explore"} <= said  # the stream shows each


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
