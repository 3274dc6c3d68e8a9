"""Read a whole topic, every partition, into local memory, and keep following it.

Some state must be seen by every worker, not just the owner of a partition: the item view used to
filter and retrieve candidates, and the newest model snapshot. A follower is a plain
consumer without a group: it reads all partitions from the beginning, tells when it has caught up
with what existed at start-up, then applies each new message as it arrives.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.settings import Settings

log = logging.getLogger(__name__)

#: Applies one record; may return an awaitable (work done off the event loop), which the follower
#: awaits before the next record, so "caught up" still means "applied".
Apply = Callable[[bytes | None, bytes | None], Awaitable[None] | None]


async def reconnecting(name: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` until cancelled, starting it again a second after a broker error: a worker's
    own consumers must outlive an outage of the broker just like Faust's do."""
    while True:
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except KafkaError as exc:
            log.warning("%s: %r; reconnecting in 1 s", name, exc)
            await asyncio.sleep(1.0)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, waiting for the topic to exist (another process creates it)."""
    partitions = consumer.partitions_for_topic(topic)
    while not partitions:
        await asyncio.sleep(0.5)
        await consumer.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(partitions)]


class Follower:
    def __init__(self, settings: Settings, topic: str, apply: Apply, name: str) -> None:
        self._settings = settings
        self._topic = topic
        self._apply = apply
        self._name = name
        self.caught_up = asyncio.Event()
        self.applied = 0
        self._rewind = False

    def rewind(self) -> None:
        """Read the topic again from its beginning: the broker lost it and it was recreated, so
        new records now sit at offsets this follower believes it has read."""
        self._rewind = True

    async def run(self) -> None:
        await reconnecting(f"{self._name} follower", self._follow)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.follower_fetch_wait_ms,
            client_id=f"{self._settings.app_id}-{self._name}-follower",
            **self._settings.kafka_client_options(asyncio=True),
        )
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, self._topic)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            if not pending:
                self.caught_up.set()
            while True:
                if self._rewind:
                    self._rewind = False
                    await consumer.seek_to_beginning(*tps)
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batches.values():
                    for record in records:
                        try:
                            applying = self._apply(record.key, record.value)
                            if inspect.isawaitable(applying):
                                await applying
                            self.applied += 1
                        except Exception:
                            log.exception("%s follower: cannot apply a message; skipped", self._name)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending and not self.caught_up.is_set():
                    log.info("%s follower caught up (%d messages)", self._name, self.applied)
                    self.caught_up.set()
        finally:
            await consumer.stop()
