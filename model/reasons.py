"""Why an item was recommended, read from what retrieval already computed for it.

Each candidate's feature row (``model.candidate_features``) records how retrieval found it: in
the user's history, co-visited with the user's recent items, following them in other shoppers'
streams, in a category the user is interested in, popular in its category or in the shop. The
recommended items' rows are read once, after ranking, with the merchandising rules that placed or
boosted them: no second pass over the catalog. Only for the chosen items, two lookups name more:
which recent item a co-visited one comes from, and whether the co-purchase index pairs one with
an item the user bought (:class:`Origins`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from model import covisitation, kernels
from model.candidate_features import FEATURE_INDEX
from model.covisitation import CovisIndex
from model.ranking import Ranking
from model.retrieval import CandidatePool, RetrievedPool
from model.rules import RulePlan
from state.user import UserState

#: The feature columns a reason is read from, in the order reasons are listed.
_COLUMNS = np.array(
    [FEATURE_INDEX[name] for name in ("seen", "covis", "after", "interest", "category_rank", "popularity_rank")]
)


@dataclass(frozen=True, slots=True)
class Origins:
    """Where the chosen items' sources are looked up: the co-visitation index retrieval read, with
    the bounds it read it with (``RetrievalConfig.covis_sources`` and ``covis_per_source``), and
    the co-purchase index (``model.related``)."""

    index: CovisIndex
    sources: int
    per_source: int
    purchases: CovisIndex | None = None


def reasons(
    pool: CandidatePool,
    ranking: Ranking,
    chosen: Sequence[tuple[str, float]],
    plan: RulePlan | None,
    explored: Collection[str] = (),
    user: UserState | None = None,
    origins: Origins | None = None,
) -> list[list[str]]:
    """Per chosen item: ``rule:<rule_id>`` of the rules that acted on it, ``demoted:*``, then
    ``viewed``, ``covisited:<item_id>`` (the user's recent item it is most co-visited with; plain
    ``covisited`` without ``user`` and ``origins``), ``bought_together`` (a co-purchase neighbour of
    an item the user bought), ``followed`` (comes after the user's recent items),
    ``interest:<category>``, ``popular_in:<category>`` and ``popular``, those that hold; ``explore``
    alone for the ``explored`` ones (``model.candidates.explore`` placed them, not the ranking or a
    rule). ``ranking``: the pool's ranking the items were chosen from, which already walked past
    them."""
    at: dict[str, int] = {}
    for item_id, _ in chosen:
        if item_id in explored:
            continue
        where = ranking.position(item_id)
        if where is not None:
            at[item_id] = where
    found = list(at.values())
    if found:  # ``take`` along each axis: half the time of fancy indexing for ten rows
        rows = pool.features.take(found, axis=0).take(_COLUMNS, axis=1).tolist()
        categories = pool.categories_at(found)
    sources: list[str | None] = []
    bought: list[bool] = []
    if found and user is not None and origins is not None:
        sources, bought = _lookup(origins, pool, user, list(at), found, [row[1] > 0.0 for row in rows])
    out = []
    j = 0  # the next of ``found``, in the order of ``chosen``
    for item_id, _ in chosen:
        if item_id in explored:
            out.append(["explore"])
            continue
        if item_id not in at:  # placed by a rule, not retrieved
            out.append(plan.reasons(item_id, "") if plan is not None else [])
            continue
        category = categories[j]
        why = plan.reasons(item_id, category) if plan is not None else []
        seen, covis, after, interest, in_category, popular = rows[j]
        if seen:
            why.append("viewed")
        if covis:
            source = sources[j] if sources else None
            why.append(f"covisited:{source}" if source else "covisited")
        if bought and bought[j]:
            why.append("bought_together")
        if after:
            why.append("followed")
        if category:
            if interest:
                why.append(f"interest:{category}")
            if in_category:
                why.append(f"popular_in:{category}")
        if popular:
            why.append("popular")
        out.append(why)
        j += 1
    return out


_NONE = np.zeros(0, np.int32)


def _lookup(
    origins: Origins, pool: CandidatePool, user: UserState, items: list[str], found: list[int], covisited: list[bool]
) -> tuple[list[str | None], list[bool]]:
    """Of the chosen retrieved ``items`` (at ``found`` in the pool): each one's co-visitation source
    (None where not ``covisited``) and whether it is a co-purchase neighbour of an item the user
    bought. One compiled call when both indexes share the pool's id space; else each index's own
    lookups (the reference index of the click bench)."""
    index, purchases = origins.index, origins.purchases
    ids = index.ids
    if isinstance(pool, RetrievedPool) and pool.index is index and (purchases is None or purchases.ids is ids):
        index.settle()
        slot, row_ids, row_w, row_len, scratch, *_ = index.arrays()
        bought, p_slot, p_row_ids, p_row_len = _NONE, slot, row_ids, row_len  # no purchase: no row read
        if user.bought and purchases is not None and len(purchases):
            bought = np.fromiter(map(ids.get, user.bought, repeat(-1)), np.int32, len(user.bought))
            purchases.settle()
            p_slot, p_row_ids, _, p_row_len, *_ = purchases.arrays()
        named, held = kernels.compiled().origins(
            pool.recent_ids, origins.sources, origins.per_source, pool.ids.take(found), np.array(covisited),
            bought, slot, row_ids, row_w, row_len, scratch, p_slot, p_row_ids, p_row_len,
        )  # fmt: skip
        names = ids.names
        return [names[n] if n >= 0 else None for n in named.tolist()], held.tolist()
    asked = [item for item, yes in zip(items, covisited, strict=True) if yes]
    by_item = dict(zip(asked, index.sources_of(user, origins.sources, origins.per_source, asked), strict=True))
    sources = [by_item.get(item) for item in items]
    if not user.bought or purchases is None:
        return sources, []
    return sources, purchases.held_by(user.bought, items)


def _origins(
    recent: Any, n_sources: int, per_source: int, items: Any, covisited: Any, bought: Any,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, at: Any, p_slot: Any, p_row_ids: Any, p_row_len: Any,
) -> Any:  # fmt: skip
    """Per item: the dense id of its co-visitation source among the last ``n_sources`` distinct of
    ``recent`` (oldest first; -1: none, or not ``covisited``), and whether a co-purchase row
    (``p_*``) of ``bought`` holds it. ``at`` is ``_sources_of``'s scratch."""
    sources = np.empty(max(n_sources, 0), np.int32)
    n = 0
    for k in range(recent.shape[0] - 1, -1, -1):
        if n == sources.shape[0]:
            break
        item = recent[k]
        j = 0
        while j < n and sources[j] != item:
            j += 1
        if j == n:
            sources[n] = item
            n += 1
    asked = np.where(covisited, items, -1).astype(np.int32)
    ranks = covisitation._sources_of(sources[:n], per_source, asked, slot, row_ids, row_w, row_len, at)
    named = np.full(items.shape[0], -1, np.int32)
    for i in range(items.shape[0]):
        if ranks[i] >= 0:
            named[i] = sources[ranks[i]]
    held = covisitation._held_by(bought, items, p_slot, p_row_ids, p_row_len, at)
    return named, held


def warm_up() -> None:
    """Run the compiled lookup once, on a tiny index (``model.kernels.warm``)."""
    index = CovisIndex(max_items=1, max_neighbors=1)
    index.pair("b", ["a"])
    index.settle()
    slot, row_ids, row_w, row_len, at, *_ = index.arrays()
    ids = index.ids.of(["a", "b"])
    kernels.compiled().origins(
        ids, 1, 1, ids, np.ones(2, np.bool_), ids[:1], slot, row_ids, row_w, row_len, at, slot, row_ids, row_len
    )
