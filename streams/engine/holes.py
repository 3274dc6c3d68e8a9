"""Holes in what reaches the agents: a record of an input partition delivered past the offset that
partition owes next, the records in between never delivered.

Such records were fetched and dropped somewhere between the fetch and the agent; nothing fetches
them again while the worker lives (a later commit never passes them, but only a restart replays
them). :class:`HoleWatch` follows, per partition, the next offset expected (one past the last
record delivered, or after an assignment the offset the partition resumed from) and names each
hole once, so that the partition is fetched again from the hole's first offset; the records
already processed come again and are recognised as duplicates by the states' offset marks.

A log may have offset gaps on purpose (transaction markers, compaction): a range fetched again
that comes back empty (the next record delivered again past it, nothing in between) is accepted,
so a real gap costs one extra fetch, never a loop. Knows nothing of Faust or Kafka: a partition
is any hashable key.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hole:
    """Offsets ``expected`` to ``got - 1`` of ``partition`` never reached the agents."""

    partition: Hashable
    expected: int
    got: int


class HoleWatch:
    """The next offset each input partition owes its agents, and the holes in what they got."""

    def __init__(self) -> None:
        self._next: dict[Hashable, int] = {}
        self._fetched_again: dict[Hashable, tuple[int, int]] = {}
        self._open: dict[Hashable, Hole] = {}  # the lowest hole named and not yet fetched again
        self._floor: dict[Hashable, int] = {}  # the offset of the partition's last seek

    def resume(self, offsets: Mapping[Hashable, int | None]) -> None:
        """A seek to these offsets (an assignment's; None: the log's beginning, the first record
        delivered sets the expectation). A partition already delivered past its offset keeps
        its expectation: records fetched before the seek may still come (a rebalance seeks
        twice), and those from the seek on are earlier ones again, which it follows. A record
        below the offset, fetched before the seek, moves no expectation: the partition was
        taken up past it."""
        for partition, offset in offsets.items():
            self._fetched_again.pop(partition, None)
            self._open.pop(partition, None)
            if offset is None:
                self._next.pop(partition, None)
                self._floor.pop(partition, None)
                continue
            self._floor[partition] = offset
            if offset > self._next.get(partition, -1):
                self._next[partition] = offset

    def delivered(self, partition: Hashable, offset: int) -> Hole | None:
        """Record one delivery; the hole before it, once, if there is one to fetch again."""
        if offset < self._floor.get(partition, -1):
            return None
        expected = self._next.get(partition)
        self._next[partition] = offset + 1
        hole_open = self._open.get(partition)
        if hole_open is not None and offset <= hole_open.got:
            del self._open[partition]  # fetched again: from the hole, or found empty up to its end
        if expected is None or offset <= expected:
            # In order, or an earlier record again (the hole fetched again, a redelivery): follow.
            return None
        hole = (expected, offset)
        if self._fetched_again.get(partition) == hole:
            return None  # fetched again and still empty: a gap in the log itself
        self._fetched_again[partition] = hole
        named = Hole(partition, expected, offset)
        self._open.setdefault(partition, named)
        return named

    def first_missing(self, partition: Hashable) -> int | None:
        """The first offset of the lowest hole named and not yet fetched again: where to fetch
        from (a later hole's refetch must not seek past it) and what no commit may pass."""
        hole = self._open.get(partition)
        return None if hole is None else hole.expected
