"""What happens to each consumed message, as plain classes that know nothing of Faust or Kafka.

An agent hands a processor a batch of :class:`Incoming` messages and sends the :class:`Outgoing`
ones it gets back; state is read and written through a :class:`Store` whose ``handle`` argument is
the transport's own event, passed back untouched (Faust needs it to pick the table partition).
That keeps every rule here testable in milliseconds, and the agents thin.

Per message: validate (or dead-letter with a reason), check the message sits in its key's
partition (or forward it there), skip it if the state already reflects it (at-least-once delivery
made exactly-once in effect), then update state and publish.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from model.serving import ServingModel
from state.catalog import Catalog
from state.codec import StateDecodeError
from state.item import AlertRule, ItemState
from state.user import ACTIONS, PublishedRecommendation, UserState
from streams import messages
from streams.events import Click, InvalidEvent, parse_click, parse_item, parse_review
from streams.metrics import Metrics
from streams.partitioning import partition_for
from streams.topics import Topics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    handle: Any = None
    timestamp_ms: int = 0  # the record's Kafka timestamp

    @property
    def where(self) -> tuple[int, int, int]:
        return self.partition, self.offset, self.timestamp_ms


@dataclass(slots=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None  # None: the key's partition


class Store(Protocol):
    def get(self, key: str, handle: Any) -> bytes | None: ...

    def put(self, key: str, value: bytes, handle: Any) -> None: ...


Clock = Callable[[], float]
#: Turns an event into training examples, given the model and the user's state before the event.
Learn = Callable[[ServingModel, UserState, Any, str], None]


class _Base:
    """Dead-lettering, forwarding and state loading shared by every processor."""

    def __init__(self, topics: Topics, partitions: int, metrics: Metrics, clock: Clock) -> None:
        self.topics = topics
        self.partitions = partitions
        self.metrics = metrics
        self.clock = clock

    def dead_letter(self, msg: Incoming, reason: str, error: str) -> Outgoing:
        self.metrics.events.labels(msg.topic, "deadlettered").inc()
        self.metrics.deadletters.labels(reason).inc()
        value = messages.dead_letter(
            source_topic=msg.topic, partition=msg.partition, offset=msg.offset, reason=reason,
            error=error, payload=msg.value, ts=self.clock(),
        )
        return Outgoing(self.topics.deadletter, None, value)

    def misplaced(self, msg: Incoming, key: str) -> Outgoing | None:
        """A message in another partition than its key's would split that key's state in two:
        send it, keyed right, to the partition that owns the key."""
        if partition_for(key, self.partitions) == msg.partition:
            return None
        self.metrics.events.labels(msg.topic, "forwarded").inc()
        return Outgoing(msg.topic, key.encode(), msg.value or b"")

    def processed(self, msg: Incoming) -> None:
        self.metrics.events.labels(msg.topic, "processed").inc()

    def duplicate(self, msg: Incoming, store: Store, key: str, state: bytes) -> None:
        """Skip an event the state already reflects, but write the state again: after a crash the
        local RocksDB may hold an update whose changelog message was lost, and this event's offset
        is about to be committed, so the changelog must get it now or never."""
        self.metrics.events.labels(msg.topic, "duplicate").inc()
        store.put(key, state, msg.handle)


def _load_user(store: Store, key: str, handle: Any) -> UserState:
    raw = store.get(key, handle)
    if raw is None:
        return UserState()
    try:
        return UserState.from_bytes(raw)
    except StateDecodeError:
        log.exception("unreadable state for a user: starting it afresh")
        return UserState()


def _load_item(store: Store, key: str, handle: Any) -> ItemState:
    raw = store.get(key, handle)
    if raw is None:
        return ItemState()
    try:
        return ItemState.from_bytes(raw)
    except StateDecodeError:
        log.exception("unreadable state for an item: starting it afresh")
        return ItemState()


class ActivityCounts:
    """Click counts per item, gathered between flushes so that the item table sees one message
    per item and interval instead of one per click."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[str, dict[str, float], float]] = {}

    def add(self, item_id: str, category: str, action: str, ts: float) -> None:
        entry = self._counts.get(item_id)
        if entry is None:
            self._counts[item_id] = (category, {action: 1.0}, ts)
            return
        cat, counts, last = entry
        counts[action] = counts.get(action, 0.0) + 1.0
        self._counts[item_id] = (category or cat, counts, max(last, ts))

    def __len__(self) -> int:
        return len(self._counts)

    def drain(self, topic: str) -> list[Outgoing]:
        out = [
            Outgoing(
                topic,
                item_id.encode(),
                json.dumps({"item_id": item_id, "category": cat, "counts": counts, "ts": ts}).encode(),
            )
            for item_id, (cat, counts, ts) in self._counts.items()
        ]
        self._counts.clear()
        return out


