"""Which reviews get a reply draft: the negative ones, each once.

A review is negative when its rating is 1 or 2 (known on arrival) or when the worker labels it
negative on ``shopguide.sentiment`` (arrives later, or, the topics being read apart, earlier). The
watch pairs the two by the review's event id and hands each negative review out exactly once per
run; the guide turns it into a draft. Bounded: the newest reviews and labels waiting for their pair.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict
from typing import Any

from streams.events import Review

KEPT_MAX = 20_000


class NegativeReviewWatch:
    def __init__(self, kept_max: int = KEPT_MAX) -> None:
        self._reviews: OrderedDict[str, Review] = OrderedDict()
        self._labels: OrderedDict[str, str] = OrderedDict()
        self._drafted: OrderedDict[str, None] = OrderedDict()
        self._max = kept_max

    def review(self, review: Review) -> tuple[dict[str, Any], str | None] | None:
        """A review arrived: (review, label) to draft a reply for now, or None."""
        if review.event_id in self._drafted:
            return None
        label = self._labels.pop(review.event_id, None)
        if label == "negative" or (review.rating is not None and review.rating <= 2):
            return self._draft(review, label)
        if label is None:
            self._keep(self._reviews, review.event_id, review)
        return None

    def label(self, event_id: str, label: str) -> tuple[dict[str, Any], str | None] | None:
        """The worker labelled a review: (review, label) to draft a reply for now, or None."""
        if event_id in self._drafted or label not in ("positive", "negative"):
            return None
        review = self._reviews.pop(event_id, None)
        if review is None:
            self._keep(self._labels, event_id, label)
            return None
        return self._draft(review, label) if label == "negative" else None

    def _draft(self, review: Review, label: str | None) -> tuple[dict[str, Any], str | None]:
        self._keep(self._drafted, review.event_id, None)
        return {k: v for k, v in asdict(review).items() if v is not None}, label

    def _keep(self, store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        while len(store) > self._max:
            store.popitem(last=False)
