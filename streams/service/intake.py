"""The guide's reader of ``shopguide.items``, ``shopguide.reviews`` and ``shopguide.sentiment``.

One consumer without a group reads every partition of the three topics. The page's shelf lives in
memory, so each start reads the topics from the beginning for it; the knowledge index lives in
RocksDB, so only records past the offsets stored beside the index are fed to it (nothing is
embedded twice after a restart; without an index, everything is). Offsets are stored after the
batch's records are in the index, so a crash repeats a batch at most, which the index absorbs
(reviews are idempotent by event id). A log that restarted (a broker that lost its topics) is told
by its first record, whose offset and checksum are stored too: end offsets cannot tell it, since
the embedded broker reports a partition's end as the start of its last batch. Records that break
their topic's contract are skipped and counted: the worker, which reads the same topics,
dead-letters them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from model.atomic_file import write_atomically
from streams.errors import InvalidEvent
from streams.events import parse_item, parse_review
from streams.kafka.followers import reconnecting, topic_partitions
from streams.service.drafting import NegativeReviewWatch
from streams.service.feeds import FeedHub
from streams.service.guide_metrics import GuideMetrics
from streams.service.knowledge_thread import KnowledgeThread
from streams.service.shelf import Shelf
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)
#: Items embedded per call into the knowledge thread: one batch for the encoder (about 6 fields an
#: item), short enough that a question waiting behind it is not held for long.
ITEMS_PER_CALL = 50


class OffsetStore:
    """Per partition the next offset to index and its log's first record (``offset:crc32``), in a
    JSON file beside the index, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[dict[str, int], dict[str, str]]:
        try:
            raw = json.loads(self.path.read_text())
            return {str(k): int(v) for k, v in raw["offsets"].items()}, {
                str(k): str(v) for k, v in raw["heads"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}, {}

    def save(self, offsets: dict[str, int], heads: dict[str, str]) -> None:
        write_atomically(self.path, json.dumps({"offsets": offsets, "heads": heads}, sort_keys=True).encode())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


class KnowledgeIntake:
    def __init__(
        self,
        settings: Settings,
        knowledge: KnowledgeThread,
        offsets: OffsetStore,
        shelf: Shelf,
        hub: FeedHub,
        watch: NegativeReviewWatch,
        metrics: GuideMetrics,
        publish_draft: Callable[[str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._topics = Topics(settings)
        self._knowledge = knowledge
        self._offsets = offsets
        self._shelf = shelf
        self._hub = hub
        self._watch = watch
        self._metrics = metrics
        self._publish_draft = publish_draft
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        await reconnecting("guide intake", self._follow)

    async def _follow(self) -> None:
        t = self._topics
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A follower's wait, not the worker's: a review answerable 0.1 s later is well within its
            # goal (2 s), and each idle fetch costs the event loop that also answers the questions.
            fetch_max_wait_ms=self._settings.follower_fetch_wait_ms,
            client_id=f"{self._settings.app_id}-guide-intake",
            **self._settings.kafka_client_options(asyncio=True),
        )
        try:
            await consumer.start()
            names = (t.items, t.reviews, t.sentiment)
            tps = [tp for name in names for tp in await topic_partitions(consumer, name)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            stored, heads = self._offsets.load()
            checked: set[str] = set()  # partitions whose first record was compared with the stored one
            pending = {tp for tp in tps if ends[tp] > 0}
            if not pending:
                self.caught_up.set()
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                if batches:
                    for tp, records in batches.items():
                        if _key(tp) not in checked:
                            checked.add(_key(tp))
                            self._check_head(_key(tp), records[0], stored, heads)
                    await self._apply(batches, stored)
                    for tp, records in batches.items():
                        stored[_key(tp)] = max(stored.get(_key(tp), 0), records[-1].offset + 1)
                    self._offsets.save(stored, heads)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending and not self.caught_up.is_set():
                    log.info("guide intake caught up: %d items on the shelf", len(self._shelf))
                    self.caught_up.set()
        finally:
            await consumer.stop()

    @staticmethod
    def _check_head(key: str, first: Any, stored: dict[str, int], heads: dict[str, str]) -> None:
        head = f"{first.offset}:{zlib.crc32(first.value or b'')}"
        if heads.get(key) not in (None, head) and stored.get(key):
            log.warning("%s: the log restarted (its first record differs); indexing it again", key)
            stored[key] = 0
        heads[key] = head

    async def _apply(self, batches: dict[TopicPartition, list[Any]], stored: dict[str, int]) -> None:
        """Items first, then reviews, then labels: a label read with its review finds it."""
        t = self._topics
        by_topic: dict[str, list[tuple[Any, bool]]] = {t.items: [], t.reviews: [], t.sentiment: []}
        for tp, records in batches.items():
            done = stored.get(_key(tp), 0)
            by_topic[tp.topic] += [(r, r.offset >= done) for r in records]
        drafts: list[tuple[dict[str, Any], str | None]] = []
        items = []
        for record, new in by_topic[t.items]:
            try:
                item = parse_item(record.value)
            except InvalidEvent:
                self._metrics.ingested.labels("items", "invalid").inc()
                continue
            if self._shelf.apply_item(item):
                self._hub.item_changed(item.item_id)
            if new:
                items.append(json.loads(item.to_json()))
        for first in range(0, len(items), ITEMS_PER_CALL):
            chunk = items[first : first + ITEMS_PER_CALL]
            refused = await self._knowledge.add_items(chunk)
            for k, reason in refused:  # valid for the engine, refused by the library
                log.warning("guide: item %s not indexed: %s", chunk[k]["item_id"], reason)
            self._metrics.ingested.labels("items", "invalid").inc(len(refused))
            self._metrics.ingested.labels("items", "indexed").inc(len(chunk) - len(refused))
        reviews = []
        for record, new in by_topic[t.reviews]:
            try:
                review = parse_review(record.value)
            except InvalidEvent:
                self._metrics.ingested.labels("reviews", "invalid").inc()
                continue
            self._shelf.remember_review(review)
            if new:
                reviews.append(json.loads(review.to_json()))
                drafted = self._watch.review(review)
                if drafted:
                    drafts.append(drafted)
        if reviews:
            self._metrics.embedded.inc(await self._knowledge.add_reviews(reviews))
            self._metrics.ingested.labels("reviews", "indexed").inc(len(reviews))
        for record, new in by_topic[t.sentiment]:
            try:
                message = json.loads(record.value)
                item_id = self._shelf.apply_sentiment(message)
            except (ValueError, TypeError, AttributeError):
                self._metrics.ingested.labels("sentiment", "invalid").inc()
                continue
            if item_id is not None:
                self._hub.item_changed(item_id)
            label = message.get("label")
            if new and label in ("positive", "negative"):
                event_id = str(message.get("event_id"))
                try:
                    await self._knowledge.set_sentiment(
                        str(message.get("item_id")), event_id, label, float(message.get("score", 0.0))
                    )
                except (ValueError, TypeError):
                    self._metrics.ingested.labels("sentiment", "invalid").inc()
                    continue
                self._metrics.ingested.labels("sentiment", "indexed").inc()
                drafted = self._watch.label(event_id, label)
                if drafted:
                    drafts.append(drafted)
        for negative, label in drafts:
            draft = await self._knowledge.draft_reply(negative, label)
            if draft is not None:
                await self._publish_draft(negative["item_id"], draft)
                self._metrics.drafts.inc()
