"""The merchandising rules topic: its records checked once (dead letters), and applied by every worker.

``shopguide.rules`` is compacted and keyed by ``rule_id``; a null value deletes the rule. Every
worker follows the whole topic into its :class:`~model.rules.RuleBook` (:func:`apply_rule_record`),
so that any worker serves every user under the same rules; the agent of the engine's consumer group
(:class:`RuleProcessor`) is the one place an invalid record is dead-lettered, once and not once
per worker. An invalid record removes its key's rule from every book: compaction keeps only a key's
latest record, so the rules a worker restarted later reads are exactly the ones in force now.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from model.rules import RuleBook
from streams.errors import InvalidEvent
from streams.events import parse_rule
from streams.processors.base import Incoming, Outgoing, ProcessorBase

log = logging.getLogger(__name__)


def apply_rule_record(book: RuleBook, key: bytes | None, value: bytes | None) -> InvalidEvent | None:
    """Fold one record of the rules topic into ``book``; why it is invalid, if it is."""
    if key is None:
        return InvalidEvent("missing_field", "a rule record needs its rule_id as the message key")
    try:
        rule_id = key.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidEvent("encoding", "the message key is not UTF-8")
    if value is None:
        book.delete(rule_id)
        return None
    try:
        book.put(parse_rule(value, rule_id))
    except InvalidEvent as exc:
        book.delete(rule_id)
        return exc
    return None


class RuleProcessor(ProcessorBase):
    """Rule records, in the consumer group: dead-letters each invalid one with its reason."""

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            problem = apply_rule_record(RuleBook(), msg.key, msg.value)
            if problem is None:
                self.processed(msg)
            else:
                log.warning("invalid rule record at %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, problem)
                out.append(self.dead_letter(msg, problem.reason, str(problem)))
        return out
