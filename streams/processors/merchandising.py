"""The merchandising rules topic: its records checked once (dead letters), and applied by every worker.

``shopguide.rules`` is compacted and keyed by ``rule_id``; a null value deletes the rule. Every
worker follows the whole topic into its :class:`~model.rules.RuleBook` (:func:`apply_rule_record`),
so that any worker serves every user under the same rules; the agent of the engine's consumer group
(:class:`RuleProcessor`) is the one place an invalid record is dead-lettered, once and not once
per worker (``streams.processors.keyed_records``).
"""

from __future__ import annotations

from model.rules import RuleBook
from streams.errors import InvalidEvent
from streams.events import parse_rule
from streams.metrics import Metrics
from streams.processors.base import Clock
from streams.processors.keyed_records import CheckedRecords, apply_keyed_record
from streams.topics import Topics


def apply_rule_record(book: RuleBook, key: bytes | None, value: bytes | None) -> InvalidEvent | None:
    """Fold one record of the rules topic into ``book``; why it is invalid, if it is."""
    return apply_keyed_record(key, value, parse_rule, book.put, book.delete, "rule_id")


class RuleProcessor(CheckedRecords):
    """Rule records, in the consumer group: dead-letters each invalid one with its reason."""

    def __init__(self, topics: Topics, partitions: int, metrics: Metrics, clock: Clock) -> None:
        super().__init__(topics, partitions, metrics, clock, lambda k, v: apply_rule_record(RuleBook(), k, v))
