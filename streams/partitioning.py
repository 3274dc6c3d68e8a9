"""Which partition owns a key: the same murmur2 rule as the Java client, aiokafka and kafka-python,
so that the engine agrees with any standard producer about where a user's or item's events go."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
