"""Gauges that are read rather than counted: consumer lag and table sizes, refreshed on a timer;
and the watch on a worker that stopped processing while its input waits.

Lag is measured from what the engine has *processed* (not merely fetched): the end offset the
consumer knows for each assigned source partition minus the next offset to process.

Table sizes are exact. RocksDB's ``estimate-num-keys`` counts every write still in the memtable
(tenfold too many on a small, busy table), and iterating a million keys takes most of a second of
the event loop; but the engine never deletes keys, so a partition's keys are counted once when it
first becomes active and then kept up to date by the writes that create new keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from streams.metrics import Metrics


class Progress:
    """The last offset processed per source partition, and how many events were processed."""

    def __init__(self) -> None:
        self.done: dict[tuple[str, int], int] = {}
        self.events = 0

    def record(self, topic: str, partition: int, offset: int) -> None:
        self.events += 1
        key = (topic, partition)
        if offset > self.done.get(key, -1):
            self.done[key] = offset


async def refresh_lag(consumer: Any, sources: set[str], progress: Progress, metrics: Metrics) -> dict[Any, int]:
    """Refresh the lag gauges; the next offset owed to the agents of every source partition that
    has lag (its records from there on wait)."""
    lags: dict[tuple[str, int], int] = {}
    owed: dict[Any, int] = {}
    for tp in consumer.assignment():
        if tp.topic not in sources:
            continue
        end = consumer.highwater(tp)
        if end is None or end < 0:
            continue
        done = progress.done.get((tp.topic, tp.partition))
        # Nothing processed here yet: the next offset is where the partition resumed. The fetch
        # position is ahead of it by whatever was fetched and waits (behind a backlog of clicks,
        # the item activity records wait for minutes).
        next_offset = done + 1 if done is not None else consumer.resumed_at(tp)
        if next_offset is None:
            next_offset = await consumer.position(tp)
        if next_offset is not None:
            lags[(tp.topic, tp.partition)] = max(0, end - next_offset)
            if end > next_offset:
                owed[tp] = next_offset
    # No await from here on: a scrape never sees the gauge half rebuilt.
    metrics.consumer_lag.clear()
    for (topic, partition), lag in lags.items():
        metrics.consumer_lag.labels(topic, str(partition)).set(lag)
    return owed


class StallWatch:
    """A worker that stopped processing: its input waits (lag) and no event was processed for
    ``after_s``. Nothing else tells it from a busy one: a worker behind a backlog processes."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._after_s = after_s
        self._clock = clock
        self._events = -1
        self._since = clock()  # when the input last had no lag or an event was processed
        self._warned = False

    def observe(self, lag: int, events: int) -> bool:
        """One sample (total lag, events processed so far); True once per stall, when it begins."""
        now = self._clock()
        if lag <= 0 or events != self._events:
            self._events, self._since, self._warned = events, now, False
            return False
        if self._warned or now - self._since < self._after_s:
            return False
        self._warned = True
        return True

    def stalled_for(self) -> float:
        """Seconds since the stall began (0 when not stalled)."""
        return self._clock() - self._since if self._warned else 0.0


class KeyCounts:
    """Exact key counts of one table's partitions on this worker."""

    def __init__(self, count_partition: Callable[[int], int]) -> None:
        self._count_partition = count_partition
        self.counts: dict[int, int] = {}

    def created(self, partition: int) -> None:
        """A write is about to add a key to ``partition``."""
        if partition not in self.counts:
            self.counts[partition] = self._count_partition(partition)
        self.counts[partition] += 1

    def deleted(self, partition: int) -> None:
        """A delete removed a key from ``partition``."""
        if partition in self.counts:
            self.counts[partition] -= 1

    def total(self, active: set[int], recovering: bool) -> int:
        """Keys in the ``active`` partitions; partitions not yet counted are counted now unless
        the table is still being recovered into them."""
        for partition in list(self.counts):
            if partition not in active:
                del self.counts[partition]  # revoked: another worker may change it meanwhile
        if not recovering:
            for partition in active - self.counts.keys():
                self.counts[partition] = self._count_partition(partition)
        return sum(self.counts.get(p, 0) for p in active)
