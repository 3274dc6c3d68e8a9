"""The experiments topic: its records checked once (dead letters), and applied by every worker.

``shopguide.experiments`` is compacted and keyed by ``experiment_id``; a null value deletes the
experiment. It is handled like the merchandising rules (``streams.processors.keyed_records``):
every worker follows it into its :class:`~model.experiments.ExperimentBook`, so that every worker
puts a shopper in the same arm, and the consumer group's agent dead-letters an invalid record once.
"""

from __future__ import annotations

from model.experiments import ExperimentBook
from streams.errors import InvalidEvent
from streams.events import parse_experiment
from streams.metrics import Metrics
from streams.processors.base import Clock
from streams.processors.keyed_records import CheckedRecords, apply_keyed_record
from streams.topics import Topics


def apply_experiment_record(book: ExperimentBook, key: bytes | None, value: bytes | None) -> InvalidEvent | None:
    """Fold one record of the experiments topic into ``book``; why it is invalid, if it is."""
    return apply_keyed_record(key, value, parse_experiment, book.put, book.delete, "experiment_id")


class ExperimentProcessor(CheckedRecords):
    """Experiment records, in the consumer group: dead-letters each invalid one with its reason."""

    def __init__(self, topics: Topics, partitions: int, metrics: Metrics, clock: Clock) -> None:
        super().__init__(
            topics, partitions, metrics, clock, lambda k, v: apply_experiment_record(ExperimentBook(), k, v)
        )
