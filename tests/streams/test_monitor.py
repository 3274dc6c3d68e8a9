"""Consumer lag counts from what was processed, never from what was merely fetched."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from streams.engine.monitor import Progress, refresh_lag
from streams.metrics import Metrics


class TP(NamedTuple):
    topic: str
    partition: int


class FetchedAhead:
    """The consumer calls refresh_lag makes, with a fetch position past what was processed."""

    def __init__(self) -> None:
        self.ends = {TP("clicks", 0): 20, TP("clicks", 1): 20, TP("clicks", 2): 10, TP("other", 0): 99}
        self.resumed = {TP("clicks", 0): 2, TP("clicks", 1): 5}
        self.positions = {TP("clicks", 0): 20, TP("clicks", 1): 15, TP("clicks", 2): 3}

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def end_offsets(self, tps: list[TP]) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}

    def resumed_at(self, tp: TP) -> int | None:
        return self.resumed.get(tp)

    async def position(self, tp: TP) -> int:
        return self.positions[tp]


def test_lag_counts_from_the_next_offset_to_process():
    metrics, progress = Metrics(), Progress()
    progress.record("clicks", 0, 9)  # processed up to 9: 10 to go
    waiting = asyncio.run(refresh_lag(FetchedAhead(), {"clicks"}, progress, metrics))

    def lag(partition: int) -> float | None:
        return metrics.registry.get_sample_value(
            "shopguide_consumer_lag", {"topic": "clicks", "partition": str(partition)}
        )

    assert lag(0) == 10
    assert lag(1) == 15  # nothing processed: from where it resumed (5), not the fetch position (15)
    assert lag(2) == 7  # no committed offset known: the fetch position is all there is
    assert metrics.registry.get_sample_value("shopguide_consumer_lag", {"topic": "other", "partition": "0"}) is None
    assert waiting == {TP("clicks", 0): range(10, 20), TP("clicks", 1): range(5, 20), TP("clicks", 2): range(3, 10)}


def test_a_partition_taken_up_again_counts_from_where_it_resumed_not_from_what_was_processed_before():
    """Processed up to 2, then given to another worker and back at its commit, 42: 42 is the
    next offset owed, not 3 (from which a stalled partition would be fetched again)."""
    progress = Progress()
    progress.record("clicks", 0, 2)
    progress.record("clicks", 1, 7)
    progress.resume({TP("clicks", 0): 42, TP("clicks", 1): None})
    assert progress.done == {("clicks", 0): 41}
    progress.record("clicks", 0, 40)  # a record fetched before the seek, delivered after it
    assert progress.done == {("clicks", 0): 41}
