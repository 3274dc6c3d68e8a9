"""Retrieval's kernel against the Python retrieval it replaced (streams/bench/reference_retrieval.py):
the same candidates in the same order, the same categories and the same feature rows bit for bit,
over random shops and users (new, returning, repeated items, categories the catalog does not
know, items it does not hold, extras), with the dict co-visitation index fed the same stream."""

from __future__ import annotations

import numpy as np
import pytest

from model import kernels
from model.candidate_features import N_CANDIDATE_FEATURES
from model.covisitation import CovisIndex
from model.examples import ExampleConfig, click_examples, click_record, pack_examples
from model.retrieval import RetrievalConfig, retrieve, retrieve_many
from state.catalog import Catalog
from state.item import ItemState
from state.user import ACTIONS, UserState
from streams.bench.dict_covisitation import DictCovisIndex
from streams.bench.reference_retrieval import reference_retrieve

HALF_LIFE = 3600.0


def _shop(seed: int) -> tuple[Catalog, CovisIndex, DictCovisIndex, list[UserState], float, np.random.Generator]:
    """A catalog of 60 items (some out of stock, some without a category, some removed) and 40
    users' streams over 80 items (so some are not in the catalog), both indexes fed alike."""
    rng = np.random.default_rng(seed)
    now = [1000.0]
    catalog = Catalog(HALF_LIFE, refresh_s=0.0, clock=lambda: now[0])
    index = CovisIndex(
        max_items=int(rng.integers(20, 200)), max_neighbors=int(rng.integers(2, 8)), ids=catalog.item_ids
    )
    oracle = DictCovisIndex(index.max_items, index.max_neighbors)
    for n in range(60):
        state = ItemState()
        category = "" if n % 11 == 0 else f"c{n % 7}"
        state.apply_catalog(category, "", 1.0, n % 5 != 0, now[0])
        catalog.upsert(f"i{n}", state)
    users = [UserState() for _ in range(40)]
    for _ in range(int(rng.integers(200, 900))):
        now[0] += float(rng.exponential(30.0))
        user = users[int(rng.integers(len(users)))]
        item = f"i{min(int(rng.zipf(1.4)), 80) - 1}"
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        category = catalog.category_of(item) or ("" if rng.random() < 0.3 else f"u{int(rng.integers(3))}")
        for i in (index, oracle):
            i.observe(user, item)
        user.apply_click(item, action, now[0], category, HALF_LIFE)
        catalog.bump(item, category, action, now[0])
        if rng.random() < 0.02:
            catalog.remove(f"i{int(rng.integers(60))}")
    return catalog, index, oracle, users, now[0], rng


@pytest.mark.parametrize("seed", range(6))
def test_the_kernel_retrieves_exactly_what_the_python_retrieval_did(seed: int) -> None:
    catalog, index, oracle, users, now, rng = _shop(seed)
    config = RetrievalConfig(
        history=int(rng.integers(3, 50)),
        covis_sources=int(rng.integers(1, 10)),
        covis_per_source=int(rng.integers(1, 30)),
        covis_max=int(rng.integers(1, 40)),
        after_sources=int(rng.integers(1, 5)),
        categories=int(rng.integers(0, 4)),
        per_category=int(rng.integers(1, 20)),
        popular=int(rng.integers(0, 30)),
    )
    compared, nonzero = 0, np.zeros(N_CANDIDATE_FEATURES, np.int64)
    for user in [*users, UserState()]:
        interests = [*user.interest_weights(now, HALF_LIFE, 5), ("unknown-category", 0.25)]
        extra = [f"i{int(rng.integers(90))}" for _ in range(int(rng.integers(0, 4)))]
        pool = retrieve(user, now, catalog, index, interests, config, extra)
        expected = reference_retrieve(user, now, catalog, oracle, interests, config, extra)
        assert pool.items == expected.items
        assert pool.retrieved == expected.retrieved
        assert pool.categories == expected.categories
        assert pool.features.tobytes() == expected.features.tobytes()
        nonzero += (expected.features != 0).sum(axis=0)
        excluded = {*user.bought, *extra[:1], "i3"}
        assert pool.eligible(catalog, excluded) == expected.eligible(catalog, excluded)
        assert [pool.position(item) for item in expected.items] == list(range(len(expected.items)))
        assert [pool.item(i) for i in range(len(pool.items))] == expected.items
        for got, want in zip(pool.buckets(97, 31), expected.buckets(97, 31), strict=True):
            assert got.tolist() == want.tolist()
        more = [f"i{int(rng.integers(90))}" for _ in range(3)]
        grown, reference = pool.with_extra(more), expected.with_extra(more)
        assert grown.items == reference.items and grown.retrieved == reference.retrieved
        assert grown.features.tobytes() == reference.features.tobytes()
        assert [grown.category(i) for i in range(len(grown.items))] == reference.categories
        compared += len(pool.items)
    assert compared > 40 * config.popular
    assert (nonzero > 0).all(), "every feature's formula is compared on some non-zero value"


