"""Candidate retrieval as it was written in Python, with dicts, before ``model.retrieval`` made it
one compiled kernel over dense ids: the reference of ``shopguide bench --only click`` (with the
dict co-visitation index) and the oracle of tests/model/test_retrieval_kernel.py, not used by the
engine."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from model.candidate_features import N_CANDIDATE_FEATURES
from model.covisitation import CovisIndex
from model.retrieval import CandidatePool, RetrievalConfig
from model.scoring import NeuralServingModel
from state.catalog import Catalog
from state.user import ACTION_WEIGHT, UserState


class ReferenceServingModel(NeuralServingModel):
    """The serving model with :func:`reference_retrieve` for its pools (serving and examples)."""

    def pool(
        self,
        user: UserState,
        now: float,
        extra: Sequence[str] = (),
        half_life_s: float | None = None,
        *,
        lazy: bool = False,  # the reference computes every row
        alone_if_missed: bool = False,  # and retrieves every candidate
    ) -> CandidatePool:
        half_life = self.half_life if half_life_s is None else half_life_s
        interests = user.interest_weights(now, half_life, self.config.interests)
        return reference_retrieve(user, now, self.catalog, self.index, interests, self.retrieval, extra)

    def pools(self, users: Sequence[UserState], now: float) -> list[CandidatePool]:
        return [self.pool(user, now) for user in users]


class ReferencePool(CandidatePool):
    """A pool of :func:`reference_retrieve`, which adds extras with its feature function."""

    __slots__ = ("_source",)

    def __init__(
        self, items: list[str], categories: list[str], features: np.ndarray, retrieved: int, source: _Features
    ) -> None:
        super().__init__(items, categories, features, retrieved)
        self._source = source

    def with_extra(self, more: Iterable[str]) -> CandidatePool:
        have = set(self.items)
        new = [item for item in dict.fromkeys(more) if item not in have]
        if not new:
            return self
        rows, added = self._source.rows(new)
        return ReferencePool(
            self.items + new,
            self.categories + added,
            np.concatenate([self.features, rows]),
            len(self.items) if self.retrieved < 0 else self.retrieved,
            self._source,
        )


def reference_retrieve(
    user: UserState,
    now: float,
    catalog: Catalog,
    index: CovisIndex,
    interests: list[tuple[str, float]],
    config: RetrievalConfig | None = None,
    extra: Iterable[str] = (),
) -> ReferencePool:
    """Gather candidates as ``model.retrieval.retrieve`` did before it was a kernel. ``interests``
    are the user's decayed category shares at ``now``; ``extra`` items (a training positive) are
    added if not retrieved, so that they get the very features they would have had as
    candidates."""
    config = config or RetrievalConfig()
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
    features, categories = source.rows(items)
    return ReferencePool(items, categories, features, retrieved, source)


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
