"""``shopguide replay``: the public data sets as live events, at a chosen rate.

Rows become events of the engine's contracts (:mod:`streams.events`); rows that cannot be events
(such as the truncated last line of the Taobao file) are reported with their line and reason and
skipped. By default each event is stamped with the time it is sent, so that latency figures mean
something; ``--timestamps original`` keeps the data set's own times (for quality replays).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from model.offline.datasets import (
    Interaction,
    LabeledReview,
    Rejected,
    read_labeled_csv,
    read_movielens,
    read_movielens_catalog,
    read_reviews_en,
    read_taobao,
)
from streams.events import Click, Item, Review

FORMATS = ("taobao", "movielens", "reviews-zh", "reviews-en")
Event = Click | Review | Item


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str  # clicks, reviews or items
    event: Event


def plan(fmt: str, path: Path) -> Iterator[Planned | Rejected]:
    """The events of a data set, in order (MovieLens: its catalog first)."""
    if fmt == "taobao":
        yield from _clicks(read_taobao(path), "tb")
    elif fmt == "movielens":
        yield from _movielens_catalog(path)
        yield from _clicks(read_movielens(path), "ml")
    elif fmt in ("reviews-zh", "reviews-en"):
        rows = read_labeled_csv(path, "zh-") if fmt == "reviews-zh" else read_reviews_en(path)
        yield from _reviews(rows, fmt[-2:])
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _clicks(rows: Iterator[Interaction | Rejected], prefix: str) -> Iterator[Planned | Rejected]:
    for n, row in enumerate(rows):
        if isinstance(row, Rejected):
            yield row
            continue
        yield Planned(
            "clicks",
            Click(f"{prefix}-{n}", row.user_id, row.item_id, row.action, row.ts, row.category or None),
        )


def _movielens_catalog(ratings: Path) -> Iterator[Planned]:
    for movie, title, genre in read_movielens_catalog(ratings):
        yield Planned("items", Item(movie, genre or "unknown", title[:1000]))


def _reviews(rows: Iterator[LabeledReview | Rejected], lang: str) -> Iterator[Planned | Rejected]:
    base = time.time()
    for n, row in enumerate(rows):
        if isinstance(row, Rejected):
            yield row
            continue
        yield Planned(
            "reviews",
            Review(f"rv-{lang}-{n}", f"{lang}-user-{n % 1000}", row.item_id, row.text[:10_000], base, row.rating),
        )


def stamp(event: Event, ts: float) -> Event:
    """The event as if it happened at ``ts`` (catalog records keep no time of their own)."""
    return event if isinstance(event, Item) else replace(event, ts=ts)


class Pacer:
    """Holds a producer to ``rate`` events per second on average (0: as fast as possible)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.perf_counter()

    def wait(self) -> None:
        if not self._interval:
            return
        self._next += self._interval
        delay = self._next - time.perf_counter()
        if delay > 0.001:
            time.sleep(delay)
