"""What the streaming engine asks of a model while it serves.

Agents only use this surface, so the model behind it (a placeholder scorer, or the multi-task
network's exported weights scored with numpy) can change without touching them. Calls are batched:
one call scores every user or review of an agent's batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from model.rules import RulePlan
from state.user import UserState


@dataclass(frozen=True, slots=True)
class Recommendations:
    items: list[tuple[str, float]]  # (item_id, score), best first
    interests: list[tuple[str, float]]  # (category, weight), strongest first
    reasons: list[list[str]] = field(default_factory=list)  # per item, why (``model.reasons``); [] if unknown


class ServingModel(Protocol):
    @property
    def version(self) -> int:
        """The model version stamped on every message this model produced."""
        ...

    def observe_click(self, user: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        """Update retrieval indexes with a click; ``user`` is the state before the click."""
        ...

    def recommend_many(
        self, users: Sequence[UserState], now: float, k: int, plans: Sequence[RulePlan | None] | None = None
    ) -> list[Recommendations]:
        """Top-``k`` items for each user (never bought, never out of stock, no duplicates), under
        each user's merchandising rules (``plans``, parallel to ``users``; None: no rule in force)."""
        ...

    def sentiment_many(self, texts: Sequence[str]) -> list[float]:
        """P(positive) for each review text."""
        ...

    @property
    def sentiment_threshold(self) -> float:
        """A review is labelled positive when its ``sentiment_many`` score is at least this."""
        ...
