"""Marks of what a state already reflects, so that a redelivered event changes nothing.

Kafka delivers at least once: after a crash a worker re-reads from its last committed offset, and a
producer that retried may have written one event twice. Two bounded marks make the effect of each
event on a state exactly-once:

* the highest ``(partition, offset)`` applied per source topic, with the record's timestamp. All
  events of one key come from one partition, in order, so a record at or below the mark has been
  applied: exact, and O(1) however long the replay. The timestamp tells a replay (the same, older
  record) from a new record of a log the broker lost and restarted at offset 0 (newer than the
  mark), which must be applied.
* the hashes of the last ``ids_kept`` event ids, for a duplicate that a producer wrote twice (at a
  new offset). A duplicate arriving more than ``ids_kept`` events of the same key after its twin is
  applied again; the bound is what keeps a state small.

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
    marks: dict[str, list[int]] = field(default_factory=dict)  # source -> [partition, offset, ts_ms]
    ids: list[int] = field(default_factory=list)  # event-id hashes, newest last
    ids_kept: int = IDS_KEPT

    def seen(self, source: str, where: Where, event_id: str) -> bool:
        return self.seen_offset(source, where) or event_hash(event_id) in self.ids

    def seen_offset(self, source: str, where: Where) -> bool:
        mark = self.marks.get(source)
        partition, offset, ts_ms = where
        return mark is not None and mark[0] == partition and offset <= mark[1] and ts_ms <= mark[2]

    def record(self, source: str, where: Where, event_id: str) -> None:
        self.record_offset(source, where)
        self.ids.append(event_hash(event_id))
        if len(self.ids) > self.ids_kept:
            del self.ids[: len(self.ids) - self.ids_kept]

    def record_offset(self, source: str, where: Where) -> None:
        if self.seen_offset(source, where):
            return
        partition, offset, ts_ms = where
        mark = self.marks.get(source)
        if mark is not None and mark[0] == partition:
            # The newest timestamp, not the last: producers' clocks differ, and a record stamped
            # earlier than one before it must not make that one's replay look new.
            ts_ms = max(ts_ms, mark[2])
        self.marks[source] = [partition, offset, ts_ms]

    def to_fields(self) -> list[object]:
        return [self.marks, self.ids]

    @classmethod
    def from_fields(cls, fields: list[object]) -> AppliedLog:
        marks, ids = fields
        return cls(marks=dict(marks), ids=list(ids))  # type: ignore[call-overload]
