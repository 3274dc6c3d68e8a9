"""A scored pool's ranking, produced lazily: serving reads the top k and a few spares of hundreds
of candidates, so the rest is never turned into Python pairs, and the chosen items' places in the
pool (which their reasons read) come from the same walk."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

import numpy as np


class Ranking:
    """``(item, score)`` by descending score (ties in pool order), one pass. It remembers where
    in the pool each item it produced sits; :meth:`position` walks on only for an item not
    produced yet (one a rule placed beyond the top)."""

    __slots__ = ("_at", "_walk")

    def __init__(
        self,
        items: Sequence[str] | Callable[[], Sequence[str]],
        scores: np.ndarray,
        at: Mapping[str, int] | None = None,
    ) -> None:
        """``items``: the pool's items, or what gives them on the first step of the walk (a pool
        whose ranking is never walked never names all its items); ``at``: pool positions of items
        already known (chosen without the walk; -1: known to be absent), which :meth:`position`
        answers at once."""
        self._at: dict[str, int] = dict(at) if at else {}
        self._walk = self._pairs(items, scores)

    def _pairs(
        self, items: Sequence[str] | Callable[[], Sequence[str]], scores: np.ndarray
    ) -> Iterator[tuple[str, float]]:
        # Sorted on the first step; Python ints and floats: indexing with numpy scalars cost more
        # than the scoring itself.
        names = items() if callable(items) else items
        values, order = scores.tolist(), np.argsort(-scores, kind="stable").tolist()
        at = self._at
        for i in order:
            item = names[i]
            at.setdefault(item, i)
            yield item, values[i]

    def __iter__(self) -> Iterator[tuple[str, float]]:
        """The walk itself (no Python call per item): a second iteration goes on where the
        first stopped."""
        return self._walk

    def position(self, item_id: str) -> int | None:
        """The pool index of ``item_id``'s best-ranked occurrence, or None if the pool lacks it."""
        at = self._at
        while item_id not in at:
            if next(self._walk, None) is None:
                return None
        place = at[item_id]
        return None if place < 0 else place

    def positions(self, items: Iterable[str], skipped: Collection[str] = ()) -> list[int]:
        """:meth:`position` of each of ``items``, -1 for those the pool lacks, -2 for ``skipped``."""
        at, position = self._at, self.position
        return [
            -2 if item_id in skipped else at[item_id] if item_id in at else _found(position(item_id))
            for item_id in items
        ]


def _found(place: int | None) -> int:
    return -1 if place is None else place
