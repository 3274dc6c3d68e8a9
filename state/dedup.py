"""Marks of what a state already reflects, so that a redelivered event changes nothing.

Kafka delivers at least once: after a crash a worker re-reads from its last committed offset, and a
producer that retried may have written one event twice. Two bounded marks per source topic make
the effect of each event on a state exactly-once:

* the last ``ids_kept`` records applied, as event-id hashes with their offsets, for a duplicate
  that a producer wrote twice (at a new offset) and for a replay of a recent record.
* the highest ``(partition, offset)`` applied, with the record's timestamp, and a *floor*: the
  highest offset applied that is no longer among the kept ids. A record at or below the floor
  has been applied: O(1) however long the replay. Between the floor and the mark the kept ids
  decide, so a record applied after later ones (delivered past a hole, then fetched again) is
  not taken for a replay. The timestamp tells a replay (the same, older record) from a new record
  of a log the broker lost and restarted at offset 0 (newer than the mark), which must be applied.

A duplicate arriving more than ``ids_kept`` records of the same key and source after its twin is
applied again, and a record held back by a hole that long is taken for a replay; the bound is what
keeps a state small.

The timestamps are the producers' (Kafka's CreateTime). The mark keeps the newest one seen, so a
replay is recognised whatever the producers' clocks. What skew can still do: after the embedded
broker lost its logs, records stamped earlier than the newest before the loss (a producer whose
clock ran hours ahead) are taken for replays and skipped. A production Kafka never restarts a log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

IDS_KEPT = 16
#: Where a record sits: (partition, offset, timestamp in milliseconds).
Where = tuple[int, int, int]


def event_hash(event_id: str) -> int:
    """A stable 64-bit hash (Python's own ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass(slots=True)
class AppliedLog:
    marks: dict[str, list[int]] = field(default_factory=dict)  # source -> [partition, offset, ts_ms, floor]
    ids: dict[str, list[list[int]]] = field(default_factory=dict)  # source -> [[hash, offset]], newest last
    ids_kept: int = IDS_KEPT

    def seen(self, source: str, where: Where, event_id: str) -> bool:
        h = event_hash(event_id)
        if any(kept[0] == h for kept in self.ids.get(source, ())):
            return True
        mark = self.marks.get(source)
        return mark is not None and self.seen_offset(source, where) and where[1] <= mark[3]

    def seen_offset(self, source: str, where: Where) -> bool:
        mark = self.marks.get(source)
        partition, offset, ts_ms = where
        return mark is not None and mark[0] == partition and offset <= mark[1] and ts_ms <= mark[2]

    def record(self, source: str, where: Where, event_id: str) -> None:
        mark = self._advance(source, where)
        ring = self.ids.setdefault(source, [])
        ring.append([event_hash(event_id), where[1]])
        if len(ring) > self.ids_kept:
            dropped = ring[: len(ring) - self.ids_kept]
            del ring[: len(dropped)]
            mark[3] = max(mark[3], *(offset for _, offset in dropped))

    def record_offset(self, source: str, where: Where) -> None:
        """Record an event without an id: the offset mark alone will recognise its replay."""
        mark = self._advance(source, where)
        mark[3] = max(mark[3], where[1])

    def _advance(self, source: str, where: Where) -> list[int]:
        """The source's mark, moved up to ``where`` unless it already covers it."""
        partition, offset, ts_ms = where
        mark = self.marks.get(source)
        if mark is None or mark[0] != partition:
            mark = self.marks[source] = [partition, offset, ts_ms, -1]
        elif not self.seen_offset(source, where):
            if offset < mark[1]:  # a log restarted at offset 0: its offsets say nothing of the old
                mark[3] = -1
            # The newest timestamp, not the last: producers' clocks differ, and a record stamped
            # earlier than one before it must not make that one's replay look new.
            mark[1], mark[2] = offset, max(ts_ms, mark[2])
        return mark

    def to_fields(self) -> list[object]:
        return [self.marks, self.ids]

    @classmethod
    def from_fields(cls, fields: list[object]) -> AppliedLog:
        marks, ids = fields
        if isinstance(ids, list):
            # Written before ids were kept per source with their offsets: the mark alone decided
            # below it (floor = mark), and the old ids still catch duplicates of any source.
            legacy = [[h, -1] for h in ids]
            return cls(
                marks={s: [*m[:3], m[1]] for s, m in marks.items()},  # type: ignore[attr-defined]
                ids={s: [list(k) for k in legacy] for s in marks},  # type: ignore[attr-defined]
            )
        return cls(
            marks={s: list(m) for s, m in marks.items()},  # type: ignore[attr-defined]
            ids={s: [list(k) for k in ring] for s, ring in ids.items()},  # type: ignore[attr-defined]
        )
