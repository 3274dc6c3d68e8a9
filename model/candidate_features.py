"""The ranker's candidate features: their names, in the order of a feature row.

:mod:`model.retrieval` computes one row per candidate in this order; the ranker's weights over
them are learned by position, so the layout travels in every snapshot's config
(``ModelConfig.candidate_features``) and a worker refuses a snapshot trained on another layout.
Changing the order or the set is a change of the model: rename, retrain, ship a new warm start.
"""

from __future__ import annotations

#: Name -> what it measures (history = the user's last items; ranks are 1 / (1 + rank), 0 if absent).
FEATURE_MEANINGS: dict[str, str] = {
    "seen": "1 if the item is in the user's history",
    "recency": "1 / (1 + position of the item's last visit in the history)",
    "repeats": "log1p(visits of the item) / 2",
    "action": "the strongest action on the item, its weight / 5",
    "fresh": "exp(-age of the last visit / 10 minutes)",
    "day": "exp(-age of the last visit / 1 day)",
    "covis": "log1p(co-visitation score with the user's recent items)",
    "covis_rank": "rank among the co-visited candidates",
    "interest": "the user's decayed interest in the item's category",
    "same_last_category": "1 if the item's category is that of the user's last item",
    "popularity": "decayed popularity against the most popular item's, log scale",
    "popularity_rank": "rank in the shop's popular list",
    "category_rank": "rank in its category's popular list",
    "recent_category_share": "share of the user's recent items in the item's category",
    "user_size": "how much the user has done (log scale)",
    "category_known": "1 if the item's category is known",
    "after": "log1p(how strongly the item follows the user's recent items)",
    "after_rank": "rank among the items that follow the user's recent items",
    "item_interactions": "log1p(the item's co-visitation count) / 5",
}
CANDIDATE_FEATURES: tuple[str, ...] = tuple(FEATURE_MEANINGS)
N_CANDIDATE_FEATURES = len(CANDIDATE_FEATURES)
#: A feature's position in a row.
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(CANDIDATE_FEATURES)}
