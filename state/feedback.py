"""A shopper's negative feedback: items disliked, and items shown again and again without an action.

Neither is an engagement: it never touches the action counts, recent items or interests the model
reads (its inputs are fixed to the five engagement actions). It only decides which items
``model.rules`` demotes for this shopper. Both parts are bounded, so a shopper who dislikes or
ignores thousands of items costs no more bytes than one who dislikes ``DISLIKED_MAX`` (at most
about 3 KB with ten-character item ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Disliked items remembered (the oldest forgotten first), and near neighbours kept with each.
DISLIKED_MAX = 20
NEIGHBOURS_MAX = 5
#: Items whose impressions are counted (the least recently shown forgotten first).
IMPRESSIONS_MAX = 100


@dataclass(slots=True)
class Disliked:
    item_id: str
    ts: float
    neighbours: list[str]  # the item's near neighbours in its category when it was disliked


@dataclass(slots=True)
class Feedback:
    disliked: list[Disliked] = field(default_factory=list)  # oldest first, one entry per item
    shown: dict[str, int] = field(default_factory=dict)  # item -> impressions since the last action on it

    def __bool__(self) -> bool:
        return bool(self.disliked or self.shown)

    def dislike(self, item_id: str, ts: float, neighbours: Sequence[str]) -> None:
        """Remember a dislike (a repeated one renews the item's entry and neighbours)."""
        self.disliked = [d for d in self.disliked if d.item_id != item_id]
        near = [n for n in dict.fromkeys(neighbours) if n != item_id][:NEIGHBOURS_MAX]
        self.disliked.append(Disliked(item_id, ts, near))
        if len(self.disliked) > DISLIKED_MAX:
            del self.disliked[: len(self.disliked) - DISLIKED_MAX]
        self.shown.pop(item_id, None)

    def show(self, item_ids: Iterable[str]) -> None:
        """Count one impression of each item (an item listed twice in one impression counts once)."""
        shown = self.shown
        for item_id in dict.fromkeys(item_ids):
            shown[item_id] = shown.pop(item_id, 0) + 1
        if len(shown) > IMPRESSIONS_MAX:
            for item_id in list(shown)[: len(shown) - IMPRESSIONS_MAX]:
                del shown[item_id]

    def acted(self, item_id: str) -> None:
        """Any action of the shopper on the item: its impressions start again from zero."""
        if self.shown:
            self.shown.pop(item_id, None)

    def demotions(self, now: float, near_ttl_s: float, impression_limit: int) -> tuple[set[str], dict[str, str]]:
        """The items never to show (the disliked ones) and those to demote, each with why:
        ``disliked`` (a near neighbour of an item disliked less than ``near_ttl_s`` ago) or
        ``ignored`` (shown at least ``impression_limit`` times without an action; 0: never)."""
        removed = {d.item_id for d in self.disliked}
        demoted: dict[str, str] = {}
        if impression_limit > 0:
            demoted = {i: "ignored" for i, n in self.shown.items() if n >= impression_limit}
        for d in self.disliked:
            if now - d.ts < near_ttl_s:
                for item_id in d.neighbours:
                    if item_id not in removed:
                        demoted[item_id] = "disliked"
        return removed, demoted

    def to_fields(self) -> list[object]:
        """Flat lists (ids, times, neighbours, shown ids, their counts): cheaper to encode and
        decode than a list per item."""
        d = self.disliked
        return [
            [x.item_id for x in d],
            [x.ts for x in d],
            [x.neighbours for x in d],
            list(self.shown),
            list(self.shown.values()),
        ]

    @classmethod
    def from_fields(cls, f: list[object]) -> Feedback:
        ids, times, near, shown, counts = f
        return cls(
            disliked=[Disliked(i, t, n) for i, t, n in zip(ids, times, near, strict=True)],  # type: ignore[call-overload]
            shown=dict(zip(shown, counts, strict=True)),  # type: ignore[call-overload]
        )