class ClickProcessor(_Base):
    """Clicks: update the user's state and publish a recommendation that already reflects the
    click. Users are scored together, in rounds in which each user appears once, so that every
    recommendation reflects exactly the clicks up to its own.

    When the worker runs behind (a flood, a bot, a backlog after a restart: the click waited longer
    than ``coalesce_after_s`` in Kafka), a user's clicks in one batch share one recommendation,
    triggered by the last: every click still changes the state, but scoring, the expensive part,
    is paid once per user and batch, so a flood cannot starve the other users of the partition.
    Those clicks do not train the model either: one bot must not steer what everyone is
    recommended. A worker that keeps up answers every click."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        users: Store,
        catalog: Catalog,
        model: Callable[[], ServingModel],
        activity: ActivityCounts,
        *,
        top_k: int,
        interest_half_life_s: float,
        coalesce_after_s: float = 1.0,
        learn: Learn | None = None,
        on_hit: Callable[[int, bool], None] | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.users = users
        self.catalog = catalog
        self.model = model
        self.activity = activity
        self.top_k = top_k
        self.half_life = interest_half_life_s
        self.coalesce_after_s = coalesce_after_s
        self.learn = learn
        self.on_hit = on_hit

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        model = self.model()  # one version for the whole batch, even if a new one arrives
        round_: dict[str, tuple[Incoming, Click, UserState]] = {}
        for msg in batch:
            try:
                click = parse_click(msg.value, self.clock())
            except InvalidEvent as exc:
                out.append(self.dead_letter(msg, exc.reason, str(exc)))
                continue
            forward = self.misplaced(msg, click.user_id)
            if forward is not None:
                out.append(forward)
                continue
            pending = round_.get(click.user_id)
            flooding = pending is not None and self.clock() - msg.timestamp_ms / 1000.0 > self.coalesce_after_s
            if flooding:
                state = pending[2]  # this click joins the unpublished one's answer
            else:
                if pending is not None:
                    out += self._publish(round_, model)
                state = _load_user(self.users, click.user_id, msg.handle)
            if state.applied.seen("clicks", msg.where, click.event_id):
                self.duplicate(msg, self.users, click.user_id, state.to_bytes())
                continue
            category = click.category or self.catalog.category_of(click.item_id)
            if state.last is not None:
                hit = click.item_id in state.last.item_ids()
                self.metrics.record_hit(hit)
                if self.on_hit is not None:
                    self.on_hit(state.last.model_version, hit)
            if self.learn is not None and not flooding:
                self.learn(model, state, click, category)  # from the state before the click
            model.observe_click(state, click.item_id, click.action, click.ts, category)
            state.apply_click(click.item_id, click.action, click.ts, category, self.half_life)
            state.applied.record("clicks", msg.where, click.event_id)
            self.activity.add(click.item_id, category, click.action, click.ts)
            self.catalog.bump(click.item_id, category, click.action, click.ts)
            round_[click.user_id] = (msg, click, state)
            self.processed(msg)
        out += self._publish(round_, model)
        return out

    def _publish(
        self, round_: dict[str, tuple[Incoming, Click, UserState]], model: ServingModel
    ) -> list[Outgoing]:
        if not round_:
            return []
        entries = list(round_.values())
        round_.clear()
        now = self.clock()
        recs = model.recommend_many([state for _, _, state in entries], now, self.top_k)
        out = []
        published_ts = self.clock()
        for (msg, click, state), rec in zip(entries, recs, strict=True):
            state.last = PublishedRecommendation(
                items=rec.items,
                interests=rec.interests,
                model_version=model.version,
                trigger_event_id=click.event_id,
                event_ts=click.ts,
                published_ts=published_ts,
            )
            self.users.put(click.user_id, state.to_bytes(), msg.handle)
            out.append(
                Outgoing(
                    self.topics.recommendations,
                    click.user_id.encode(),
                    messages.recommendation(click.user_id, state.last),
                )
            )
            self.metrics.recommendations.inc()
            self.metrics.event_to_recommendation.observe(max(0.0, published_ts - click.ts))
        return out


class ReviewProcessor(_Base):
    """Reviews: count them on the user, score their sentiment in one batched call, and re-key
    them by item so that the item's owner can keep exact per-item sentiment figures."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        users: Store,
        model: Callable[[], ServingModel],
        catalog: Catalog,
        learn: Learn | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.users = users
        self.model = model
        self.catalog = catalog
        self.learn = learn

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        accepted = []
        model = self.model()
        for msg in batch:
            try:
                review = parse_review(msg.value, self.clock())
            except InvalidEvent as exc:
                out.append(self.dead_letter(msg, exc.reason, str(exc)))
                continue
            forward = self.misplaced(msg, review.user_id)
            if forward is not None:
                out.append(forward)
                continue
            state = _load_user(self.users, review.user_id, msg.handle)
            if state.applied.seen("reviews", msg.where, review.event_id):
                self.duplicate(msg, self.users, review.user_id, state.to_bytes())
                continue
            if self.learn is not None:
                self.learn(model, state, review, self.catalog.category_of(review.item_id))
            state.apply_review()
            state.applied.record("reviews", msg.where, review.event_id)
            self.users.put(review.user_id, state.to_bytes(), msg.handle)
            accepted.append(review)
            self.processed(msg)
        if accepted:
            scores = model.sentiment_many([r.text for r in accepted])
            for review, score in zip(accepted, scores, strict=True):
                body = {
                    "event_id": review.event_id,
                    "user_id": review.user_id,
                    "item_id": review.item_id,
                    "rating": review.rating,
                    "ts": review.ts,
                    "score": float(score),
                    "model_version": model.version,
                }
                out.append(Outgoing(self.topics.item_reviews, review.item_id.encode(), json.dumps(body).encode()))
        return out


