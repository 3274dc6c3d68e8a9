"""Exploration: fresh items of the shopper's interests take places at the end of the top k."""

from __future__ import annotations

from model.candidates import EXPLORE_WINDOW, explore, explore_categories, explore_seed
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState


def _catalog(*items: tuple[str, str], out_of_stock: tuple[str, ...] = ()) -> Catalog:
    catalog = Catalog(3600.0, fresh_below=3)
    for item_id, category in items:
        state = ItemState()
        state.apply_catalog(category, "", None, item_id not in out_of_stock, 1.0)
        catalog.upsert(item_id, state)
    return catalog


def _user(*clicks: tuple[str, str], bought: tuple[str, ...] = ()) -> UserState:
    user = UserState()
    for n, (item_id, category) in enumerate(clicks):
        user.apply_click(item_id, "view", float(n), category, 3600.0)
    for item_id in bought:
        user.apply_click(item_id, "buy", 100.0, "", 3600.0)
    return user


def _top(n: int) -> list[tuple[str, float]]:
    return [(f"r{i}", 1.0 - i / 100) for i in range(n)]


def test_a_fresh_item_of_the_interest_takes_the_last_place() -> None:
    catalog = _catalog(("new", "tea"), ("cake-new", "cake"))
    user = _user(("t0", "tea"))
    out, explored = explore(_top(10), user, catalog, 10, 1)
    assert explored == ["new"]
    assert [i for i, _ in out] == [*(f"r{i}" for i in range(9)), "new"] and out[-1][1] == 0.0


def test_a_short_list_grows_and_zero_slots_change_nothing() -> None:
    catalog = _catalog(("new", "tea"))
    user = _user(("t0", "tea"))
    assert explore(_top(4), user, catalog, 10, 1)[0] == [*_top(4), ("new", 0.0)]
    assert explore(_top(10), user, catalog, 10, 0) == (_top(10), [])


def test_out_of_stock_bought_touched_listed_and_disallowed_items_are_not_explored() -> None:
    ids = ["oos", "bought", "touched", "r3", "filtered", "ok"]
    catalog = Catalog(3600.0, fresh_below=100)  # "touched" stays fresh through its 21 views
    for item_id in ids:
        state = ItemState()
        state.apply_catalog("tea", "", None, item_id != "oos", 1.0)
        catalog.upsert(item_id, state)
    user = _user(("touched", "tea"), bought=("bought",))
    for _ in range(20):  # whatever the draw, only "ok" may come
        user.apply_click("touched", "view", user.recent[-1].ts + 1.0, "tea", 3600.0)
        catalog.bump("touched", "tea", "view", user.recent[-1].ts)  # as the click path does
        out, explored = explore(_top(10), user, catalog, 10, 1, allowed=lambda i, c: i != "filtered")
        assert explored == ["ok"] and len(out) == 10


def test_placed_items_keep_their_places() -> None:
    catalog = _catalog(("a", "tea"), ("b", "tea"))
    user = _user(("t0", "tea"))
    top = _top(10)
    out, explored = explore(top, user, catalog, 10, 2, placed={"r9", "r8"})
    assert sorted(explored) == ["a", "b"]
    assert [i for i, _ in out] == ["r0", "r1", "r2", "r3", "r4", "r5", "r8", "r9", *explored]
    assert explore(top, user, catalog, 10, 1, placed={i for i, _ in top}) == (top, [])


def test_the_categories_are_the_strongest_interests_else_the_last_click() -> None:
    jam = [(f"j{n}", "jam") for n in range(3)]
    user = _user(("x", "x"), ("a", "tea"), ("b", "tea"), ("c", "cake"), ("d", "cake"), *jam)
    assert explore_categories(user) == ["jam", "cake", "tea"]  # equal counts: the later one first
    no_category = _user(("a", ""))
    assert explore_categories(no_category) == [] and explore_categories(UserState()) == []


def test_the_draw_is_fixed_by_the_last_click_and_spreads_over_fresh_items() -> None:
    catalog = _catalog(*((f"n{i}", "tea") for i in range(EXPLORE_WINDOW)))
    seen = set()
    for n in range(40):
        user = _user(("t", "tea"), (f"t{n}", "tea"))
        first = explore(_top(10), user, catalog, 10, 1)
        assert explore(_top(10), user, catalog, 10, 1) == first  # the same state, the same draw
        seen.update(first[1])
    assert len(seen) > EXPLORE_WINDOW // 2
    older = _catalog(*((f"n{i}", "tea") for i in range(EXPLORE_WINDOW + 1)))
    assert "n0" not in {explore(_top(10), _user(("t", "tea"), (f"t{n}", "tea")), older, 10, 1)[1][0] for n in range(40)}
    assert explore_seed(UserState()) == 0


def test_an_item_engaged_often_enough_is_no_longer_explored() -> None:
    catalog = _catalog(("new", "tea"))
    user = _user(("t0", "tea"))
    for n in range(2):
        catalog.bump("new", "tea", "view", float(n))
    assert explore(_top(10), user, catalog, 10, 1)[1] == ["new"]
    catalog.bump("new", "tea", "view", 3.0)  # the third: fresh_below reached
    assert explore(_top(10), user, catalog, 10, 1) == (_top(10), [])
