"""Candidate retrieval and the cheap per-candidate features the ranker reads.

Ranking every item of a 100,000-item catalog per event is out of the question, so each
recommendation first gathers a few hundred candidates from bounded sources (the user's own recent
items, items co-visited with them, popular items in the user's categories, popular items overall),
then the model ranks only those. Retrieval cost depends on these bounds, not on the catalog size.

The same functions build the candidates and features for serving and for training examples, so the
ranker learns on exactly the distribution it is later asked to rank.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from model.candidate_features import N_CANDIDATE_FEATURES
from model.covisitation import CovisIndex
from state.catalog import Catalog
from state.user import ACTION_WEIGHT, UserState


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """How many candidates each source offers. Co-visitation reads the user's last 10 distinct
    items and keeps the 200 strongest: a MovieLens user rates films in runs, and with 5 sources
    and 100 candidates the pool held 40% of the next positives of the tuning prefix (with 10 and
    200, 48%). A sparse shop's pools barely grow (a simulated shop's: 112 -> 119 candidates).
    The "after" feature still reads 5 sources: fewer, nearer items say more about what comes
    next."""

    history: int = 50
    covis_sources: int = 10
    covis_per_source: int = 30
    covis_max: int = 200
    after_sources: int = 5
    categories: int = 3
    per_category: int = 20
    popular: int = 50


class CandidatePool:
    """Candidates for one user at one moment. Their feature rows and categories are computed
    when asked for, in one pass: ranking reads all of them, a training example only a handful."""

    __slots__ = ("_categories", "_features", "_source", "items", "retrieved")

    def __init__(
        self,
        items: list[str],
        categories: list[str] | None = None,
        features: np.ndarray | None = None,
        retrieved: int = -1,
        source: _Features | None = None,
    ) -> None:
        if (features is None or categories is None) and source is None:
            raise ValueError("a pool needs its features and categories or the function that computes them")
        self.items = items
        #: How many of ``items`` retrieval found (the rest are ``extra`` items); -1: all of them.
        self.retrieved = retrieved
        self._source = source
        self._features = features
        self._categories = categories

    @property
    def features(self) -> np.ndarray:
        """[len(items), N_CANDIDATE_FEATURES], float32."""
        if self._features is None:
            self._compute()
        return self._features  # type: ignore[return-value]

    @property
    def categories(self) -> list[str]:
        if self._categories is None:
            self._compute()
        return self._categories  # type: ignore[return-value]

    def _compute(self) -> None:
        features, categories = self._source.rows(self.items)  # type: ignore[union-attr]
        if self._features is None:
            self._features = features
        if self._categories is None:
            self._categories = categories

    def category(self, i: int) -> str:
        if self._categories is not None:
            return self._categories[i]
        return self._source.category(self.items[i])  # type: ignore[union-attr]

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """The feature rows of these candidates, exactly as :attr:`features` holds them."""
        if self._features is not None:
            return self._features[list(indices)]
        return self._source.rows([self.items[i] for i in indices])[0]  # type: ignore[union-attr]

    def was_retrieved(self, i: int) -> bool:
        return self.retrieved < 0 or i < self.retrieved

    def with_extra(self, more: Iterable[str]) -> CandidatePool:
        """This pool plus the ``more`` items it does not hold yet, appended as extras (not
        retrieved), with exactly the features ``retrieve(..., extra=more)`` would give them."""
        have = set(self.items)
        new = [item for item in dict.fromkeys(more) if item not in have]
        if not new:
            return self
        if self._source is None:
            raise ValueError("this pool was not built by retrieve(); it cannot add items")
        features = categories = None
        if self._features is not None:
            rows, added = self._source.rows(new)
            features, categories = np.concatenate([self._features, rows]), self.categories + added
        return CandidatePool(
            self.items + new,
            categories,
            features,
            len(self.items) if self.retrieved < 0 else self.retrieved,
            self._source,
        )


def retrieve(
    user: UserState,
    now: float,
    catalog: Catalog,
    index: CovisIndex,
    interests: list[tuple[str, float]],
    config: RetrievalConfig = RetrievalConfig(),
    extra: Iterable[str] = (),
) -> CandidatePool:
    """Gather candidates (their features are computed when asked for). ``interests`` are the user's decayed category
    shares at ``now``; ``extra`` items (a training positive) are added if not retrieved, so that
    they get the very features they would have had as candidates."""
    history: dict[str, list[float]] = {}  # item -> [position of last visit, count, max action w, ts]
    hist_category: dict[str, str] = {}
    for pos, r in enumerate(reversed(user.recent)):
        h = history.get(r.item_id)
        if h is None:
            history[r.item_id] = [pos, 1.0, ACTION_WEIGHT[r.action], r.ts]
            hist_category[r.item_id] = r.category
        else:
            h[1] += 1.0
            h[2] = max(h[2], ACTION_WEIGHT[r.action])
    covis = index.scores(user, config.covis_sources, config.covis_per_source)
    after = index.following(user, config.after_sources)
    covis_ranked = sorted(covis, key=covis.__getitem__, reverse=True)[: config.covis_max]
    covis_rank = {item: rank for rank, item in enumerate(covis_ranked)}
    popular = catalog.popular(config.popular)
    pop_rank = {item: rank for rank, item in enumerate(popular)}
    last_category = user.recent[-1].category if user.recent else ""
    wanted = [c for c, _ in interests[: config.categories]]
    if last_category and last_category not in wanted:
        wanted.append(last_category)
    cat_rank: dict[str, int] = {}
    cat_items: list[str] = []
    for category in wanted:
        for rank, item in enumerate(catalog.popular(config.per_category, category)):
            cat_rank.setdefault(item, rank)
            cat_items.append(item)

    items: list[str] = []
    seen: set[str] = set()
    for item in (*list(history)[: config.history], *covis_ranked, *cat_items, *popular):
        if item not in seen:
            seen.add(item)
            items.append(item)
    retrieved = len(items)
    for item in extra:
        if item not in seen:
            seen.add(item)
            items.append(item)

    recent_cats: dict[str, int] = {}
    for r in user.recent:
        recent_cats[r.category] = recent_cats.get(r.category, 0) + 1
    source = _Features(
        now,
        catalog,
        index,
        history,
        hist_category,
        covis,
        covis_rank,
        after,
        pop_rank,
        cat_rank,
        share=dict(interests),
        last_category=last_category,
        recent_cats=recent_cats,
        user_size=math.log1p(len(user.recent)) / 4.0,
        top_log=catalog.get(popular[0]).pop_log if popular else 0.0,  # type: ignore[union-attr]
    )
    return CandidatePool(items, None, None, retrieved, source)


@dataclass(slots=True)
class _Features:
    """The feature function of one user at one moment: what retrieval found out about the user
    and the candidates, turned into a row per item. A row depends on its item only, so rows
    computed alone equal rows computed together."""

    now: float
    catalog: Catalog
    index: CovisIndex
    history: dict[str, list[float]]  # item -> [position of last visit, count, max action w, ts]
    hist_category: dict[str, str]
    covis: dict[str, float]
    covis_rank: dict[str, int]
    after: dict[str, float]  # how strongly each item tends to follow the user's recent items
    pop_rank: dict[str, int]
    cat_rank: dict[str, int]
    share: dict[str, float]  # the user's interest per category
    last_category: str
    recent_cats: dict[str, int]
    user_size: float
    top_log: float
    after_rank: dict[str, int] = field(init=False)
    n_recent: int = field(init=False)

    def __post_init__(self) -> None:
        after = self.after
        self.after_rank = {item: rank for rank, item in enumerate(sorted(after, key=after.__getitem__, reverse=True))}
        self.n_recent = max(1, sum(self.recent_cats.values()))

    def category(self, item: str) -> str:
        return self.catalog.category_of(item) or self.hist_category.get(item, "")

    def rows(self, items: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """The items' feature rows and categories. Plain floats, packed once at the end: writing
        numpy elements one by one, or converting a list of row tuples, cost more than computing
        them."""
        now, history, covis, covis_rank = self.now, self.history, self.covis, self.covis_rank
        after_of, after_rank = self.after, self.after_rank
        pop_rank, cat_rank, share = self.pop_rank, self.cat_rank, self.share
        recent_cats, last_category, n_recent = self.recent_cats, self.last_category, self.n_recent
        user_size, top_log, hist_category = self.user_size, self.top_log, self.hist_category
        entry_of = self.catalog.entries.get
        log1p, exp, isfinite = math.log1p, math.exp, math.isfinite
        top_known = isfinite(top_log)
        out: list[float] = []
        categories = []
        for item, count in zip(items, self.index.interactions(items), strict=True):
            entry = entry_of(item)
            category = (entry.category if entry is not None else "") or hist_category.get(item, "")
            categories.append(category)
            h = history.get(item)
            if h is None:
                seen = recency = repeats = action = fresh = day = 0.0
            else:
                age = max(0.0, now - h[3])
                seen, recency, repeats, action = 1.0, 1.0 / (1.0 + h[0]), log1p(h[1]) / 2.0, h[2] / 5.0
                fresh, day = exp(-age / 600.0), exp(-age / 86_400.0)
            c = covis.get(item)
            if c is None:
                co = co_rank = 0.0
            else:
                rank = covis_rank.get(item)
                co, co_rank = log1p(c), 0.0 if rank is None else 1.0 / (1.0 + rank)
            if category:
                interest, same_last = share.get(category, 0.0), float(category == last_category)
                recent_share, known = recent_cats.get(category, 0) / n_recent, 1.0
            else:
                interest = same_last = recent_share = known = 0.0
            pop = 0.0
            if entry is not None and isfinite(entry.pop_log):
                # The popular list is re-ranked at most once a second: in a new shop its head
                # may still be an item without activity (-inf) when this one has some.
                if top_known:
                    pop = 1.0 + (entry.pop_log - top_log) / 20.0
                    pop = pop if pop > 0.0 else 0.0
                else:
                    pop = 1.0
            rank = pop_rank.get(item)
            pop_r = 0.0 if rank is None else 1.0 / (1.0 + rank)
            rank = cat_rank.get(item)
            cat_r = 0.0 if rank is None else 1.0 / (1.0 + rank)
            a = after_of.get(item)
            after, after_r = (0.0, 0.0) if a is None else (log1p(a), 1.0 / (1.0 + after_rank[item]))
            out += (  # in the order of model.candidate_features.CANDIDATE_FEATURES
                seen,
                recency,
                repeats,
                action,
                fresh,
                day,
                co,
                co_rank,
                interest,
                same_last,
                pop,
                pop_r,
                cat_r,
                recent_share,
                user_size,
                known,
                after,
                after_r,
                log1p(count) / 5.0,
            )
        packed = struct.pack(f"<{len(out)}f", *out)
        return np.frombuffer(packed, np.float32).reshape(len(items), N_CANDIDATE_FEATURES), categories
