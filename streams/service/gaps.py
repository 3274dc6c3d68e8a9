"""Knowledge gaps: per item, the questions the guide could not answer or handed to a person.

The merchant reads them (``GET /items/{item_id}/gaps``) to learn what the catalog and reviews do not
say. Bounded: the newest questions per item, and the items with the most recent gaps.

Durable: with a path, each item's gap is written to a RocksDB (rocksdict) beside the knowledge index
when it changes and read back on open, so a restart of the guide keeps them. A local store rather
than a compacted topic: gaps are written on the answer path, where a put costs microseconds and a
broker round trip would not, and they belong to the guide's data directory like its index.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

QUESTIONS_KEPT = 20
ITEMS_MAX = 50_000


@dataclass
class _Gap:
    unanswered: int = 0
    handoff: int = 0
    last_ts: float = 0.0
    questions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=QUESTIONS_KEPT))

    def record(self) -> bytes:
        return msgpack.packb([self.unanswered, self.handoff, self.last_ts, list(self.questions)])

    @classmethod
    def parse(cls, raw: bytes) -> _Gap:
        unanswered, handoff, last_ts, questions = msgpack.unpackb(raw)
        return cls(int(unanswered), int(handoff), float(last_ts), deque(questions, maxlen=QUESTIONS_KEPT))


class KnowledgeGaps:
    """Gaps per item, in memory or (with ``path``) also in RocksDB; call ``close`` when done."""

    def __init__(self, path: Path | None = None) -> None:
        self._items: OrderedDict[str, _Gap] = OrderedDict()
        self._db: Any = None
        if path is not None:
            from rocksdict import Rdict

            path.mkdir(parents=True, exist_ok=True)
            self._db = Rdict(str(path))
            loaded = sorted(((k, _Gap.parse(v)) for k, v in self._db.items()), key=lambda kv: kv[1].last_ts)
            for key, gap in loaded:
                self._items[key.decode("utf-8")] = gap
            self._evict()

    def record(self, item_id: str, text: str, *, answered: bool, handoff: bool, ts: float) -> None:
        """Count a question about ``item_id`` that got no evidence-backed answer, or a hand-off."""
        if answered and not handoff:
            return
        gap = self._items.pop(item_id, None) or _Gap()
        gap.unanswered += 0 if answered else 1
        gap.handoff += 1 if handoff else 0
        gap.last_ts = ts
        gap.questions.append({"text": text, "handoff": handoff, "answered": answered, "ts": ts})
        self._items[item_id] = gap
        if self._db is not None:
            self._db[item_id.encode("utf-8")] = gap.record()
        self._evict()

    def _evict(self) -> None:
        while len(self._items) > ITEMS_MAX:
            item_id, _ = self._items.popitem(last=False)
            if self._db is not None:
                del self._db[item_id.encode("utf-8")]

    def of(self, item_id: str) -> dict[str, Any]:
        gap = self._items.get(item_id) or _Gap()
        return {
            "item_id": item_id,
            "unanswered": gap.unanswered,
            "handoff": gap.handoff,
            "questions": list(reversed(gap.questions)),
        }

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
