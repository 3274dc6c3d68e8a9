"""The array co-visitation index against the dict version it replaced (streams/bench/dict_covisitation.py):
random shoppers' walks, with bounds small enough that rows are cut and items dropped."""

from __future__ import annotations

import random

import pytest

from model.covisitation import CovisIndex
from state.user import UserState
from streams.bench.dict_covisitation import DictCovisIndex

HALF_LIFE = 3600.0


def _same(index: CovisIndex, oracle: DictCovisIndex, user: UserState, items: list[str]) -> None:
    """Equal scores and followers, in the same insertion order (retrieval's stable sorts read it),
    the same strongest sources and neighbour tests, and equal interaction counts."""
    for sources, per_source in ((10, 30), (5, 50), (3, 2)):
        got, want = index.scores(user, sources, per_source), oracle.scores(user, sources, per_source)
        assert list(got.items()) == list(want.items())
        # The source named for each item: the same, and named exactly for the items scores reach.
        named = index.sources_of(user, sources, per_source, items)
        assert named == oracle.sources_of(user, sources, per_source, items)
        assert [item for item, source in zip(items, named, strict=True) if source is not None] == [
            item for item in items if item in want
        ]
    holders = [r.item_id for r in user.recent[-7:]]
    assert index.held_by(holders, items) == oracle.held_by(holders, items)
    for sources in (5, 1):
        assert list(index.following(user, sources).items()) == list(oracle.following(user, sources).items())
    assert index.interactions(items) == [oracle.counts.get(item, 0) for item in items]
    for item in items:
        assert list(index.neighbours(item).items()) == list(oracle.neighbours(item).items())


@pytest.mark.parametrize(
    ("seed", "max_items", "max_neighbors", "catalog"),
    [(1, 200_000, 50, 60), (2, 40, 3, 120), (3, 7, 2, 30), (4, 1, 1, 10), (5, 500, 4, 400)],
)
def test_the_array_index_equals_the_dict_index(seed: int, max_items: int, max_neighbors: int, catalog: int) -> None:
    rng = random.Random(seed)
    items = [f"i{n}" for n in range(catalog)] + ["never-seen"]
    index, oracle = CovisIndex(max_items, max_neighbors), DictCovisIndex(max_items, max_neighbors)
    users = [UserState() for _ in range(30)]
    for t in range(3000):
        user = rng.choice(users)
        # Skewed choices: strong pairs, ties and repeats of the user's own items.
        item = (
            items[min(int(rng.paretovariate(0.8)) - 1, catalog - 1)] if rng.random() < 0.5 else rng.choice(items[:-1])
        )
        if user.recent and rng.random() < 0.2:
            item = rng.choice(user.recent).item_id
        if rng.random() < 0.1:  # pairs without an interaction (purchases with earlier ones)
            others = [rng.choice(items) for _ in range(rng.randrange(4))]
            index.pair(item, others)
            oracle.pair(item, others)
        index.observe(user, item)
        oracle.observe(user, item)
        user.apply_click(item, "view", 1000.0 + t, "c", HALF_LIFE)
        if t % 50 == 0:
            _same(index, oracle, user, items)
    for user in users:
        _same(index, oracle, user, items)
    assert len(index) == len(oracle.neighbors)
    assert len(oracle.neighbors) <= max_items and len(oracle.counts) <= max_items


def test_bounds_must_hold_one_item_and_one_neighbour() -> None:
    with pytest.raises(ValueError, match="max_items"):
        CovisIndex(max_items=0)


@pytest.mark.parametrize(("seed", "max_items"), [(6, 200_000), (7, 25), (8, 1)])
def test_interactions_of_first_clicks_count_before_any_kernel_call(seed: int, max_items: int) -> None:
    """A new shopper's first click pairs nothing, so its interaction waits for the next kernel
    call: counts read in between, and after more waiting clicks than are held back, stay equal."""
    rng = random.Random(seed)
    items = [f"i{n}" for n in range(40)] + ["never-seen"]
    index, oracle = CovisIndex(max_items, 3), DictCovisIndex(max_items, 3)
    regulars = [UserState() for _ in range(5)]
    for t in range(3000):
        first = t < 1500 or rng.random() < 0.7  # a run of first clicks longer than the pending bound, then a mix
        user = UserState() if first else rng.choice(regulars)
        item = rng.choice(items[:-1])
        index.observe(user, item)
        oracle.observe(user, item)
        user.apply_click(item, "view", 1000.0 + t, "c", HALF_LIFE)
        if t % 7 == 0 or t > 2900:
            assert index.interactions(items) == [oracle.counts.get(i, 0) for i in items]
    for user in regulars:
        _same(index, oracle, user, items)


def test_a_co_visited_item_names_the_recent_item_that_adds_most_to_its_score() -> None:
    index = CovisIndex()
    user = UserState()
    for n, item in enumerate(("a", "b")):  # b is the newer source: weight 1, a weight 1/2
        user.apply_click(item, "view", 1000.0 + n, "c", HALF_LIFE)
    for _ in range(3):
        index.pair("x", ["a"])  # a-x 3: 1.5 through a
    index.pair("x", ["b"])  # b-x 1: 1.0 through b
    index.pair("z", ["b"])
    index.pair("z", ["a"])  # z: 1.0 through b, 0.5 through a
    assert index.sources_of(user, 10, 30, ["x", "z", "a", "nowhere"]) == ["a", "b", None, None]
    assert index.sources_of(user, 1, 30, ["x", "z"]) == ["b", "b"]  # a is not among the last 1
    for _ in range(4):
        index.pair("y", ["a"])  # now a's strongest neighbour: x leaves its top 1
    assert index.sources_of(user, 10, 1, ["x", "y"]) == ["b", "a"]
    assert index.held_by(["a"], ["x", "y", "b", "nowhere"]) == [True, True, False, False]
    assert index.held_by([], ["x"]) == [False]