@pytest.mark.parametrize("seed", range(3))
def test_one_pass_for_many_users_retrieves_what_one_pass_per_user_does(seed: int) -> None:
    """The batched kernel: each user's pool equal to :func:`retrieve`'s, extras added alike."""
    catalog, index, _, users, now, rng = _shop(seed)
    config = RetrievalConfig(covis_max=int(rng.integers(1, 40)), popular=int(rng.integers(0, 30)))
    everyone = [*users, UserState(), *users[:3]]
    interests = [[*u.interest_weights(now, HALF_LIFE, 5), ("unknown-category", 0.25)] for u in everyone]
    pools = retrieve_many(everyone, now, catalog, index, interests, config)
    assert len(pools) == len(everyone)
    for user, wanted, pool in zip(everyone, interests, pools, strict=True):
        alone = retrieve(user, now, catalog, index, wanted, config)
        assert pool.ids.tolist() == alone.ids.tolist() and pool.retrieved == alone.retrieved
        assert pool.categories == alone.categories
        assert pool.features.tobytes() == alone.features.tobytes()
        more = [f"i{int(rng.integers(90))}" for _ in range(3)]
        assert pool.with_extra(more).features.tobytes() == alone.with_extra(more).features.tobytes()
    assert retrieve_many([], now, catalog, index, [], config) == []


@pytest.mark.parametrize("seed", range(3))
def test_lazy_rows_are_the_rows_of_the_whole_pool_byte_for_byte(seed: int) -> None:
    """A pool retrieved with lazy rows (a training example's): the same candidates as the eager
    pool, and for any positions asked for, in any order and before or after extras are added,
    the same rows and categories, extras included, as the eager pool and its ``with_extra``."""
    catalog, index, _, users, now, rng = _shop(seed)
    config = RetrievalConfig(
        history=int(rng.integers(3, 50)),
        covis_max=int(rng.integers(1, 40)),
        popular=int(rng.integers(0, 30)),
        categories=int(rng.integers(0, 4)),
    )
    for user in [*users, UserState()]:
        interests = [*user.interest_weights(now, HALF_LIFE, 5), ("unknown-category", 0.25)]
        extra = [f"i{int(rng.integers(90))}" for _ in range(int(rng.integers(0, 3)))]
        eager = retrieve(user, now, catalog, index, interests, config, extra)
        lazy = retrieve(user, now, catalog, index, interests, config, extra, lazy=True)
        assert lazy.ids.tolist() == eager.ids.tolist() and lazy.retrieved == eager.retrieved
        n = len(eager.items)
        extras = list(range(eager.retrieved, n))
        assert lazy.rows(extras).tobytes() == eager.rows(extras).tobytes()
        assert [lazy.category(i) for i in extras] == eager.categories_at(extras)
        asked = rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).tolist() if n else []
        assert lazy.rows(asked).tobytes() == eager.rows(asked).tobytes()
        assert lazy.categories_at(asked) == eager.categories_at(asked)
        assert [lazy.category(i) for i in range(n)] == eager.categories
        more = [f"i{int(rng.integers(90))}" for _ in range(3)]
        grown, expected = lazy.with_extra(more), eager.with_extra(more)
        assert grown.items == expected.items and grown.retrieved == expected.retrieved
        tail = list(range(len(expected.items)))[::-1]
        assert grown.rows(tail).tobytes() == expected.rows(tail).tobytes()
        assert grown.categories == expected.categories
        fresh = retrieve(user, now, catalog, index, interests, config, extra, lazy=True).with_extra(more)
        assert fresh.features.tobytes() == expected.features.tobytes()
        for got, want in zip(fresh.buckets(97, 31), expected.buckets(97, 31), strict=True):
            assert got.tolist() == want.tolist()