class ItemReviewProcessor(_Base):
    """Scored reviews, keyed by item: update the item's sentiment figures, publish the sentiment
    signal, and an alert when the item's recent reviews turn negative."""

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
            try:
                r = _internal(msg.value, {"event_id": str, "user_id": str, "item_id": str,
                                          "ts": float, "score": float, "model_version": int})
            except InvalidEvent as exc:
                out.append(self.dead_letter(msg, exc.reason, str(exc)))
                continue
            item_id = r["item_id"]
            forward = self.misplaced(msg, item_id)
            if forward is not None:
                out.append(forward)
                continue
            state = _load_item(self.items, item_id, msg.handle)
            if state.applied.seen("item-reviews", msg.where, r["event_id"]):
                self.duplicate(msg, self.items, item_id, state.to_bytes())
                continue
            score = r["score"]
            rating = r.get("rating")
            figures = state.apply_review(score >= 0.5, rating if isinstance(rating, int) else None, self.rule.window)
            alert = state.check_alert(self.rule)
            state.applied.record("item-reviews", msg.where, r["event_id"])
            self.items.put(item_id, state.to_bytes(), msg.handle)
            now = self.clock()
            out.append(
                Outgoing(
                    self.topics.sentiment,
                    item_id.encode(),
                    messages.sentiment(
                        event_id=r["event_id"], user_id=r["user_id"], item_id=item_id, score=score,
                        figures=figures, model_version=r["model_version"], event_ts=r["ts"],
                        published_ts=now,
                    ),
                )
            )
            label = "positive" if score >= 0.5 else "negative"
            self.metrics.sentiments.labels(label).inc()
            self.metrics.event_to_sentiment.observe(max(0.0, now - r["ts"]))
            if alert is not None:
                out.append(
                    Outgoing(
                        self.topics.sentiment,
                        item_id.encode(),
                        messages.sentiment_alert(
                            item_id=item_id, trigger_event_id=r["event_id"], figures=alert,
                            threshold=self.rule.negative_ratio, model_version=r["model_version"],
                            published_ts=now,
                        ),
                    )
                )
                self.metrics.sentiments.labels("alert").inc()
            self.processed(msg)
        return out


class CatalogProcessor(_Base):
    """Catalog records, keyed by item: the item table's category, title, price and stock."""

    def __init__(
        self, topics: Topics, partitions: int, metrics: Metrics, items: Store, clock: Clock = time.time
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.items = items

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            try:
                item = parse_item(msg.value, self.clock())
            except InvalidEvent as exc:
                out.append(self.dead_letter(msg, exc.reason, str(exc)))
                continue
            forward = self.misplaced(msg, item.item_id)
            if forward is not None:
                out.append(forward)
                continue
            state = _load_item(self.items, item.item_id, msg.handle)
            ts = item.ts if item.ts is not None else max(state.catalog_ts, 0.0)
            if state.apply_catalog(item.category, item.title or "", item.price, item.in_stock, ts):
                self.items.put(item.item_id, state.to_bytes(), msg.handle)
            self.processed(msg)
        return out


class ActivityProcessor(_Base):
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
            try:
                a = _internal(msg.value, {"item_id": str, "category": str, "counts": dict, "ts": float})
                counts = {k: float(v) for k, v in a["counts"].items() if k in ACTIONS}
            except (InvalidEvent, TypeError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, InvalidEvent) else "wrong_type"
                out.append(self.dead_letter(msg, reason, str(exc)))
                continue
            forward = self.misplaced(msg, a["item_id"])
            if forward is not None:
                out.append(forward)
                continue
            state = _load_item(self.items, a["item_id"], msg.handle)
            # Activity messages carry no event id: the offset mark alone makes replays harmless.
            if state.applied.seen_offset("item-activity", msg.where):
                self.duplicate(msg, self.items, a["item_id"], state.to_bytes())
                continue
            state.apply_activity(counts, a["ts"], self.half_life, a["category"])
            state.applied.record_offset("item-activity", msg.where)
            self.items.put(a["item_id"], state.to_bytes(), msg.handle)
            self.processed(msg)
        return out


def _internal(payload: bytes | None, schema: dict[str, type]) -> dict[str, Any]:
    """Parse a message of an internal topic. The engine wrote it, but a topic is a public thing:
    a foreign or corrupt message is dead-lettered like any other bad input."""
    try:
        obj = json.loads(payload or b"")
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent("json", f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", "expected a JSON object")
    for name, kind in schema.items():
        value = obj.get(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = obj[name] = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidEvent("wrong_type", f"field {name!r}: expected {kind.__name__}")
        if kind is float and not math.isfinite(value):
            raise InvalidEvent("out_of_range", f"field {name!r}: must be finite")
    return obj
