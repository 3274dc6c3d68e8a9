"""Compacted topics of definitions keyed by their id (merchandising rules, experiments): each
record is checked once in the consumer group (dead letters) and folded by every worker.

A null value deletes the key's definition. An invalid record deletes it too: compaction keeps
only a key's latest record, so what a worker restarted later reads is exactly what is in force now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from streams.errors import InvalidEvent
from streams.metrics import Metrics
from streams.processors.base import Clock, Incoming, Outgoing, ProcessorBase
from streams.topics import Topics

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Folds one record (key, value) somewhere; why it is invalid, if it is.
Check = Callable[[bytes | None, bytes | None], InvalidEvent | None]


def apply_keyed_record(
    key: bytes | None,
    value: bytes | None,
    parse: Callable[[bytes, str], T],
    put: Callable[[T], None],
    delete: Callable[[str], None],
    id_field: str,
) -> InvalidEvent | None:
    """Fold one record: ``parse(value, key)`` then ``put``, or ``delete`` the key's definition
    when the value is null or invalid; why it is invalid, if it is."""
    if key is None:
        return InvalidEvent("missing_field", f"a record needs its {id_field} as the message key")
    try:
        name = key.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidEvent("encoding", "the message key is not UTF-8")
    if value is None:
        delete(name)
        return None
    try:
        put(parse(value, name))
    except InvalidEvent as exc:
        delete(name)
        return exc
    return None


class CheckedRecords(ProcessorBase):
    """A definitions topic's records, in the consumer group: dead-letters each invalid one with
    its reason (every worker folds the topic itself, through a follower)."""

    def __init__(self, topics: Topics, partitions: int, metrics: Metrics, clock: Clock, check: Check) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.check = check

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            problem = self.check(msg.key, msg.value)
            if problem is None:
                self.processed(msg)
            else:
                log.warning("invalid record at %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, problem)
                out.append(self.dead_letter(msg, problem.reason, str(problem)))
        return out
