"""The corrections of ``streams.kafka.transport`` that need a real broker to show."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.transport import has_position
from streams.testing.harness import fresh_settings
from streams.topics import Topics, create_topics

pytestmark = pytest.mark.integration


def test_a_partition_just_sought_has_no_position_until_it_is_fetched(broker, tmp_path):
    """What Faust's livelock check, a task of the same loop, must not read: while a seek to the
    beginning is under way aiokafka holds no position for the partition (reading it asserts)."""
    settings = fresh_settings(broker, tmp_path)
    create_topics(settings)
    tp = TopicPartition(Topics(settings).clicks, 0)

    async def positions() -> tuple[bool, bool]:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.address, group_id=None)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.position(tp)
            seeking = asyncio.ensure_future(consumer.seek_to_beginning(tp))
            await asyncio.sleep(0)  # the seek has started: the other tasks of the loop run now
            during = has_position(consumer, tp)
            await seeking
            return during, has_position(consumer, tp)
        finally:
            await consumer.stop()

    assert asyncio.run(positions()) == (False, True)
