"""The training topic's reader: a consumer group of its own elects the worker that trains.

The training topic used to be read by a Faust agent. Faust hands a worker's fetched records to its
agents in order, so behind a backlog of clicks (a flood, a replay, a restart) the training records
waited until the whole backlog was worked off: draining 80,000 clicks, one training record of 150
reached the trainer in 30 s, and the model stopped learning exactly when the stream was busiest.
This consumer reads the topic at its own pace. Every worker that may train joins one group; the
group gives the topic's single partition to one of them, which then runs the trainer, and to
another one when that worker leaves. A trainer variant (``shopguide trainer --variant``) reads the
same topic in a group of its own.

Training is lossy by design (the trainer drops what it has no time for), so offsets are committed
automatically: a new owner may skip or repeat a second of examples, never the stream's events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from streams.kafka.followers import reconnecting
from streams.learning.example_stream import RECORD_BYTES, unpack
from streams.settings import Settings

log = logging.getLogger(__name__)


class _Election(ConsumerRebalanceListener):
    def __init__(self, feed: TrainingFeed) -> None:
        self._feed = feed

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            self._feed.on_deposed()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # TensorFlow takes seconds to load: start the trainer now, not with the first examples.
        if assigned:
            self._feed.on_elected()


class TrainingFeed:
    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        submit: Callable[[list[bytes], float], None],
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_delay: Callable[[float], None],
        group: str = "trainer",
    ) -> None:
        """``group``: the consumer group, after the app id (a trainer variant has its own)."""
        self._settings = settings
        self._group = group
        self._topic = topic
        self.submit = submit
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.on_delay = on_delay
        self._rewind = False

    def rewind(self) -> None:
        """Read the topic from its beginning again: the broker lost it and it was recreated."""
        self._rewind = True

    async def run(self) -> None:
        await reconnecting("training feed", self._feed)

    async def _feed(self) -> None:
        s = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=f"{s.app_id}-{self._group}",
            client_id=f"{s.app_id}-{self._group}-feed",
            enable_auto_commit=True,
            auto_commit_interval_ms=1000,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.follower_fetch_wait_ms,
            max_partition_fetch_bytes=4 * RECORD_BYTES,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_s * 1000),
            **s.kafka_client_options(asyncio=True),
        )
        consumer.subscribe([self._topic], listener=_Election(self))
        await consumer.start()
        try:
            while True:
                if self._rewind:
                    self._rewind = False
                    if consumer.assignment():
                        await consumer.seek_to_beginning(*consumer.assignment())
                batches = await consumer.getmany(timeout_ms=200, max_records=64)
                produced = 0  # Kafka timestamp (ms) of the last record handed over
                for records in batches.values():
                    for record in records:
                        produced = record.timestamp
                        try:
                            examples, newest = unpack(record.value or b"")
                        except ValueError as exc:
                            log.warning("training topic: %s", exc)
                            continue
                        self.submit(examples, newest)
                # How long ago the record the feed has reached was sent (the last in log order, not
                # the newest timestamp: a producer's clock may lag). Drops show a trainer too slow
                # for what it gets; this shows one that falls behind the stream.
                if produced > 0:
                    self.on_delay(max(0.0, time.time() - produced / 1000.0))
        finally:
            if consumer.assignment():
                self.on_deposed()
            await consumer.stop()
