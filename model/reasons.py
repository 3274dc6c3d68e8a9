"""Why an item was recommended, read from what retrieval already computed for it.

Each candidate's feature row (``model.candidate_features``) records how retrieval found it: in
the user's history, co-visited with the user's recent items, following them in other shoppers'
streams, in a category the user is interested in, popular in its category or in the shop. The
recommended items' rows are read once, after ranking, with the merchandising rules that placed or
boosted them: no second pass over the catalog or the index.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from model.candidate_features import FEATURE_INDEX
from model.ranking import Ranking
from model.retrieval import CandidatePool
from model.rules import RulePlan

#: The feature columns a reason is read from, in the order reasons are listed.
_COLUMNS = np.array(
    [FEATURE_INDEX[name] for name in ("seen", "covis", "after", "interest", "category_rank", "popularity_rank")]
)


def reasons(
    pool: CandidatePool,
    ranking: Ranking,
    chosen: Sequence[tuple[str, float]],
    plan: RulePlan | None,
    explored: Collection[str] = (),
) -> list[list[str]]:
    """Per chosen item: ``rule:<rule_id>`` of the rules that acted on it, then ``viewed``,
    ``covisited``, ``followed`` (comes after the user's recent items), ``interest:<category>``,
    ``popular_in:<category>`` and ``popular``, those that hold; ``explore`` alone for the
    ``explored`` ones (``model.candidates.explore`` placed them, not the ranking or a rule).
    ``ranking``: the pool's ranking the items were chosen from, which already walked past them."""
    at: dict[str, int] = {}
    for item_id, _ in chosen:
        if item_id in explored:
            continue
        where = ranking.position(item_id)
        if where is not None:
            at[item_id] = where
    found = [at[item_id] for item_id, _ in chosen if item_id in at]
    # ``take`` along each axis: half the time of fancy indexing for ten rows.
    rows = iter(pool.features.take(found, axis=0).take(_COLUMNS, axis=1).tolist() if found else [])
    categories = pool.categories
    out = []
    for item_id, _ in chosen:
        if item_id in explored:
            out.append(["explore"])
            continue
        where = at.get(item_id)
        category = categories[where] if where is not None else ""
        why = plan.reasons(item_id, category) if plan is not None else []
        if where is not None:
            seen, covis, after, interest, in_category, popular = next(rows)
            if seen:
                why.append("viewed")
            if covis:
                why.append("covisited")
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
