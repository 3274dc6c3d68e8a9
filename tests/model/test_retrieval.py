"""The co-visitation index: which items go together, and which come after which."""

from __future__ import annotations

import numpy as np

from model.candidate_features import CANDIDATE_FEATURES, FEATURE_INDEX
from model.covisitation import CovisIndex
from model.retrieval import SOURCE_FEATURES, RetrievalConfig, retrieve, sources_of
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState

HALF_LIFE = 3600.0
AFTER = FEATURE_INDEX["after"]
POPULARITY = FEATURE_INDEX["popularity"]


def _walk(index: CovisIndex, user: UserState, items: list[str], catalog: Catalog | None = None) -> None:
    for t, item in enumerate(items):
        index.observe(user, item)
        user.apply_click(item, "view", 1000.0 + t, "c", HALF_LIFE)
        if catalog is not None:
            state = ItemState()
            state.apply_catalog("c", "", None, True, 1000.0)
            catalog.upsert(item, state)


def _user(*walk: str) -> UserState:
    user = UserState()
    for t, item in enumerate(walk):
        user.apply_click(item, "view", 2000.0 + t, "c", HALF_LIFE)
    return user


def test_neighbours_go_both_ways_and_followers_one_way() -> None:
    index = CovisIndex()
    _walk(index, UserState(), ["a", "b", "c"])
    assert index.scores(_user("c"), sources=5, per_source=50) == {"b": 1.0, "a": 0.5}
    assert index.scores(_user("a"), sources=5, per_source=50) == {"b": 1.0, "c": 0.5}
    assert index.following(_user("a"), sources=5) == {"b": 1.0, "c": 0.5}
    assert index.following(_user("b"), sources=5) == {"c": 1.0}
    assert index.following(_user("c"), sources=5) == {}
    # Newer sources count more: c follows b (1) and a (0.5, halved as the older source).
    assert index.following(_user("a", "b"), sources=5) == {"c": 1.0 + 0.5 * 0.5, "b": 0.5}


def test_followers_are_bounded_like_neighbours() -> None:
    index = CovisIndex(max_items=3, max_neighbors=2)
    _walk(index, UserState(), [f"i{n}" for n in range(12)])
    followers = [index.following(_user(f"i{n}"), sources=1) for n in range(12)]
    assert sum(1 for after in followers if after) <= 3
    assert all(len(after) <= 2 * 2 for after in followers)


def test_the_after_feature_counts_what_came_after_the_users_item_not_before() -> None:
    """Two users walked ``x -> y`` and a third only ``y -> z``: for a user who just looked at
    ``y``, ``z`` followed it and ``x`` preceded it, although both are its neighbours."""
    catalog = Catalog(HALF_LIFE)
    index = CovisIndex(ids=catalog.item_ids)
    for walk in (["x", "y"], ["x", "y"], ["y", "z"]):
        _walk(index, UserState(), walk, catalog)
    pool = retrieve(_user("y"), 2000.0, catalog, index, [("c", 1.0)])
    feature = dict(zip(pool.items, pool.features[:, AFTER].tolist(), strict=True))
    assert feature["z"] > 0.0
    assert feature["x"] == 0.0


def test_features_stay_finite_while_the_popular_list_predates_all_activity() -> None:
    """A new shop: the catalog's items have no activity when the popular list is first ranked;
    a click within the next second gives one item some, and its popularity feature must be the
    top's (1), not infinite (which turned every training step of a fresh engine into NaN)."""
    now = [0.0]
    catalog = Catalog(HALF_LIFE, refresh_s=1.0, clock=lambda: now[0])
    for item in ("a", "b"):
        state = ItemState()
        state.apply_catalog("c", "", None, True, 1000.0)
        catalog.upsert(item, state)
    assert catalog.popular(50) == ["a", "b"]  # ranked now, while neither has any activity
    catalog.bump("b", "c", "view", 1000.0)
    pool = retrieve(_user("a"), 1000.0, catalog, CovisIndex(ids=catalog.item_ids), [("c", 1.0)])
    assert np.isfinite(pool.features).all()
    assert pool.features[pool.items.index("b"), POPULARITY] == 1.0


def test_feature_rows_follow_the_named_layout() -> None:
    """A seen item's row has ``seen`` 1 and its recency and repeats; an unseen one has them 0: a
    reorder of the row that the names do not follow fails here."""
    catalog = Catalog(HALF_LIFE)
    index = CovisIndex(ids=catalog.item_ids)
    _walk(index, UserState(), ["p", "q", "r"], catalog)
    user = _user("p", "p", "q")
    pool = retrieve(user, 2002.0, catalog, index, [("c", 1.0)], extra=["r"])
    rows = dict(zip(pool.items, pool.features, strict=True))
    assert pool.features.shape[1] == len(CANDIDATE_FEATURES)
    seen, unseen = rows["p"], rows["r"]
    assert seen[FEATURE_INDEX["seen"]] == 1.0 and unseen[FEATURE_INDEX["seen"]] == 0.0
    assert seen[FEATURE_INDEX["repeats"]] > 0.0 == unseen[FEATURE_INDEX["repeats"]]
    assert rows["q"][FEATURE_INDEX["recency"]] > seen[FEATURE_INDEX["recency"]] > 0.0
    assert seen[FEATURE_INDEX["category_known"]] == 1.0


def test_the_sources_read_off_a_row_are_those_that_offered_the_candidate() -> None:
    """Small bounds, so that each source offers only some items: every candidate's sources, read
    off its row, are exactly the lists it is on (history, the strongest co-visited items, its
    category's popular list, the shop's); an item added from outside has none."""
    bumps = {"a": 3, "b": 1, "c": 4, "d": 1, "e": 1, "f": 1, "g": 6, "h": 5, "i": 2}
    catalog = Catalog(HALF_LIFE)
    index = CovisIndex(ids=catalog.item_ids)
    for walk in (["a", "b", "c"], ["b", "d"], ["e", "f", "g", "h"], ["d", "i"]):
        for t, item in enumerate(walk):
            state = ItemState()
            state.apply_catalog("c" if item < "e" else "k", "", None, True, 1000.0)
            catalog.upsert(item, state)
            for _ in range(bumps[item]):
                catalog.bump(item, "c" if item < "e" else "k", "view", 1000.0 + t)
        _walk(index, UserState(), walk)
    catalog.upsert("z", ItemState())
    config = RetrievalConfig(covis_max=2, categories=1, per_category=2, popular=2)
    user = _user("b", "d")
    pool = retrieve(user, 2002.0, catalog, index, [("c", 1.0)], config, extra=["z"])
    scores = index.scores(user, sources=config.covis_sources, per_source=config.covis_per_source)
    lists = {
        "history": {"b", "d"},
        "covisitation": set(sorted(scores, key=lambda i: -scores[i])[: config.covis_max]),
        "category_popular": set(catalog.popular(config.per_category, "c")),
        "popular": set(catalog.popular(config.popular)),
    }
    assert lists["popular"] == {"g", "h"} and lists["category_popular"] == {"a", "c"}
    assert lists["covisitation"] - lists["history"]
    for item, row in zip(pool.items, pool.features, strict=True):
        assert sources_of(row) == [s for s in SOURCE_FEATURES if item in lists[s]], item
    assert sources_of(pool.features[pool.items.index("z")]) == []
