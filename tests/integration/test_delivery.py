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
