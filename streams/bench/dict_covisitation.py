"""The co-visitation index as it was written with dicts, before model/covisitation.py held it in
arrays: the reference of ``shopguide bench --only click`` and the oracle of
tests/model/test_covisitation.py, not used by the engine."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from model.covisitation import CovisIndex, _last_distinct
from state.user import UserState


class DictCovisIndex(CovisIndex):
    """Co-visitation with ``OrderedDict`` tables: least recently updated items dropped first,
    rows over ``2 * max_neighbors`` cut to the ``max_neighbors`` strongest. A :class:`CovisIndex`
    by type only (so that a serving model takes it), none of its arrays used."""

    def __init__(self, max_items: int = 200_000, max_neighbors: int = 50, window: int = 5) -> None:
        super().__init__(max_items, max_neighbors, window)
        self.neighbors: OrderedDict[str, dict[str, float]] = OrderedDict()
        self.followers: OrderedDict[str, dict[str, float]] = OrderedDict()
        self.counts: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self.neighbors)

    def interactions(self, items: Sequence[str]) -> list[int]:
        return [self.counts.get(item, 0) for item in items]

    def observe(self, user_before: UserState, item_id: str) -> None:
        self.pair(item_id, _last_distinct(user_before, self.window, skip=item_id))
        self.counts[item_id] = self.counts.pop(item_id, 0) + 1
        if len(self.counts) > self.max_items:
            self.counts.popitem(last=False)

    def pair(self, item_id: str, others: Sequence[str]) -> None:
        for distance, other in enumerate(others):
            w = 1.0 / (1.0 + distance)
            self._add(self.neighbors, other, item_id, w)
            self._add(self.neighbors, item_id, other, w)
            self._add(self.followers, other, item_id, w)

    def neighbours(self, item_id: str) -> dict[str, float]:
        return dict(self.neighbors.get(item_id, {}))

    def _add(self, table: OrderedDict[str, dict[str, float]], a: str, b: str, w: float) -> None:
        neighbors = table.get(a)
        if neighbors is None:
            neighbors = table[a] = {}
            if len(table) > self.max_items:
                table.popitem(last=False)
        else:
            table.move_to_end(a)
        neighbors[b] = neighbors.get(b, 0.0) + w
        if len(neighbors) > 2 * self.max_neighbors:
            kept = sorted(neighbors.items(), key=lambda kv: kv[1], reverse=True)
            neighbors.clear()
            neighbors.update(kept[: self.max_neighbors])

    def scores(self, user: UserState, sources: int, per_source: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for rank, source in enumerate(_last_distinct(user, sources)):
            weight = 1.0 / (rank + 1)
            neighbors = self.neighbors.get(source)
            if neighbors:
                for other in sorted(neighbors, key=neighbors.__getitem__, reverse=True)[:per_source]:
                    out[other] = out.get(other, 0.0) + weight * neighbors[other]
        return out

    def following(self, user: UserState, sources: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for rank, source in enumerate(_last_distinct(user, sources)):
            weight = 1.0 / (rank + 1)
            for other, w in self.followers.get(source, {}).items():
                out[other] = out.get(other, 0.0) + weight * w
        return out

    def sources_of(self, user: UserState, sources: int, per_source: int, items: Sequence[str]) -> list[str | None]:
        best: dict[str, tuple[float, str]] = {}
        for rank, source in enumerate(_last_distinct(user, sources)):
            weight = 1.0 / (rank + 1)
            neighbors = self.neighbors.get(source, {})
            for other in sorted(neighbors, key=neighbors.__getitem__, reverse=True)[:per_source]:
                if other not in best or weight * neighbors[other] > best[other][0]:
                    best[other] = (weight * neighbors[other], source)
        return [best[item][1] if item in best else None for item in items]

    def held_by(self, holders: Sequence[str], items: Sequence[str]) -> list[bool]:
        held = {other for holder in holders for other in self.neighbors.get(holder, {})}
        return [item in held for item in items]
