"""Numpy serving: the business filters hold whatever the weights, and the engine's contract."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import HALF_LIFE, TINY, random_serving

from model.config import initial_weights
from model.scoring import NeuralServingModel, serving_from_snapshot
from model.serving import ServingModel
from model.snapshot import Snapshot
from state.item import ItemState


@pytest.fixture(scope="module")
def serving(stream) -> NeuralServingModel:
    return random_serving(stream, seed=0, version=7)


def test_is_a_serving_model(serving) -> None:
    model: ServingModel = serving  # type-checks against the engine's Protocol
    for name in ("observe_click", "recommend_many", "sentiment_many"):
        assert callable(getattr(model, name))
    assert serving.version == 7


def test_never_bought_out_of_stock_or_duplicate(serving, stream) -> None:
    out_of_stock = ItemState(in_stock=False)
    out_of_stock.apply_catalog("c0", "", None, False, 1.0)
    stream.catalog.upsert("i5", out_of_stock)
    try:
        users = list(stream.users.values())
        recs = serving.recommend_many(users, 2000.0, 10)
        assert len(recs) == len(users)
        for user, rec in zip(users, recs, strict=True):
            ids = [i for i, _ in rec.items]
            assert len(ids) == len(set(ids)) and len(ids) <= 10
            assert not set(ids) & set(user.bought)
            assert "i5" not in ids
            scores = [s for _, s in rec.items]
            assert scores == sorted(scores, reverse=True)
            assert rec.interests and 0 < sum(w for _, w in rec.interests) <= 1.0 + 1e-6
    finally:
        stream.catalog.remove("i5")


def test_unknown_user_gets_popular_items(serving, stream) -> None:
    from state.user import UserState

    rec = serving.recommend_many([UserState()], 2000.0, 5)[0]
    assert len(rec.items) == 5
    assert not serving.recommend_many([], 0.0, 5)


def test_sentiment_many_is_a_probability_per_text(serving) -> None:
    scores = serving.sentiment_many(["很好", "terrible", ""])
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert serving.sentiment_many([]) == []


def test_new_snapshot_keeps_the_retrieval_index(serving) -> None:
    newer = serving.with_snapshot(Snapshot(8, TINY, initial_weights(TINY, 1)))
    assert newer.version == 8 and newer.index is serving.index


def test_returning_users_are_shown_new_items_from_their_pool(serving, stream) -> None:
    from model.candidates import admissible

    def with_share(share: float) -> NeuralServingModel:
        return serving_from_snapshot(
            serving.snapshot, stream.catalog, interest_half_life_s=HALF_LIFE, index=stream.index, new_share=share
        )

    assert serving.new_share == 0.3  # the engine's default
    users = [u for u in stream.users.values() if u.recent]
    lists = {share: with_share(share).recommend_many(users, 2000.0, 10) for share in (0.0, 0.3, 1.0)}
    changed = 0
    for n, user in enumerate(users):
        touched = {r.item_id for r in user.recent}
        pool = admissible(((i, 0.0) for i in serving.pool(user, 2000.0).items), user, stream.catalog, 10_000)
        offered = sum(i not in touched for i, _ in pool)
        for share, slots in ((0.3, 3), (1.0, 10)):
            assert sum(i not in touched for i, _ in lists[share][n].items) >= min(slots, offered)
            assert len(lists[share][n].items) == len(lists[0.0][n].items)
        changed += lists[1.0][n].items != lists[0.0][n].items
    assert changed  # the rule changed lists here, so the checks above were not vacuous


def test_interest_adds_each_users_shares_in_order_as_a_loop_would(serving) -> None:
    """Interests, then history: a category named twice gets both additions, in that order;
    buckets not asked for and zero weights add nothing."""
    rng = np.random.default_rng(5)
    users, k, r = 6, TINY.interests, TINY.history
    x = {
        "interest_cats": rng.integers(0, 12, (users, k)).astype(np.int32),
        "interest_weights": (rng.random((users, k)) * (rng.random((users, k)) > 0.3)).astype(np.float32),
        "hist_cats": rng.integers(0, 12, (users, r)).astype(np.int32),
        "hist_weights": rng.random((users, r)).astype(np.float32),
    }
    z_int = rng.normal(size=(users, TINY.tower)).astype(np.float32)
    cat_ids = np.array([1, 2, 3, 5, 8, 9, 11], np.int32)
    net = serving.net
    expected = net.interest(
        z_int, {**x, "interest_weights": 0 * x["interest_weights"], "hist_weights": 0 * x["hist_weights"]}, cat_ids
    )
    prior = net.w["interest/prior"]
    column = {int(b): i for i, b in enumerate(cat_ids)}
    for ids, weights, scale in (
        (x["interest_cats"], x["interest_weights"], prior[0]),
        (x["hist_cats"], x["hist_weights"], prior[1]),
    ):
        for row in range(users):
            for b, wt in zip(ids[row].tolist(), weights[row].tolist(), strict=True):
                if b in column and wt:
                    expected[row, column[b]] += scale * wt
    assert net.interest(z_int, x, cat_ids).tobytes() == expected.tobytes()


def test_a_retrieval_pass_is_scored_from_its_arrays_as_its_pools_would_be(serving, stream) -> None:
    """One pass's pools, all of them in order, are scored from its arrays as they are; any other
    list of pools (a part, another order, pools of two passes) is concatenated. The scores are
    those of the same pools given by name, bit for bit."""
    from model.retrieval import CandidatePool, PoolBatch

    users = list(stream.users.values())[:6]
    pools = serving.pools(users, 2000.0)
    z = serving.net.towers(serving.user_inputs(users, 2000.0))[0]["recommend"]
    assert PoolBatch.of(pools) is not None
    assert PoolBatch.of(pools[1:]) is None and PoolBatch.of(pools[::-1]) is None
    assert PoolBatch.of([*pools[:3], *serving.pools(users[3:], 2000.0)]) is None
    named = [CandidatePool(p.items, p.categories, p.features, p.retrieved) for p in pools]
    assert PoolBatch.of(named) is None
    batched, concatenated = serving.score_pools(z, pools), serving.score_pools(z, named)
    assert [len(s) for s in batched] == [len(p.items) for p in pools]
    assert [s.tobytes() for s in batched] == [s.tobytes() for s in concatenated]


def test_users_inputs_read_from_the_resident_arrays_are_their_encoded_contexts(serving, stream) -> None:
    """Serving reads the users' inputs from the arrays kept with their states; they are the
    encoded ``user_context``s, value for value: full and short histories, an empty state, a
    category the catalog does not hold, items of no category and more interests than are fed."""
    from model.features import encode_texts, encode_users, user_context
    from state.user import UserState

    odd = UserState()
    for n, (category, action) in enumerate([("c1", "buy"), ("", "view"), ("nowhere", "cart"), *[("c2", "click")] * 3]):
        odd.apply_click(f"i{n}", action, 1500.0 + n, category, HALF_LIFE)
    many = UserState()
    for n in range(3 * TINY.interests):
        many.apply_click(f"x{n}", "fav", 1600.0 + n, f"k{n}", HALF_LIFE)
    users = [*stream.users.values(), UserState(), odd, many]
    assert max(len(u.recent) for u in users) > TINY.history
    for now in (2000.0, 2000.0, 9000.0):  # again at the same moment: what is kept is read
        got = serving.user_inputs(users, now)
        contexts = [user_context(u, now, serving.config, serving.half_life) for u in users]
        want = encode_users(contexts, serving.config) | encode_texts([""] * len(users), serving.config)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype and got[key].tobytes() == want[key].tobytes(), key
