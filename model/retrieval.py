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
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from model.config import N_CANDIDATE_FEATURES
from state.catalog import Catalog
from state.user import ACTION_WEIGHT, UserState


class CovisIndex:
    """Item-to-item co-visitation counts: how often two items appear close together in one user's
    stream. Bounded: at most ``max_items`` items (least recently updated evicted first), each with
    at most ``max_neighbors`` neighbours (weakest dropped)."""

    def __init__(self, max_items: int = 200_000, max_neighbors: int = 50, window: int = 5) -> None:
        self.max_items = max_items
        self.max_neighbors = max_neighbors
        self.window = window
        self._neighbors: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._counts: OrderedDict[str, int] = OrderedDict()  # interactions per item

    def __len__(self) -> int:
        return len(self._neighbors)

    def observe(self, user_before: UserState, item_id: str) -> None:
        """Pair ``item_id`` with the user's last ``window`` distinct items; nearer pairs count
        more."""
        sources: list[str] = []
        for r in reversed(user_before.recent):
            if r.item_id != item_id and r.item_id not in sources:
                sources.append(r.item_id)
                if len(sources) == self.window:
                    break
        for distance, other in enumerate(sources):
            w = 1.0 / (1.0 + distance)
            self._add(other, item_id, w)
            self._add(item_id, other, w)
        self._counts[item_id] = self._counts.pop(item_id, 0) + 1
        if len(self._counts) > self.max_items:
            self._counts.popitem(last=False)

    def count(self, item_id: str) -> int:
        """Interactions seen with the item (0 once evicted): with co-visitation counts, tells a
        specific association from mere popularity."""
        return self._counts.get(item_id, 0)

    def _add(self, a: str, b: str, w: float) -> None:
        neighbors = self._neighbors.get(a)
        if neighbors is None:
            neighbors = self._neighbors[a] = {}
            if len(self._neighbors) > self.max_items:
                self._neighbors.popitem(last=False)
        else:
            self._neighbors.move_to_end(a)
        neighbors[b] = neighbors.get(b, 0.0) + w
        if len(neighbors) > 2 * self.max_neighbors:
            kept = sorted(neighbors.items(), key=lambda kv: kv[1], reverse=True)
            neighbors.clear()
            neighbors.update(kept[: self.max_neighbors])

    def neighbors(self, item_id: str) -> dict[str, float]:
        return self._neighbors.get(item_id, {})

    def scores(self, user: UserState, sources: int, per_source: int) -> dict[str, float]:
        """Co-visitation scores of items around the user's last ``sources`` distinct items (each
        source's ``per_source`` strongest neighbours, newer sources weighted more)."""
        out: dict[str, float] = {}
        seen: list[str] = []
        for r in reversed(user.recent):
            if r.item_id in seen:
                continue
            seen.append(r.item_id)
            weight = 1.0 / len(seen)
            neighbors = self._neighbors.get(r.item_id)
            if neighbors:
                top = sorted(neighbors.items(), key=lambda kv: kv[1], reverse=True)[:per_source]
                for other, w in top:
                    out[other] = out.get(other, 0.0) + weight * w
            if len(seen) == sources:
                break
        return out


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    history: int = 50
    covis_sources: int = 5
    covis_per_source: int = 30
    covis_max: int = 100
    categories: int = 3
    per_category: int = 20
    popular: int = 50


