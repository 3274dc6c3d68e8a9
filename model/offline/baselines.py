"""Simple methods the model is measured against, run in the same evaluation as the model.

Recommendation baselines speak the same two verbs as the model in a prequential replay
(``recommend`` before an event, ``observe`` after it) and pass through the same business filter
(``model.candidates.admissible``), so every method is scored under the same rules. The sentiment
baselines are TF-IDF + logistic regression (scikit-learn), plain and class-balanced, with the
analyzer the reference protocol uses for the language: character 1-2 grams for Chinese, word 1-2
grams for English.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from model.candidates import admissible
from model.covisitation import CovisIndex
from state.catalog import Catalog
from state.user import UserState


class Recommender(Protocol):
    name: str

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]: ...

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None: ...


class _TopScores:
    """Items by a score that only ever increases, with the best ``size`` kept sorted, so that a
    top-k read costs O(size) rather than O(items)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.scores: dict[str, float] = {}
        self.top: list[str] = []

    def add(self, item_id: str, score: float) -> None:
        self.scores[item_id] = score
        if item_id in self.top:
            self.top.sort(key=self.scores.__getitem__, reverse=True)
        elif len(self.top) < self.size or score > self.scores[self.top[-1]]:
            self.top.append(item_id)
            self.top.sort(key=self.scores.__getitem__, reverse=True)
            del self.top[self.size :]

    def ranked(self) -> list[tuple[str, float]]:
        return [(i, self.scores[i]) for i in self.top]


def _unseen(ranked: list[tuple[str, float]], user: UserState) -> list[tuple[str, float]]:
    """Without the items in the user's recent history (what a MovieLens user rated is never rated
    again; on Taobao, where shoppers come back, this is a poor idea, measured all the same)."""
    seen = {r.item_id for r in user.recent}
    return [(i, s) for i, s in ranked if i not in seen]


class Popularity:
    """Most interacted-with items so far (all time, every action counted once)."""

    name = "popularity"

    def __init__(self, catalog: Catalog, pool: int = 200, *, unseen_only: bool = False) -> None:
        self.catalog = catalog
        self._top = _TopScores(pool)
        self.unseen_only = unseen_only
        if unseen_only:
            self.name = f"{self.name}_unseen"

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        ranked = self._top.ranked()
        return admissible(_unseen(ranked, user) if self.unseen_only else ranked, user, self.catalog, k)

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        self._top.add(item_id, self._top.scores.get(item_id, 0.0) + 1.0)


class RecencyPopularity(Popularity):
    """Popularity with exponentially decayed counts (half-life ``half_life_s``). Kept as
    ``log2(sum 2^(t_i / h))``: every score decays at the same rate, so the order never needs
    recomputing when time passes."""

    name = "recency_popularity"

    def __init__(self, catalog: Catalog, half_life_s: float, pool: int = 200) -> None:
        super().__init__(catalog, pool)
        self.half_life = half_life_s

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        old = self._top.scores.get(item_id, -math.inf)
        self._top.add(item_id, float(np.logaddexp2(old, ts / self.half_life)))


class Covisitation:
    """Items co-visited with the user's last few items (the model's own retrieval index): a
    session-style item-to-item co-visitation, each click paired with the user's 5 previous
    distinct items, nearer pairs counting more; scores summed over the user's last 5 distinct
    items (newer ones weighted more). Only the past is in the index (it learns after scoring)."""

    name = "covisitation"

    def __init__(self, catalog: Catalog, index: CovisIndex | None = None, *, unseen_only: bool = False) -> None:
        self.catalog = catalog
        self.index = index or CovisIndex()
        self.unseen_only = unseen_only
        if unseen_only:
            self.name = f"{self.name}_unseen"

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        scores = self.index.scores(user, sources=5, per_source=50)
        extra = len(user.recent) if self.unseen_only else 0
        ranked = heapq.nlargest(k + len(user.bought) + 10 + extra, scores.items(), key=lambda kv: kv[1])
        return admissible(_unseen(ranked, user) if self.unseen_only else ranked, user, self.catalog, k)

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        self.index.observe(user_before, item_id)


class Cooccurrence:
    """Classic item-to-item co-occurrence: every pair of items in a user's recent history counts
    once, whatever their distance; scores summed over the co-occurrence lists (50 strongest each)
    of the user's last 5 distinct items. Bounded like the engine's state (the user's last 50
    events, at most ``max_neighbors`` counts kept per item)."""

    name = "cooccurrence"

    def __init__(self, catalog: Catalog, sources: int = 5, per_source: int = 50, max_neighbors: int = 500) -> None:
        self.catalog = catalog
        self.max_neighbors = max_neighbors
        self.sources = sources
        self.per_source = per_source
        self._pairs: dict[str, dict[str, float]] = {}

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        seen: list[str] = []
        scores: dict[str, float] = {}
        for r in reversed(user.recent):
            if r.item_id in seen:
                continue
            seen.append(r.item_id)
            others = self._pairs.get(r.item_id)
            if others:
                for other, w in heapq.nlargest(self.per_source, others.items(), key=lambda kv: kv[1]):
                    scores[other] = scores.get(other, 0.0) + w
            if len(seen) == self.sources:
                break
        ranked = heapq.nlargest(k + len(user.bought) + 10, scores.items(), key=lambda kv: kv[1])
        return admissible(ranked, user, self.catalog, k)

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        pairs = self._pairs
        for other in {r.item_id for r in user_before.recent} - {item_id}:
            for a, b in ((other, item_id), (item_id, other)):
                counts = pairs.setdefault(a, {})
                counts[b] = counts.get(b, 0.0) + 1.0
                if len(counts) > 2 * self.max_neighbors:  # bounded: keep the strongest half
                    kept = heapq.nlargest(self.max_neighbors, counts.items(), key=lambda kv: kv[1])
                    counts.clear()
                    counts.update(kept)


class Repeat:
    """The user's own most recent distinct items, newest first."""

    name = "repeat"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        ranked = [(r.item_id, 1.0 / (1 + i)) for i, r in enumerate(reversed(user.recent))]
        return admissible(ranked, user, self.catalog, k)

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        """The user's state already holds everything this method needs."""


def is_chinese(texts: Sequence[str], sample: int = 200) -> bool:
    """True when most sampled texts contain CJK characters."""
    picked = texts[:sample]
    cjk = sum(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in picked)
    return cjk * 2 > len(picked)


class TfidfLogReg:
    """TF-IDF + logistic regression as in the reference protocol: character 1-2 grams for Chinese
    text, word 1-2 grams for English, scikit-learn defaults otherwise; ``balanced`` weighs each
    class by the inverse of its frequency (the plain one leans to the majority class)."""

    def __init__(self, seed: int = 0, *, balanced: bool = False) -> None:
        self.seed = seed
        self.balanced = balanced
        self.name = "tfidf_logreg_balanced" if balanced else "tfidf_logreg"
        self._pipeline: object | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> TfidfLogReg:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if is_chinese(list(texts)):
            vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2))
        else:
            vectorizer = TfidfVectorizer(ngram_range=(1, 2))
        classifier = LogisticRegression(
            max_iter=2000, class_weight="balanced" if self.balanced else None, random_state=self.seed
        )
        self._pipeline = make_pipeline(vectorizer, classifier).fit(list(texts), list(labels))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self._pipeline is None:
            raise RuntimeError("fit the baseline first")
        return self._pipeline.predict_proba(list(texts))[:, 1]  # type: ignore[attr-defined]
