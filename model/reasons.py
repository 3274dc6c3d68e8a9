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

import numpy as np

from model.candidate_features import FEATURE_INDEX
from model.covisitation import CovisIndex
from model.ranking import Ranking
from model.retrieval import CandidatePool
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
    # ``take`` along each axis: half the time of fancy indexing for ten rows.
    found = list(at.values())
    read = pool.features.take(found, axis=0).take(_COLUMNS, axis=1).tolist() if found else []
    rows = dict(zip(at, read, strict=True))
    source: dict[str, str | None] = {}
    bought: set[str] = set()
    if user is not None and origins is not None:
        covisited = [item_id for item_id, row in rows.items() if row[1]]
        if covisited:
            named = origins.index.sources_of(user, origins.sources, origins.per_source, covisited)
            source = dict(zip(covisited, named, strict=True))
        if user.bought and origins.purchases is not None:
            asked = [item_id for item_id, _ in chosen if item_id not in explored]
            held = origins.purchases.held_by(user.bought, asked)
            bought = {item_id for item_id, yes in zip(asked, held, strict=True) if yes}
    categories = pool.categories
    out = []
    for item_id, _ in chosen:
        if item_id in explored:
            out.append(["explore"])
            continue
        where = at.get(item_id)
        category = categories[where] if where is not None else ""
        why = plan.reasons(item_id, category) if plan is not None else []
        row = rows.get(item_id)
        if row is None:
            if item_id in bought:
                why.append("bought_together")
            out.append(why)
            continue
        seen, covis, after, interest, in_category, popular = row
        if seen:
            why.append("viewed")
        if covis:
            named_source = source.get(item_id)
            why.append(f"covisited:{named_source}" if named_source else "covisited")
        if item_id in bought:
            why.append("bought_together")
        if after:
            why.append("followed")
        if interest and category:
            why.append(f"interest:{category}")
        if in_category and category:
            why.append(f"popular_in:{category}")
        if popular:
            why.append("popular")
        out.append(why)
    return out
