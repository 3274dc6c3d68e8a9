"""Merchandising rules over pools of dense ids (what retrieval returns) and over pools that hold
names (the click bench's reference) give the same recommendations, scores and reasons, bit for
bit, for random pools, scores and rule sets."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import Stream, random_serving

from model.retrieval import CandidatePool, RetrievedPool
from model.rules import Rule, RulePlan
from model.scoring import NeuralServingModel
from state.catalog import DenseIds
from state.user import UserState

NOW = 2000.0
OUT_OF_STOCK = ("i2", "i13", "i40", "i77")
#: Items the rules name: the stream's, and two no pool or catalog holds.
NAMED = [f"i{n}" for n in range(120)] + ["zz-unknown", "zz-other"]
CATEGORIES = [f"c{n}" for n in range(9)] + ["zz-none"]


@pytest.fixture(scope="module")
def shop() -> tuple[Stream, NeuralServingModel]:
    stream = Stream(seed=11, events=300)
    for item_id in OUT_OF_STOCK:
        state = stream.items.get(item_id)
        if state is not None:
            state.apply_catalog(f"c{int(item_id[1:]) % 9}", "", None, False, 1.0)
            stream.catalog.upsert(item_id, state)
    return stream, random_serving(stream, seed=2, version=1)


def _rule(rng: np.random.Generator, rule_id: str) -> Rule:
    def items(most: int) -> tuple[str, ...]:
        return tuple(rng.choice(NAMED, int(rng.integers(1, most + 1))).tolist())

    kind = ("filter", "boost", "pin", "promote")[int(rng.integers(4))]
    by_category = bool(rng.integers(2))
    category = str(rng.choice(CATEGORIES)) if by_category else None
    if kind == "filter":
        return Rule(rule_id, kind, item_ids=() if by_category else items(4), category=category)
    if kind == "boost":
        factor = float(rng.choice([0.01, 0.5, 1.0, 2.0, 100.0, rng.uniform(0.01, 100.0)]))
        return Rule(rule_id, kind, item_ids=() if by_category else items(6), category=category, factor=factor)
    if kind == "pin":
        return Rule(rule_id, kind, item_ids=items(1), position=int(rng.integers(1, 16)))
    return Rule(rule_id, kind, item_ids=items(6), slots=int(rng.integers(1, 13)))


def _plan(rng: np.random.Generator) -> RulePlan | None:
    if rng.random() < 0.1:
        return None
    ids = [f"r{n}" for n in rng.permutation(8)[: int(rng.integers(0, 8))]]
    rules = [_rule(rng, rule_id) for rule_id in ids]
    if rules and rng.random() < 0.3:  # two pins at one position: the smaller id wins it
        position = int(rng.integers(1, 6))
        rules += [Rule(f"p{n}", "pin", item_ids=(str(rng.choice(NAMED)),), position=position) for n in range(2)]
    removed = rng.choice(NAMED, int(rng.integers(0, 4))).tolist() if rng.random() < 0.5 else []
    demoted = {}
    if rng.random() < 0.5:
        why = ["disliked", "ignored"]
        demoted = {str(i): str(rng.choice(why)) for i in rng.choice(NAMED, int(rng.integers(1, 30)))}
    return RulePlan(rules, removed, demoted, float(rng.uniform(0.01, 1.0)))


def _scores(rng: np.random.Generator, n: int) -> np.ndarray:
    scores = rng.random(n).astype(np.float32)
    for value in (-np.inf, np.nan, scores[0] if n else 0.0, 0.0):
        if rng.random() < 0.5:
            scores[rng.random(n) < rng.uniform(0.0, 0.5)] = value
    if rng.random() < 0.05:
        scores[:] = 0.5
    return scores


def test_rules_by_dense_id_are_the_rules_by_name(shop: tuple[Stream, NeuralServingModel]) -> None:
    stream, serving = shop
    rng = np.random.default_rng(7)
    everyone = sorted(stream.users)
    acted = set()
    for _ in range(200):
        chosen_ids = rng.choice(everyone, int(rng.integers(1, 6)), replace=False).tolist()
        users = [UserState.from_bytes(stream.users[u].to_bytes()) for u in chosen_ids]
        for user in users:
            user.bought = list(dict.fromkeys([*user.bought, *rng.choice(NAMED, int(rng.integers(0, 4))).tolist()]))
        pools = serving.pools(users, NOW)
        assert all(isinstance(p, RetrievedPool) for p in pools)
        named = [CandidatePool(p.items, p.categories, p.features, p.retrieved) for p in pools]
        scores = [_scores(rng, len(p.items)) for p in pools]
        plans = [_plan(rng) for _ in users]
        catalog = serving.catalog
        with np.errstate(invalid="ignore"):  # by name, a filtered -inf is multiplied by 0 before it is set
            for plan, pool, s in zip(plans, pools, scores, strict=True):
                if plan is not None:
                    by_id = plan.rescore_ids(pool.ids, pool.cat_ids, s, catalog.item_ids, catalog.category_ids)
                    assert by_id.tobytes() == plan.rescore(pool.items, pool.categories, s).tobytes()
            k = int(rng.integers(1, 13))
            by_id = serving.choose(users, pools, scores, plans, k)
            assert repr(by_id) == repr(serving.choose(users, named, scores, plans, k))
        acted |= {w.split(":")[0] for _, whys in by_id for why in whys for w in why}
    assert {"rule", "demoted", "explore"} <= acted  # the cases exercised what they are about


def test_a_name_given_an_id_after_the_plan_first_ran_is_matched() -> None:
    items, categories = DenseIds(["a", "b"]), DenseIds(["", "c"])
    plan = RulePlan([Rule("f", "filter", item_ids=("x",)), Rule("b", "boost", category="d", factor=2.0)])
    scores = np.array([0.5, 0.25, 0.125], np.float32)
    first = plan.rescore_ids(items.of(["a", "b"]), categories.of(["c", "c"]), scores[:2], items, categories)
    assert first.tolist() == [0.5, 0.25]
    ids, cats = items.of(["a", "x", "b"]), categories.of(["c", "c", "d"])  # "x" and "d" get ids now
    assert plan.rescore_ids(ids, cats, scores, items, categories).tolist() == [0.5, -np.inf, 0.25]
