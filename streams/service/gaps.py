"""Knowledge gaps: per item, the questions the guide could not answer or handed to a person.

The merchant reads them (``GET /items/{item_id}/gaps``) to learn what the catalog and reviews do not
say. Bounded: the newest questions per item, and the items with the most recent gaps.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

QUESTIONS_KEPT = 20
ITEMS_MAX = 50_000


@dataclass
class _Gap:
    unanswered: int = 0
    handoff: int = 0
    questions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=QUESTIONS_KEPT))


class KnowledgeGaps:
    def __init__(self) -> None:
        self._items: OrderedDict[str, _Gap] = OrderedDict()

    def record(self, item_id: str, text: str, *, answered: bool, handoff: bool, ts: float) -> None:
        """Count a question about ``item_id`` that got no evidence-backed answer, or a hand-off."""
        if answered and not handoff:
            return
        gap = self._items.pop(item_id, None) or _Gap()
        gap.unanswered += 0 if answered else 1
        gap.handoff += 1 if handoff else 0
        gap.questions.append({"text": text, "handoff": handoff, "answered": answered, "ts": ts})
        self._items[item_id] = gap
        while len(self._items) > ITEMS_MAX:
            self._items.popitem(last=False)

    def of(self, item_id: str) -> dict[str, Any]:
        gap = self._items.get(item_id) or _Gap()
        return {
            "item_id": item_id,
            "unanswered": gap.unanswered,
            "handoff": gap.handoff,
            "questions": list(reversed(gap.questions)),
        }
