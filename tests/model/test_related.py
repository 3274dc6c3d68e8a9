"""Related items: co-visitation neighbours with a same-category top-up, and co-purchases paired
only among purchases; never the item itself or an out-of-stock item."""

from __future__ import annotations

from model.covisitation import CovisIndex
from model.related import bought_together, near, observe_purchase, similar
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState


def _catalog(out_of_stock: set[str]) -> Catalog:
    catalog = Catalog(3600.0, refresh_s=0.0)
    for n in range(12):
        item = ItemState()
        item.apply_catalog("tea" if n < 8 else "cake", "", None, f"i{n}" not in out_of_stock, 1.0)
        item.apply_activity({"view": float(20 - n)}, 1.0, 3600.0, item.category)
        catalog.upsert(f"i{n}", item)
    return catalog


def _stream(index: CovisIndex, purchases: CovisIndex, clicks: list[tuple[str, str]]) -> None:
    user = UserState()
    for n, (item_id, action) in enumerate(clicks):
        index.observe(user, item_id)
        if action == "buy":
            observe_purchase(purchases, user, item_id)
        user.apply_click(item_id, action, 1.0 + n, "", 3600.0)


def test_similar_is_covisited_first_then_popular_in_the_category() -> None:
    catalog = _catalog({"i3"})
    index, purchases = CovisIndex(), CovisIndex()
    _stream(index, purchases, [("i0", "view"), ("i9", "view"), ("i3", "view"), ("i0", "view"), ("i9", "view")])
    found = similar("i0", index, catalog, 4)
    assert found[0][:1] == ("i9",) and found[0][2] == "covisited" and found[0][1] > 0
    assert [i for i, _, _ in found[1:]] == ["i1", "i2", "i4"]  # i3 out of stock, i0 itself left out
    assert all(source == "category" and score == 0.0 for _, score, source in found[1:])
    assert similar("i5", CovisIndex(), catalog, 2) == [("i0", 0.0, "category"), ("i1", 0.0, "category")]


def test_bought_together_pairs_purchases_only() -> None:
    catalog = _catalog(set())
    index, purchases = CovisIndex(), CovisIndex()
    _stream(index, purchases, [("i1", "buy"), ("i2", "view"), ("i4", "buy"), ("i5", "cart"), ("i6", "buy")])
    together = dict(bought_together("i4", purchases, catalog, 10))
    assert set(together) == {"i1", "i6"}  # viewed or carted items are no co-purchase
    assert dict(bought_together("i6", purchases, catalog, 10)) == {"i4": 1.0, "i1": 0.5}  # nearer counts more
    assert bought_together("i2", purchases, catalog, 10) == []
    assert "i2" in {i for i, _, _ in similar("i4", index, catalog, 10)}


def test_near_is_covisited_in_the_same_category_only() -> None:
    catalog = _catalog(set())  # i0..i7 tea, i8..i11 cake
    index, purchases = CovisIndex(), CovisIndex()
    _stream(index, purchases, [("i0", "view"), ("i9", "view"), ("i2", "view"), ("i0", "view"), ("i2", "view")])
    assert near("i0", index, catalog, 5) == ["i2"]  # i9 is cake
    assert near("i0", index, catalog, 0) == [] and near("zz", index, catalog, 5) == []
