"""The co-visitation index: which items go together, and which come after which."""

from __future__ import annotations

import numpy as np

from model.candidate_features import CANDIDATE_FEATURES, FEATURE_INDEX
from model.covisitation import CovisIndex
from model.retrieval import retrieve
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
