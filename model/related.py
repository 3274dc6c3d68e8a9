"""Items related to an item: the ones viewed with it and the ones bought with it.

``similar`` reads the serving model's co-visitation index (items that shoppers' streams hold close
to this one), topped up with the popular items of its category when the index knows too few;
``bought_together`` reads a co-purchase index (a :class:`~model.covisitation.CovisIndex` fed only
with purchases, each paired with the shopper's earlier ones). Both are kept by each worker from
the clicks it processes, in memory and in checkpoints of its data directory
(``streams/engine/covisitation_files.py``); neither shows out-of-stock items or the item itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from model.covisitation import CovisIndex
from state.catalog import Catalog
from state.user import UserState

#: A purchase is paired with this many of the shopper's previous distinct purchases.
PURCHASE_WINDOW = 5


def observe_purchase(index: CovisIndex, user_before: UserState, item_id: str) -> None:
    """Pair a bought item with the shopper's last purchases before it, newest first."""
    earlier = [b for b in reversed(user_before.bought) if b != item_id][:PURCHASE_WINDOW]
    index.pair(item_id, earlier)


def _strongest(weights: Mapping[str, float], item_id: str, catalog: Catalog, k: int) -> list[tuple[str, float]]:
    ranked = sorted(weights, key=weights.__getitem__, reverse=True)
    return [(i, weights[i]) for i in ranked if i != item_id and catalog.available(i)][:k]


def similar(item_id: str, index: CovisIndex, catalog: Catalog, k: int) -> list[tuple[str, float, str]]:
    """Up to ``k`` (item, score, source) best first: ``covisited`` neighbours by co-visitation
    weight, then ``category`` (popular in the item's category, score 0)."""
    out = [(i, w, "covisited") for i, w in _strongest(index.neighbours(item_id), item_id, catalog, k)]
    category = catalog.category_of(item_id)
    if len(out) < k and category:
        have = {i for i, _, _ in out} | {item_id}
        for other in catalog.popular(k + len(have), category):
            if other not in have and catalog.available(other):
                out.append((other, 0.0, "category"))
                if len(out) == k:
                    break
    return out


def bought_together(item_id: str, purchases: CovisIndex, catalog: Catalog, k: int) -> list[tuple[str, float]]:
    """Up to ``k`` (item, co-purchase weight) best first."""
    return _strongest(purchases.neighbours(item_id), item_id, catalog, k)


def near(item_id: str, index: CovisIndex, catalog: Catalog, k: int) -> list[str]:
    """Up to ``k`` of the item's co-visitation neighbours in its own category, strongest first:
    what a shopper who dislikes the item is likely to dislike too."""
    category = catalog.category_of(item_id)
    if not category:
        return []
    weights = index.neighbours(item_id)
    same = [i for i in sorted(weights, key=weights.__getitem__, reverse=True) if catalog.category_of(i) == category]
    return [i for i in same if i != item_id][:k]
