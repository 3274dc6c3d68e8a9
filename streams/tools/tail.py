"""``shopguide tail TOPIC``: print a topic's messages as they arrive, JSON pretty-printed."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition

from streams.settings import Settings
from streams.topics import Topics


def resolve(settings: Settings, topic: str) -> str:
    """A full topic name, or a short one (``recommendations``) completed with the prefix."""
    names = {spec.name for spec in Topics(settings).specs()}
    return topic if topic in names or topic.startswith(settings.topic_prefix) else settings.topic_prefix + topic


def assign_all(
    consumer: KafkaConsumer, topic: str, settings: Settings, command: str, hint: str = ""
) -> list[TopicPartition]:
    """Assign ``consumer`` every partition of ``topic``; the command stops with a clear message
    (``hint`` appended) when the topic does not exist."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise SystemExit(f"{command}: no topic {topic!r} on {settings.broker}{hint}")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return tps


def messages(
    settings: Settings,
    topic: str,
    from_beginning: bool,
    idle_timeout_s: float | None,
    stop: threading.Event | None = None,
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every message, until ``idle_timeout_s`` passes with
    none or ``stop`` is set."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a log the broker lost and restarted is read from its start
        fetch_max_wait_ms=settings.fetch_wait_ms,
        **settings.kafka_client_options(),
    )
    try:
        tps = assign_all(consumer, topic, settings, "tail")
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        else:
            consumer.seek_to_end(*tps)
        last = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            if stop is not None and stop.is_set():
                return
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    last = time.monotonic()
                    yield r.partition, r.offset, r.key, r.value
    finally:
        consumer.close()


def render(key: bytes | None, value: bytes | None) -> str:
    text = (value or b"").decode("utf-8", errors="backslashreplace")
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    k = key.decode("utf-8", errors="backslashreplace") if key is not None else "-"
    return f"key={k}\n{text}"
