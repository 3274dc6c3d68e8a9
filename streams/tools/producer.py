"""A small, patient Kafka producer for the CLI: JSON-lines files, replays and the demo.

It waits for the broker (retrying while it starts or restarts), keys each event the way its topic
requires (user id for clicks and reviews, item id for items) and never drops an event silently:
every send is acknowledged by all in-sync replicas or reported.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from types import TracebackType

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.settings import Settings

KEY_FIELD = {"clicks": "user_id", "reviews": "user_id", "items": "item_id", "impressions": "user_id"}


def key_of(kind: str, payload: bytes) -> bytes | None:
    """The partitioning key of a JSON event, or None when the payload is not a JSON object with
    that field (the worker will dead-letter it; it still must be delivered)."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = obj.get(KEY_FIELD[kind]) if isinstance(obj, dict) else None
    return value.encode() if isinstance(value, str) and value else None


class EventProducer:
    def __init__(self, settings: Settings, connect_timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=settings.bootstrap_servers,
                    acks="all",
                    retries=2_147_483_647,
                    retry_backoff_ms=200,
                    delivery_timeout_ms=120_000,
                    linger_ms=5,
                    max_in_flight_requests_per_connection=1,  # retries keep order
                    # Not idempotent: the embedded broker cannot keep producer ids (and forgets them
                    # on a restart); a retried duplicate is absorbed by the engine's event ids.
                    enable_idempotence=False,
                    **settings.kafka_client_options(),
                )
                break
            except KafkaError:  # the broker is not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.sent = 0
        self.failed: list[str] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Send one record (a None ``value``: a tombstone, deleting ``key`` from a compacted topic)."""
        future = self._producer.send(topic, key=key, value=value)
        future.add_errback(lambda exc: self.failed.append(repr(exc)))
        self.sent += 1

    def send_all(self, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        n = 0
        for key, value in records:
            self.send(topic, key, value)
            n += 1
        return n

    def flush(self, timeout_s: float = 130.0) -> None:
        """Wait until every event sent so far is acknowledged; raise if any was not."""
        self._producer.flush(timeout=timeout_s)
        if self.failed:
            raise KafkaError(f"{len(self.failed)} of {self.sent} events were not delivered: {self.failed[0]}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(timeout=10)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
