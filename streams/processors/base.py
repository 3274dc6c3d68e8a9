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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from model.serving import ServingModel
from state.errors import StateDecodeError
from state.item import ItemState
from state.user import UserState
from streams import messages
from streams.errors import InvalidEvent
from streams.metrics import Metrics, Outcome
from streams.partitioning import partition_for
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

#: The event a processor parses from a message.
E = TypeVar("E")


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

    def delete(self, key: str, handle: Any) -> None: ...


Clock = Callable[[], float]
#: Turns an event into training examples, given the model and the user's state before the event.
Learn = Callable[[ServingModel, UserState, Any, str], None]


class ProcessorBase:
    """Dead-lettering, forwarding and state loading shared by every processor."""

    #: Bytes of a bad message's payload its dead letter keeps (the engine sets its configured value).
    deadletter_payload_bytes: int = Settings.deadletter_payload_bytes

    def __init__(self, topics: Topics, partitions: int, metrics: Metrics, clock: Clock) -> None:
        self.topics = topics
        self.partitions = partitions
        self.metrics = metrics
        self.clock = clock

    def dead_letter(self, msg: Incoming, reason: str, error: str) -> Outgoing:
        self.metrics.events.labels(msg.topic, Outcome.DEADLETTERED).inc()
        self.metrics.deadletters.labels(reason).inc()
        value = messages.dead_letter(
            source_topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=reason,
            error=error,
            payload=msg.value,
            ts=self.clock(),
            payload_max=self.deadletter_payload_bytes,
        )
        return Outgoing(self.topics.deadletter, None, value)

    def admit(
        self, msg: Incoming, parse: Callable[[bytes | None], E], key: Callable[[E], str], out: list[Outgoing]
    ) -> E | None:
        """The first step of every processor: the message's event, or None when it is not to be
        processed here, having appended its dead letter (bad input) or its forward (misplaced) to
        ``out``."""
        try:
            event = parse(msg.value)
        except InvalidEvent as exc:
            out.append(self.dead_letter(msg, exc.reason, str(exc)))
            return None
        forward = self.misplaced(msg, key(event))
        if forward is not None:
            out.append(forward)
            return None
        return event

    def misplaced(self, msg: Incoming, key: str) -> Outgoing | None:
        """A message in another partition than its key's would split that key's state in two:
        send it, keyed right, to the partition that owns the key."""
        if partition_for(key, self.partitions) == msg.partition:
            return None
        self.metrics.events.labels(msg.topic, Outcome.FORWARDED).inc()
        return Outgoing(msg.topic, key.encode(), msg.value or b"")

    def processed(self, msg: Incoming) -> None:
        self.processed_many(msg.topic, 1)

    def processed_many(self, topic: str, n: int) -> None:
        """``n`` events of ``topic`` processed (counted once per batch where a batch has many)."""
        if n:
            self.metrics.events.labels(topic, Outcome.PROCESSED).inc(n)

    def duplicate(self, msg: Incoming, store: Store, key: str, state: bytes) -> None:
        """Skip an event the state already reflects, but write the state again: after a crash the
        local RocksDB may hold an update whose changelog message was lost, and this event's offset
        is about to be committed, so the changelog must get it now or never."""
        self.metrics.events.labels(msg.topic, Outcome.DUPLICATE).inc()
        store.put(key, state, msg.handle)


def load_item(store: Store, key: str, handle: Any) -> ItemState:
    raw = store.get(key, handle)
    if raw is None:
        return ItemState()
    try:
        return ItemState.from_bytes(raw)
    except StateDecodeError:
        log.exception("unreadable state for an item: starting it afresh")
        return ItemState()


def parse_internal(payload: bytes | None, schema: dict[str, type]) -> dict[str, Any]:
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
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent("out_of_range", f"field {name!r}: must be finite")
    return obj