@pytest.mark.parametrize("seed", range(6))
def test_a_pool_cut_to_missed_extras_holds_their_rows_as_the_whole_pool_does(seed: int) -> None:
    """``alone_if_missed``: when retrieval finds none of the extras, the pool holds them alone
    (each once, in order, none retrieved) with the rows and categories the whole pool gives them,
    bit for bit, and refuses what it cannot tell; otherwise it is the whole lazy pool. Random
    bounds, so that extras are missed because they rank below ``covis_max``, lie beyond
    ``history`` or follow a source, as well as for having nothing at all."""
    catalog, index, _, users, now, rng = _shop(seed)
    config = RetrievalConfig(
        history=int(rng.integers(1, 20)),
        covis_sources=int(rng.integers(1, 10)),
        covis_per_source=int(rng.integers(1, 30)),
        covis_max=int(rng.integers(1, 10)),
        after_sources=int(rng.integers(1, 5)),
        categories=int(rng.integers(0, 3)),
        per_category=int(rng.integers(1, 5)),
        popular=int(rng.integers(0, 5)),
    )
    cut = whole = 0
    for user in [*users, UserState()] * 3:
        interests = user.interest_weights(now, HALF_LIFE, 5)
        recent = [r.item_id for r in user.recent]
        pick = [*recent, *(f"i{n}" for n in range(90))]  # often a recent item: found or beyond history
        extra = [pick[int(rng.integers(len(pick)))] for _ in range(int(rng.integers(1, 4)))]
        eager = retrieve(user, now, catalog, index, interests, config, extra)
        pool = retrieve(user, now, catalog, index, interests, config, extra, lazy=True, alone_if_missed=True)
        missed = all(eager.position(item) >= eager.retrieved for item in extra)
        if not missed:
            assert pool.ids.tolist() == eager.ids.tolist() and pool.retrieved == eager.retrieved
            whole += 1
            continue
        cut += 1
        distinct = list(dict.fromkeys(extra))
        assert pool.items == distinct and pool.retrieved == 0
        at = [eager.position(item) for item in distinct]
        assert pool.rows(range(len(distinct))).tobytes() == eager.rows(at).tobytes()
        assert [pool.category(i) for i in range(len(distinct))] == eager.categories_at(at)
        assert pool.features.tobytes() == eager.rows(at).tobytes()
        with pytest.raises(ValueError, match="cut to its extras"):
            pool.eligible(catalog, set())
        with pytest.raises(ValueError, match="cut to its extras"):
            pool.with_extra(["i1"])
    assert cut > 20 and whole > 20, (cut, whole)


@pytest.mark.parametrize("seed", range(3))
def test_a_clicks_examples_from_lazy_rows_are_those_of_the_whole_pool(seed: int) -> None:
    """``click_examples`` over a lazy pool (as ``ExampleBuilder`` retrieves it) packs the same bytes
    as over the eager pool and the Python reference's pool, with the same draws: positives
    retrieved or not, pool and catalog negatives, for every user of random shops; and
    ``click_record`` packs those bytes straight from the draw."""
    catalog, index, oracle, users, now, rng = _shop(seed)
    config = ExampleConfig()
    labelled = 0
    for user in [*users, UserState()]:
        item = f"i{int(rng.integers(90))}"
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        category = "" if rng.random() < 0.5 else "c3"
        interests = user.interest_weights(now, config.interest_half_life_s, config.model.interests)
        pools = [retrieve(user, now, catalog, index, interests, config.retrieval, [item], lazy=lazy) for lazy in (0, 1)]
        pools.append(reference_retrieve(user, now, catalog, oracle, interests, config.retrieval, [item]))
        packed = []
        for pool in pools:
            args = (user, item, action, now, category, catalog, np.random.default_rng(seed))
            examples = click_examples(*args, config=config, pool=pool)
            packed.append(pack_examples(examples))
        lazy = retrieve(user, now, catalog, index, interests, config.retrieval, [item], lazy=True)
        args = (user, item, action, now, category, catalog, np.random.default_rng(seed))
        packed.append(click_record(*args, config=config, pool=lazy))
        alone = retrieve(
            user, now, catalog, index, interests, config.retrieval, [item], lazy=True, alone_if_missed=True
        )
        args = (user, item, action, now, category, catalog, np.random.default_rng(seed))
        packed.append(click_record(*args, config=config, pool=alone))  # as ExampleBuilder retrieves
        assert packed == [packed[0]] * 5
        labelled += len(examples) > 1
    assert labelled > 5, "retrieved positives, with their negatives, are compared too"


def test_warm_compiles_every_kernel_with_the_types_events_use() -> None:
    """After :func:`model.kernels.warm`, observing, reading and retrieving compile nothing more
    (no event waits for numba)."""
    kernels.warm()
    compiled = kernels.compiled()
    every = (
        compiled.observe, compiled.scores, compiled.following, compiled.retrieve, compiled.retrieve_many,
        compiled.candidates, compiled.rows, compiled.eligible,
    )  # fmt: skip
    before = [len(k.signatures) for k in every]
    catalog = Catalog(HALF_LIFE)
    index, user = CovisIndex(max_items=3, max_neighbors=1, ids=catalog.item_ids), UserState()
    for t, item in enumerate(["a", "b", "c", "a", "d", "e"]):
        index.observe(user, item)
        user.apply_click(item, "view", 1000.0 + t, "c", HALF_LIFE)
        index.scores(user, 10, 30)
        index.following(user, 5)
        retrieve(user, 1000.0 + t, catalog, index, [("c", 1.0)], extra=["x"])
        lazy = retrieve(user, 1000.0 + t, catalog, index, [("c", 1.0)], extra=["x"], lazy=True)
        lazy.rows([len(lazy.items) - 1])
        lazy.with_extra(["y", "a"]).rows([0, len(lazy.items)])
        lazy.eligible(catalog, {"a", "y"})
        retrieve_many([user, UserState()], 1000.0 + t, catalog, index, [[("c", 1.0)], []])
    assert before == [1] * len(every) and [len(k.signatures) for k in every] == before
