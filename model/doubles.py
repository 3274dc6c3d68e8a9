"""Test doubles for the model, for this project's tests and for users writing their own: a model
small enough that building and scoring it takes milliseconds, untrained snapshots of it, and a
non-learned model (popularity within the user's interests, a tiny sentiment lexicon) that serves
without any network."""

from __future__ import annotations

from collections.abc import Sequence

from model.config import ModelConfig, initial_weights
from model.rules import RulePlan, rerank, ruled
from model.serving import Recommendations
from model.snapshot import Snapshot
from state.catalog import Catalog
from state.user import UserState


def tiny_config() -> ModelConfig:
    return ModelConfig(
        item_buckets=1 << 8,
        category_buckets=1 << 6,
        text_buckets=1 << 8,
        dim=8,
        text_dim=4,
        hidden=8,
        tower=8,
        experts=2,
        history=6,
        interests=4,
        text_features=16,
        batch_size=32,
    )


def untrained_snapshot(version: int, seed: int = 0, config: ModelConfig | None = None) -> Snapshot:
    config = config or tiny_config()
    return Snapshot(
        version=version,
        config=config,
        weights=initial_weights(config, seed),
        extra={"trained_until": 100.0 + version},
    )


_POSITIVE = (
    "good",
    "great",
    "love",
    "perfect",
    "comfortable",
    "nice",
    "excellent",
    "beautiful",
    "好",
    "喜欢",
    "满意",
    "不错",
    "舒服",
    "漂亮",
    "值得",
    "快",
)
_NEGATIVE = (
    "bad",
    "poor",
    "terrible",
    "cheap",
    "return",
    "broken",
    "disappoint",
    "small",
    "差",
    "不好",
    "失望",
    "退",
    "坏",
    "慢",
    "垃圾",
    "不",
)


class PlaceholderModel:
    """Popularity within the user's interests; version 0 on every message."""

    version = 0
    sentiment_threshold = 0.5

    def __init__(self, catalog: Catalog, half_life_s: float, interests_shown: int = 5) -> None:
        self._catalog = catalog
        self._half_life = half_life_s
        self._interests_shown = interests_shown

    def observe_click(self, user: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        """Nothing to learn."""

    def recommend_many(
        self, users: Sequence[UserState], now: float, k: int, plans: Sequence[RulePlan | None] | None = None
    ) -> list[Recommendations]:
        return [self._recommend(u, now, k, plans[n] if plans else None) for n, u in enumerate(users)]

    def _recommend(self, user: UserState, now: float, k: int, plan: RulePlan | None) -> Recommendations:
        interests = user.interest_weights(now, self._half_life, self._interests_shown)
        pool = 2 * k + len(user.bought)
        candidates: list[tuple[str, float]] = []
        for category, weight in interests:
            ranked = self._catalog.popular(pool, category)
            candidates += [(i, weight / (1 + r)) for r, i in enumerate(ranked)]
        ranked = self._catalog.popular(pool)
        candidates += [(i, 0.01 / (1 + r)) for r, i in enumerate(ranked)]
        candidates.sort(key=lambda c: c[1], reverse=True)
        if plan is not None:
            candidates = rerank(plan, candidates, self._catalog.category_of)
        return Recommendations(ruled(plan, candidates, user, self._catalog, k), interests)

    def sentiment_many(self, texts: Sequence[str]) -> list[float]:
        out = []
        for text in texts:
            lowered = text.lower()
            pos = sum(lowered.count(w) for w in _POSITIVE)
            neg = sum(lowered.count(w) for w in _NEGATIVE)
            out.append((1 + pos) / (2 + pos + neg))
        return out
