"""A user's resident recent-item arrays against the recent items they mirror: kept current click
by click, built again when ``recent`` changes otherwise, and views once taken never change."""

from __future__ import annotations

import numpy as np

from state.catalog import DenseIds
from state.user import ACTION_WEIGHT, ACTIONS, RECENT_MAX, RecentItem, UserState


def _expected(user: UserState, items: DenseIds, categories: DenseIds) -> list[list[float]]:
    return [
        [items[r.item_id] for r in user.recent],
        [ACTION_WEIGHT[r.action] for r in user.recent],
        [r.ts for r in user.recent],
        [categories[r.category] for r in user.recent],
    ]


def _views(user: UserState, items: DenseIds, categories: DenseIds) -> list[list[float]]:
    return [v.tolist() for v in user.recent_arrays(items, categories).views()]


def test_the_arrays_follow_every_click_and_earlier_views_stay_as_they_were() -> None:
    rng = np.random.default_rng(7)
    items, categories = DenseIds(), DenseIds(first=("",))
    user = UserState()
    assert _views(user, items, categories) == [[], [], [], []]
    arrays = user.recent_arrays(items, categories)
    taken: list[tuple[list[list[float]], tuple[np.ndarray, ...]]] = []
    for n in range(7 * RECENT_MAX):
        item, category = f"i{int(rng.integers(40))}", ("" if rng.random() < 0.2 else f"c{int(rng.integers(5))}")
        user.apply_click(item, ACTIONS[int(rng.integers(len(ACTIONS)))], 1000.0 + n, category, 3600.0)
        assert user.recent_arrays(items, categories) is arrays, "extended in place, not built again"
        assert _views(user, items, categories) == _expected(user, items, categories)
        if n % 13 == 0:
            taken.append((_expected(user, items, categories), arrays.views()))
    assert len(user.recent) == RECENT_MAX
    for want, views in taken:
        assert [v.tolist() for v in views] == want


def test_arrays_are_built_again_when_recent_changed_otherwise_or_other_ids_are_asked_for() -> None:
    items, categories = DenseIds(), DenseIds(first=("",))
    user = UserState()
    for n in range(5):
        user.apply_click(f"i{n}", "click", 1000.0 + n, "c", 3600.0)
    first = user.recent_arrays(items, categories)
    user.recent.append(RecentItem("x", "buy", 2000.0, "d"))
    assert _views(user, items, categories) == _expected(user, items, categories)
    del user.recent[0]
    user.apply_click("y", "view", 2001.0, "", 3600.0)
    assert _views(user, items, categories) == _expected(user, items, categories)
    other = DenseIds(first=("z",))
    assert _views(user, other, categories) == _expected(user, other, categories)
    assert user.recent_arrays(other, categories) is not first
    decoded = UserState.from_bytes(user.to_bytes())
    assert _views(decoded, items, categories) == _expected(user, items, categories)
    assert decoded == user, "the arrays are no part of the state's value"
