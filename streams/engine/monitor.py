"""Gauges that are read rather than counted: consumer lag and table sizes, refreshed on a timer;
and the watch on input partitions that stopped moving while their records wait.

Lag is measured from what the engine has *processed* (not merely fetched): the end offset the
consumer knows for each assigned source partition minus the next offset to process.

Table sizes are exact. RocksDB's ``estimate-num-keys`` counts every write still in the memtable
(tenfold too many on a small, busy table), and iterating a million keys takes most of a second of
the event loop; but the engine never deletes keys, so a partition's keys are counted once when it
first becomes active and then kept up to date by the writes that create new keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from streams.metrics import Metrics


class Progress:
    """The last offset processed per source partition, since the partition was last sought."""

    def __init__(self) -> None:
        self.done: dict[tuple[str, int], int] = {}

    def resume(self, offsets: Mapping[tuple[str, int], int | None]) -> None:
        """A seek to these offsets (an assignment's; None: the log's beginning): what this
        worker processed of them before, maybe before another worker had them, is no longer
        where they stand."""
        for (topic, partition), offset in offsets.items():
            if offset is None:
                self.done.pop((topic, partition), None)
            else:
                self.done[(topic, partition)] = offset - 1

    def record(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if offset > self.done.get(key, -1):
            self.done[key] = offset


async def refresh_lag(consumer: Any, sources: set[str], progress: Progress, metrics: Metrics) -> dict[Any, range]:
    """Refresh the lag gauges; the offsets waiting in every source partition that has lag, from
    the next one owed to its agents to the partition's end."""
    tps = [tp for tp in consumer.assignment() if tp.topic in sources]
    ends = await consumer.end_offsets(tps)
    lags: dict[tuple[str, int], int] = {}
    waiting: dict[Any, range] = {}
    for tp in tps:
        end = ends.get(tp)
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
                waiting[tp] = range(next_offset, end)
    # No await from here on: a scrape never sees the gauge half rebuilt.
    metrics.consumer_lag.clear()
    for (topic, partition), lag in lags.items():
        metrics.consumer_lag.labels(topic, str(partition)).set(lag)
    return waiting


class StallWatch:
    """Input partitions that stopped: records wait in them and the next offset they owe the agents
    has not moved for ``after_s``. Watched per partition, so that one stuck partition shows while
    the others flow; nothing else tells it from a busy one (behind a backlog, offsets move)."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._after_s = after_s
        self._clock = clock
        self._waiting: dict[Hashable, tuple[int, float]] = {}  # partition -> (offset owed, since)
        self._reported: set[Hashable] = set()
        self._holding = False
        self._free_since = -math.inf  # when the last hold ended

    def observe(self, owed: Mapping[Hashable, int], hold: bool = False) -> list[Hashable]:
        """One sample: the next offset owed by each partition whose records wait (a partition
        left out waits for nothing). The partitions whose stall begins now, each once a stall;
        while ``hold`` (nothing can be done, as during a rebalance), none, and after it only those
        still unmoved ``after_s`` later. ``stalled_for`` counts the stalls held too."""
        now = self._clock()
        waiting: dict[Hashable, tuple[int, float]] = {}
        for partition, offset in owed.items():
            seen = self._waiting.get(partition)
            if seen is None or seen[0] != offset:
                seen = (offset, now)
                self._reported.discard(partition)
            waiting[partition] = seen
        self._waiting = waiting
        self._reported &= waiting.keys()
        if hold:
            self._holding = True
            return []
        if self._holding:
            self._holding, self._free_since = False, now
        began = [
            p
            for p, (_, since) in waiting.items()
            if p not in self._reported and now - max(since, self._free_since) >= self._after_s
        ]
        self._reported.update(began)
        return began

    def stalled_for(self) -> float:
        """Seconds the longest stall under way has lasted, reported or not (0: none)."""
        now = self._clock()
        return max((now - since for _, since in self._waiting.values() if now - since >= self._after_s), default=0.0)


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