@dataclass(slots=True)
class CandidatePool:
    """Candidates for one user at one moment, with their categories and feature rows."""

    items: list[str]
    categories: list[str]
    features: np.ndarray  # [len(items), N_CANDIDATE_FEATURES], float32
    #: How many of ``items`` retrieval found (the rest are ``extra`` items); -1: all of them.
    retrieved: int = -1
    #: The feature function of this user at this moment (set by :func:`retrieve`).
    featurize: Callable[[list[str]], tuple[list[str], np.ndarray]] | None = field(
        default=None, repr=False, compare=False
    )

    def was_retrieved(self, i: int) -> bool:
        return self.retrieved < 0 or i < self.retrieved

    def with_extra(self, more: Iterable[str]) -> CandidatePool:
        """This pool plus the ``more`` items it does not hold yet, appended as extras (not
        retrieved), with exactly the features ``retrieve(..., extra=more)`` would give them."""
        have = set(self.items)
        new = [item for item in dict.fromkeys(more) if item not in have]
        if not new:
            return self
        if self.featurize is None:
            raise ValueError("this pool was not built by retrieve(); it cannot add items")
        categories, feats = self.featurize(new)
        return CandidatePool(
            self.items + new, self.categories + categories,
            np.concatenate([self.features, feats]),
            len(self.items) if self.retrieved < 0 else self.retrieved, self.featurize,
        )


def _pop_score(catalog: Catalog, item_id: str, top_log: float) -> float:
    entry = catalog.get(item_id)
    if entry is None or not math.isfinite(entry.pop_log):
        return 0.0
    return max(0.0, 1.0 + (entry.pop_log - top_log) / 20.0)


def retrieve(
    user: UserState,
    now: float,
    catalog: Catalog,
    index: CovisIndex,
    interests: list[tuple[str, float]],
    config: RetrievalConfig = RetrievalConfig(),
    extra: Iterable[str] = (),
) -> CandidatePool:
    """Gather candidates and compute their features. ``interests`` are the user's decayed category
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
    last_item = user.recent[-1].item_id if user.recent else ""
    after_last = index.neighbors(last_item)
    after_last_rank = {
        item: rank for rank, item in
        enumerate(sorted(after_last, key=after_last.__getitem__, reverse=True))
    }
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

    share = dict(interests)
    recent_cats: dict[str, int] = {}
    for r in user.recent:
        recent_cats[r.category] = recent_cats.get(r.category, 0) + 1
    n_recent = max(1, len(user.recent))
    top_log = catalog.get(popular[0]).pop_log if popular else 0.0  # type: ignore[union-attr]
    user_size = math.log1p(len(user.recent)) / 4.0
    def featurize(items: list[str]) -> tuple[list[str], np.ndarray]:
        feats = np.zeros((len(items), N_CANDIDATE_FEATURES), np.float32)
        categories: list[str] = []
        for i, item in enumerate(items):
            category = catalog.category_of(item) or hist_category.get(item, "")
            categories.append(category)
            row = feats[i]
            h = history.get(item)
            if h is not None:
                age = max(0.0, now - h[3])
                row[0] = 1.0
                row[1] = 1.0 / (1.0 + h[0])
                row[2] = math.log1p(h[1]) / 2.0
                row[3] = h[2] / 5.0
                row[4] = math.exp(-age / 600.0)
                row[5] = math.exp(-age / 86_400.0)
            c = covis.get(item)
            if c is not None:
                row[6] = math.log1p(c)
                rank = covis_rank.get(item)
                row[7] = 0.0 if rank is None else 1.0 / (1.0 + rank)
            if category:
                row[8] = share.get(category, 0.0)
                row[9] = float(category == last_category)
                row[13] = recent_cats.get(category, 0) / n_recent
                row[15] = 1.0
            row[10] = _pop_score(catalog, item, top_log)
            rank = pop_rank.get(item)
            row[11] = 0.0 if rank is None else 1.0 / (1.0 + rank)
            rank = cat_rank.get(item)
            row[12] = 0.0 if rank is None else 1.0 / (1.0 + rank)
            row[14] = user_size
            a = after_last.get(item)
            if a is not None:
                row[16] = math.log1p(a)
                row[17] = 1.0 / (1.0 + after_last_rank[item])
            row[18] = math.log1p(index.count(item)) / 5.0
        return categories, feats

    categories, feats = featurize(items)
    return CandidatePool(items, categories, feats, retrieved, featurize)
