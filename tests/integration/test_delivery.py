"""Delivery against the real broker: a record refused for good is dead-lettered after a few tries
and the batch moves on; a dead letter refused too is counted as lost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)

from streams.kafka.delivery import REFUSED_ATTEMPTS, Delivery, refused_for_good
from streams.kafka.transport import publish
from streams.metrics import Metrics
from streams.processors.base import Outgoing
from streams.testing.harness import TopicReader, fresh_settings
from streams.topics import Topics, create_topics

pytestmark = pytest.mark.integration


class Producer:
    """A real producer that refuses, as any client does, records above ``max_request_size``."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def publish(self, records: Sequence[tuple[str, int | None, bytes | None, bytes | None]]) -> list[Any]:
        return await publish(self._producer, records)


def deliver(settings: Any, out: list[Outgoing], max_request_size: int) -> tuple[Delivery, Metrics, float]:
    metrics = Metrics()

    async def run() -> tuple[Delivery, float]:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=max_request_size
        )
        await producer.start()
        try:
            delivery = Delivery(
                Producer(producer), metrics, {}, Topics(settings).deadletter, settings.deadletter_payload_bytes
            )
            started = time.monotonic()
            await asyncio.wait_for(delivery.deliver(out), 30)
            return delivery, time.monotonic() - started
        finally:
            await producer.stop()

    delivery, took = asyncio.run(run())
    return delivery, metrics, took


def test_an_output_the_broker_refuses_for_good_is_dead_lettered_and_the_batch_moves_on(broker, tmp_path):
    settings = fresh_settings(broker, tmp_path)
    create_topics(settings)
    topics = Topics(settings)
    big = json.dumps({"user_id": "u1", "blob": "x" * 5000}).encode()
    out = [Outgoing(topics.recommendations, b"u1", big), Outgoing(topics.recommendations, b"u2", b'{"ok":1}')]
    delivery, metrics, took = deliver(settings, out, max_request_size=4800)
    assert delivery.lost == 0 and took < 5.0
    assert metrics.deadletters.labels("refused")._value.get() == 1
    assert metrics.published.labels(topics.recommendations)._value.get() == 1
    letters, recs = TopicReader(settings, topics.deadletter), TopicReader(settings, topics.recommendations)
    try:
        [letter] = letters.wait_for(lambda m: True, timeout_s=20)
        assert letter["reason"] == "refused" and letter["source_topic"] == topics.recommendations
        assert letter["payload_bytes"] == len(big) and letter["truncated"]
        assert "MessageSizeTooLarge" in letter["error"]
        assert recs.wait_for(lambda m: True, timeout_s=20) == [{"ok": 1}]
    finally:
        letters.close()
        recs.close()
    assert metrics.resent._value.get() >= REFUSED_ATTEMPTS - 1


def test_a_dead_letter_refused_too_is_counted_as_lost(broker, tmp_path):
    settings = fresh_settings(broker, tmp_path)
    create_topics(settings)
    topics = Topics(settings)
    out = [Outgoing(topics.sentiment, b"i1", b"y" * 5000)]
    delivery, metrics, took = deliver(settings, out, max_request_size=200)  # smaller than the dead letter
    assert delivery.lost == 1 and metrics.lost._value.get() == 1 and took < 10.0
    assert metrics.published.labels(topics.deadletter)._value.get() == 0


def test_only_refusals_retrying_cannot_cure_count_as_for_good():
    # A timeout is "not retriable" to Kafka, but it only means the broker was away or slow: the
    # record must be sent again until it is taken, not dead-lettered.
    assert not refused_for_good(KafkaTimeoutError())
    assert not refused_for_good(NotLeaderForPartitionError())
    assert refused_for_good(MessageSizeTooLargeError()) and refused_for_good(TopicAuthorizationFailedError())


class Recorded:
    """A changelog's side of delivery: the offsets acknowledged."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []

    def changelog_sent(self, partition: int, offset: int) -> None:
        self.sent.append((partition, offset))


class Slow(Producer):
    """Queues one record at a time and lets other tasks run in between, as a producer with a full
    buffer does; the first time ``fail_once`` is queued it fails without reaching the broker."""

    def __init__(self, producer: AIOKafkaProducer, fail_once: bytes | None = None) -> None:
        super().__init__(producer)
        self._fail_once = fail_once

    async def publish(self, records: Sequence[tuple[str, int | None, bytes | None, bytes | None]]) -> list[Any]:
        futures: list[Any] = []
        for record in records:
            if record[3] is not None and record[3] == self._fail_once:
                self._fail_once = None
                failed = asyncio.get_running_loop().create_future()
                failed.set_exception(KafkaTimeoutError())
                futures.append(failed)
            else:
                futures += await publish(self._producer, [record])
            await asyncio.sleep(0.01)
        return futures


def changelog_order(settings: Any, fail_once: bytes | None) -> tuple[list[Any], Recorded]:
    """Two batches, processed one after the other, both writing user u1's state: the first with
    twenty outputs before its changelog record, the second with its changelog record alone. What
    the changelog topic holds for u1, in order."""
    topics = Topics(settings)
    changelog, recorded = topics.recommendations, Recorded()
    first = [Outgoing(topics.sentiment, b"i%d" % i, b'{"n":%d}' % i) for i in range(20)]
    first.append(Outgoing(changelog, b"u1", b'{"v":1}', 0))
    second = [Outgoing(changelog, b"u1", b'{"v":2}', 0)]

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        try:
            delivery = Delivery(Slow(producer, fail_once), Metrics(), {changelog: recorded}, topics.deadletter, 4096)
            a = asyncio.create_task(delivery.deliver(first))
            await asyncio.sleep(0)  # the first batch has started to be queued
            b = asyncio.create_task(delivery.deliver(second))
            await asyncio.wait_for(asyncio.gather(a, b), 30)
            await delivery.deliver([Outgoing(changelog, b"u1", b'{"v":"end"}', 0)])
        finally:
            await producer.stop()

    asyncio.run(run())
    reader = TopicReader(settings, changelog)
    try:
        values = reader.wait_for(lambda m: m == {"v": "end"}, timeout_s=20) and [r.value for r in reader.items]
    finally:
        reader.close()
    return values, recorded


def test_changelog_records_of_two_batches_reach_the_broker_in_write_order(broker, tmp_path):
    settings = fresh_settings(broker, tmp_path)
    create_topics(settings)
    values, recorded = changelog_order(settings, fail_once=None)
    assert values == [{"v": 1}, {"v": 2}, {"v": "end"}]
    assert [offset for _, offset in recorded.sent] == [0, 1, 2]


def test_a_changelog_record_sent_again_never_lands_after_a_newer_one_of_its_key(broker, tmp_path):
    # The first batch's record fails once; by its second attempt the second batch's newer value
    # of u1 is acknowledged: sending the older one again would leave it last.
    settings = fresh_settings(broker, tmp_path)
    create_topics(settings)
    values, recorded = changelog_order(settings, fail_once=b'{"v":1}')
    assert values == [{"v": 2}, {"v": "end"}]
    assert [offset for _, offset in recorded.sent] == [0, 1]
