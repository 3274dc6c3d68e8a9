"""The processors of the item-keyed topics: re-keyed reviews, catalog events and click activity,
which change an item's state."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from state.item import AlertRule, SentimentFigures
from state.user import ACTIONS
from streams import messages
from streams.errors import InvalidEvent
from streams.events import parse_item
from streams.metrics import Metrics
from streams.processors.base import Clock, Incoming, Outgoing, ProcessorBase, Store, load_item, parse_internal
from streams.topics import Topics

log = logging.getLogger(__name__)


class ItemReviewProcessor(ProcessorBase):
    """Scored reviews, keyed by item: update the item's sentiment figures, publish the sentiment
    signal, and an alert when the item's recent reviews turn negative. A review the state already
    reflects publishes its signal (and its alert) again: they may have been lost in a crash."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        items: Store,
        alert_rule: AlertRule,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.items = items
        self.rule = alert_rule

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            r = self.admit(msg, _parse_scored_review, lambda r: str(r["item_id"]), out)
            if r is None:
                continue
            item_id = r["item_id"]
            state = load_item(self.items, item_id, msg.handle)
            positive = r["positive"]
            if state.applied.seen("item-reviews", msg.where, r["event_id"]):
                # Its outputs may not have reached the broker before a crash: published again, with
                # the item's current figures (they may reflect later reviews too).
                self.duplicate(msg, self.items, item_id, state.to_bytes())
                figures = state.figures()
                alert = figures if state.alert_trigger == r["event_id"] else None
                self.metrics.republished.labels(self.topics.sentiment).inc()
                out += self._signals(item_id, r, figures, alert)
                continue
            rating = r.get("rating")
            aspects = r.get("aspects")
            aspects = [a for a in aspects if isinstance(a, str)] if isinstance(aspects, list) else []
            figures = state.apply_review(
                positive, rating if isinstance(rating, int) else None, self.rule.window, aspects
            )
            alert = state.check_alert(self.rule)
            if alert is not None:
                state.alert_trigger = r["event_id"]
            state.applied.record("item-reviews", msg.where, r["event_id"])
            self.items.put(item_id, state.to_bytes(), msg.handle)
            out += self._signals(item_id, r, figures, alert)
            self.metrics.sentiments.labels("positive" if positive else "negative").inc()
            self.metrics.event_to_sentiment.observe(max(0.0, self.clock() - r["ts"]))
            if alert is not None:
                self.metrics.sentiments.labels("alert").inc()
            self.processed(msg)
        return out

    def _signals(
        self, item_id: str, r: dict[str, Any], figures: SentimentFigures, alert: SentimentFigures | None
    ) -> list[Outgoing]:
        """The sentiment message of a scored review, and the alert it raised if any."""
        now = self.clock()
        score = r["score"]
        out = [
            Outgoing(
                self.topics.sentiment,
                item_id.encode(),
                messages.sentiment(
                    event_id=r["event_id"],
                    user_id=r["user_id"],
                    item_id=item_id,
                    score=score,
                    positive=r["positive"],
                    figures=figures,
                    model_version=r["model_version"],
                    event_ts=r["ts"],
                    published_ts=now,
                ),
            )
        ]
        if alert is not None:
            out.append(
                Outgoing(
                    self.topics.sentiment,
                    item_id.encode(),
                    messages.sentiment_alert(
                        item_id=item_id,
                        trigger_event_id=r["event_id"],
                        figures=alert,
                        threshold=self.rule.negative_ratio,
                        model_version=r["model_version"],
                        published_ts=now,
                    ),
                )
            )
        return out


class CatalogProcessor(ProcessorBase):
    """Catalog records, keyed by item: the item table's category, title, price and stock."""

    def __init__(
        self, topics: Topics, partitions: int, metrics: Metrics, items: Store, clock: Clock = time.time
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.items = items

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            item = self.admit(msg, lambda v: parse_item(v, self.clock()), lambda i: i.item_id, out)
            if item is None:
                continue
            state = load_item(self.items, item.item_id, msg.handle)
            ts = item.ts if item.ts is not None else max(state.catalog_ts, 0.0)
            if state.apply_catalog(item.category, item.title or "", item.price, item.in_stock, ts):
                self.items.put(item.item_id, state.to_bytes(), msg.handle)
            self.processed(msg)
        return out


class ActivityProcessor(ProcessorBase):
    """Click counts per item from every worker: the item table's decayed popularity."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        items: Store,
        popularity_half_life_s: float,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.items = items
        self.half_life = popularity_half_life_s

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            a = self.admit(msg, _parse_activity, lambda a: str(a["item_id"]), out)
            if a is None:
                continue
            counts = a["counts"]
            state = load_item(self.items, a["item_id"], msg.handle)
            # Activity messages carry no event id: the offset mark alone makes replays harmless.
            if state.applied.seen_offset("item-activity", msg.where):
                self.duplicate(msg, self.items, a["item_id"], state.to_bytes())
                continue
            state.apply_activity(counts, a["ts"], self.half_life, a["category"])
            state.applied.record_offset("item-activity", msg.where)
            self.items.put(a["item_id"], state.to_bytes(), msg.handle)
            self.processed(msg)
        return out


def _parse_scored_review(payload: bytes | None) -> dict[str, Any]:
    """A scored review; its label is the scoring model's (``positive``), or, from a worker that
    did not send one, its score against 0.5."""
    r = parse_internal(
        payload,
        {
            "event_id": str,
            "user_id": str,
            "item_id": str,
            "ts": float,
            "score": float,
            "model_version": int,
        },
    )
    positive = r.get("positive")
    r["positive"] = positive if isinstance(positive, bool) else r["score"] >= 0.5
    return r


def _parse_activity(payload: bytes | None) -> dict[str, Any]:
    """An activity record, its counts as floats per known action."""
    a = parse_internal(payload, {"item_id": str, "category": str, "counts": dict, "ts": float})
    try:
        a["counts"] = {k: float(v) for k, v in a["counts"].items() if k in ACTIONS}
    except (TypeError, ValueError) as exc:
        raise InvalidEvent("wrong_type", f"field 'counts': {exc}") from None
    return a
