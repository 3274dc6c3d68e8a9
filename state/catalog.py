"""Every worker's read-only, in-memory view of all items: category, stock and popularity.

Recommendations need facts about items a worker does not own (the item table is partitioned by
item), so each worker follows the item table's changelog into this view. Popularity is stored as a
log-score that orders items correctly at any common time without decaying every entry on read:
``log2(weighted decayed activity at t) + t / half_life`` is the same for every ``t``. Per category
it also keeps the latest-arrived items with few engagements (:meth:`Catalog.fresh`), which
exploration shows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from state.item import ItemState
from state.user import ACTION_WEIGHT

_NO_ACTIVITY = float("-inf")
#: An item with fewer engagements than this is fresh (explored), unless the catalog is told otherwise.
FRESH_BELOW = 5.0
#: Fresh items kept per category, the latest arrivals: exploration's choice, in bounded memory.
FRESH_KEPT = 64


class DenseIds(dict[str, int]):
    """Dense integer ids ``0, 1, ...``, assigned once per string on its first lookup, so that
    per-id facts live in arrays that compiled kernels read; ``names[i]`` is id ``i``'s string.
    The catalog, the co-visitation index and retrieval share one item id space."""

    def __init__(self, first: Iterable[str] = ()) -> None:
        super().__init__()
        self.names: list[str] = []
        for name in first:
            self[name]  # assigns the id

    def __missing__(self, name: str) -> int:
        n = self[name] = len(self.names)
        self.names.append(name)
        return n

    def of(self, names: Iterable[str], count: int = -1) -> np.ndarray:
        """The ids of ``names`` (assigned if new) as an int32 array (``count``: their number, if known)."""
        return np.fromiter(map(self.__getitem__, names), np.int32, count)


@dataclass(slots=True)
class ItemArrays:
    """Per dense item id: whether the catalog holds an entry, whether it is in stock, its
    ``pop_log``, its category id (0: "") and its engagements (the item table's decayed count,
    plus this worker's clicks since: never lowered). Ids the catalog never held have no entry."""

    present: np.ndarray
    in_stock: np.ndarray
    pop_log: np.ndarray
    category: np.ndarray
    engagements: np.ndarray


@dataclass(slots=True)
class CatalogEntry:
    category: str
    in_stock: bool
    in_catalog: bool
    pop_log: float
    positive_ratio: float
    reviews: int


class Catalog:
    def __init__(
        self,
        popularity_half_life_s: float,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        action_weights: Mapping[str, float] = ACTION_WEIGHT,
        fresh_below: float = FRESH_BELOW,
    ) -> None:
        self._half_life = popularity_half_life_s
        self._weights = action_weights  # each action's weight in popularity
        self._refresh_s = refresh_s
        self._clock = clock
        self._items: dict[str, CatalogEntry] = {}
        # Item ids per category in insertion order (a dict, not a set): ``popular`` breaks ties
        # by iteration order, which for a set of strings changes with the process's hash seed.
        self._by_category: dict[str, dict[str, None]] = {}
        # category ("" = all) -> its members' dense ids in that order, as ranking reads them
        self._members: dict[str, _Members] = {}
        # category ("" = all) -> its popular items as last ranked
        self._top: dict[str, _Ranking] = {}
        self._dirty: set[str] = set()
        # Every item id once, for uniform sampling in O(1) (swap-remove keeps it dense).
        self._ids: list[str] = []
        self._slot: dict[str, int] = {}
        self._categories: tuple[str, ...] | None = None  # categories(), until that set changes
        #: Items with fewer engagements than this are fresh.
        self.fresh_below = fresh_below
        # category -> its fresh items, oldest arrival first (at most FRESH_KEPT); item -> its category there.
        self._fresh: dict[str, list[str]] = {}
        self._fresh_in: dict[str, str] = {}
        #: Dense ids of item ids (shared with the co-visitation index) and of categories ("" is 0).
        self.item_ids = DenseIds()
        self.category_ids = DenseIds(first=("",))
        self._arrays = ItemArrays(
            np.zeros(0, np.bool_), np.zeros(0, np.bool_), np.zeros(0), np.zeros(0, np.int32), np.zeros(0)
        )

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> CatalogEntry | None:
        return self._items.get(item_id)

    @property
    def entries(self) -> Mapping[str, CatalogEntry]:
        """Every entry, read-only: a loop over hundreds of candidates per event binds
        ``entries.get`` once instead of calling :meth:`get` per item."""
        return self._items

    def category_of(self, item_id: str) -> str:
        entry = self._items.get(item_id)
        return entry.category if entry is not None else ""

    def available(self, item_id: str) -> bool:
        """False only for items the catalog says are out of stock."""
        entry = self._items.get(item_id)
        return entry is None or entry.in_stock

    def upsert(self, item_id: str, item: ItemState) -> None:
        """The item table's state of an item. Its popularity never lowers what :meth:`bump` has
        already counted here: the state may predate clicks this worker has seen."""
        pop_log = self._log_score(
            item.popularity_score(item.popularity.ts, self._half_life, self._weights), item.popularity.ts
        )
        self._engaged(item_id, item.popularity.total(), add=False)
        old = self._items.get(item_id)
        f = item.figures()
        entry = CatalogEntry(
            item.category,
            item.in_stock,
            item.in_catalog,
            pop_log if old is None else max(pop_log, old.pop_log),
            f.positive_ratio,
            f.reviews,
        )
        self._put(item_id, old, entry)

    def bump(self, item_id: str, category: str, action: str, ts: float) -> None:
        """Count one click of this worker's at once. The item table learns of it later (activity
        counts are flushed every few seconds, and behind a backlog of clicks they wait for it), and
        retrieval's popular lists should not wait with it. ``pop_log`` is a log of a sum, so adding
        one weighted click is a log-sum-exp."""
        added = self._log_score(self._weights[action], ts)
        self._engaged(item_id, 1.0, add=True)
        old = self._items.get(item_id)
        if old is None:
            entry = CatalogEntry(category, True, False, added, 0.0, 0)
        else:
            high, low = max(old.pop_log, added), min(old.pop_log, added)
            entry = CatalogEntry(
                old.category if old.in_catalog or not category else category,
                old.in_stock,
                old.in_catalog,
                high + math.log2(1.0 + 2.0 ** (low - high)),
                old.positive_ratio,
                old.reviews,
            )
        self._put(item_id, old, entry)

    def _engaged(self, item_id: str, count: float, *, add: bool) -> None:
        """Add ``count`` engagements to the item's, or raise its count to ``count`` (the item
        table's figure, which may predate this worker's clicks); a fresh item that reaches
        :attr:`fresh_below` leaves its fresh list."""
        dense = self.item_ids[item_id]
        a = self.arrays
        a.engagements[dense] = a.engagements[dense] + count if add else max(a.engagements[dense], count)
        if a.engagements[dense] >= self.fresh_below:
            self._unfresh(item_id)

    def _unfresh(self, item_id: str) -> None:
        category = self._fresh_in.pop(item_id, None)
        if category is not None:
            self._fresh[category].remove(item_id)

    def fresh(self, category: str) -> Sequence[str]:
        """The category's latest-arrived items with fewer than :attr:`fresh_below` engagements,
        oldest arrival first (at most :data:`FRESH_KEPT`; in stock or not)."""
        return self._fresh.get(category, ())

    def _log_score(self, score: float, ts: float) -> float:
        """``score`` (weighted activity at ``ts``) on the time-free log scale of ``pop_log``."""
        return math.log2(score) + ts / self._half_life if score > 0 else _NO_ACTIVITY

    @property
    def arrays(self) -> ItemArrays:
        """The per-id arrays, covering every id assigned so far in :attr:`item_ids`."""
        if len(self._arrays.present) < len(self.item_ids.names):
            self._grow(len(self.item_ids.names))
        return self._arrays

    def _grow(self, size: int) -> None:
        a = self._arrays
        capacity = max(size, 2 * len(a.present), 1024)
        grown = ItemArrays(
            np.zeros(capacity, np.bool_),
            np.zeros(capacity, np.bool_),
            np.full(capacity, _NO_ACTIVITY),
            np.zeros(capacity, np.int32),
            np.zeros(capacity),
        )
        n = len(a.present)
        grown.present[:n], grown.in_stock[:n], grown.pop_log[:n], grown.category[:n], grown.engagements[:n] = (
            a.present,
            a.in_stock,
            a.pop_log,
            a.category,
            a.engagements,
        )
        self._arrays = grown

    def _put(self, item_id: str, old: CatalogEntry | None, entry: CatalogEntry) -> None:
        if old is not None and old.category != entry.category:
            self._leave(old.category, item_id)
        self._items[item_id] = entry
        dense = self.item_ids[item_id]
        a = self.arrays
        a.present[dense], a.in_stock[dense] = True, entry.in_stock
        a.pop_log[dense], a.category[dense] = entry.pop_log, self.category_ids[entry.category]
        if old is None:
            self._slot[item_id] = len(self._ids)
            self._ids.append(item_id)
            self._member("").append(dense)
        if (old is None or item_id in self._fresh_in) and a.engagements[dense] < self.fresh_below:
            self._arrive(item_id, entry.category)
        members = self._by_category.setdefault(entry.category, {})
        if not members:
            self._categories = None
        if item_id not in members:
            members[item_id] = None
            if entry.category:  # key "" ranks every item
                self._member(entry.category).append(dense)
        self._dirty.update((entry.category, ""))

    def _member(self, key: str) -> _Members:
        found = self._members.get(key)
        if found is None:
            found = self._members[key] = _Members()
        return found

    def _arrive(self, item_id: str, category: str) -> None:
        """The item joins (or moves to) its category's fresh list, the oldest arrival leaving a
        full one."""
        if self._fresh_in.get(item_id) == category:
            return
        self._unfresh(item_id)
        fresh = self._fresh.setdefault(category, [])
        if len(fresh) >= FRESH_KEPT:
            del self._fresh_in[fresh.pop(0)]
        fresh.append(item_id)
        self._fresh_in[item_id] = category

    def _leave(self, category: str, item_id: str) -> None:
        members = self._by_category.get(category, {})
        members.pop(item_id, None)
        if not members:
            self._categories = None
        if category:
            self._member(category).stale = True
        self._dirty.add(category)

    def remove(self, item_id: str) -> None:
        old = self._items.pop(item_id, None)
        if old is not None:
            dense = self.item_ids[item_id]
            a = self.arrays
            a.present[dense], a.in_stock[dense], a.pop_log[dense], a.category[dense] = False, False, _NO_ACTIVITY, 0
            self._unfresh(item_id)
            slot = self._slot.pop(item_id)
            last = self._ids.pop()
            if last != item_id:
                self._ids[slot] = last
                self._slot[last] = slot
            self._leave(old.category, item_id)
            self._member("").stale = True
            self._dirty.add("")

    def sample(self, n: int, rng: Any) -> list[str]:
        """Up to ``n`` distinct item ids drawn uniformly (with replacement, then de-duplicated)
        from the whole catalog, in stock or not; O(n), whatever the catalog size. ``rng`` is a
        ``numpy.random.Generator``."""
        if not self._ids or n <= 0:
            return []
        # One scalar draw at a time: the same numbers as ``rng.integers(len, size=n)`` (numpy
        # fills an array with the very bounded draws it makes for a scalar), in half the time
        # for the few a click asks for.
        draw, ids, size = rng.integers, self._ids, len(self._ids)
        return list(dict.fromkeys([ids[draw(size)] for _ in range(n)]))

    def popular(self, n: int, category: str | None = None) -> list[str]:
        """The ``n`` most popular in-stock items, overall or in one category; recomputed at most
        once per ``refresh_s`` so that a burst of updates costs one ranking, not one per read."""
        return self._ranked(n, "" if category is None else category).names(self.item_ids)[:n]

    def popular_ids(self, n: int, category: str | None = None) -> np.ndarray:
        """:meth:`popular` as dense item ids (int32)."""
        return self._ranked(n, "" if category is None else category).ids[:n]

    def popular_lists(
        self, categories: Sequence[str], per_category: int, overall: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What retrieval reads of popularity, as :meth:`popular` ranks it, in dense item ids
        (int32): the ``overall`` most popular items; the ``per_category`` most popular of each of
        ``categories``, concatenated; and each of those its rank in its category. One reading of
        the clock for them all."""
        now = self._clock()
        current = self._current
        heads = [current(per_category, key, now).head(per_category) for key in categories]
        popular = current(overall, "", now).ids[:overall]
        if not heads:
            return popular, _NONE, _NONE
        joined = np.concatenate(heads, axis=1)
        return popular, joined[0], joined[1]

    def _ranked(self, n: int, key: str) -> _Ranking:
        """At least the ``n`` most popular in-stock items of category ``key`` ("": all), as
        last ranked, or ranked now."""
        return self._current(n, key, self._clock())

    def _current(self, n: int, key: str, now: float) -> _Ranking:
        """:meth:`_ranked` at ``now``: the last ranking while it holds ``n`` items and is fresh
        enough (nothing changed, or changed less than ``refresh_s`` after it was made)."""
        cached = self._top.get(key)
        if cached is not None and cached.limit >= n and (key not in self._dirty or now - cached.when < self._refresh_s):
            return cached
        return self._rank(n, key, now)

    def _rank(self, n: int, key: str, now: float) -> _Ranking:
        """Rank category ``key`` now: at least its ``n`` most popular in-stock items."""
        members = self._members.get(key)
        if members is not None and members.stale:
            pool = self._items.keys() if key == "" else self._by_category.get(key, {}).keys()
            members.reset(self.item_ids.of(pool, len(pool)))
        limit = max(n, 50)
        ids = _NONE if members is None else members.ids
        a = self.arrays
        ranked = self._top[key] = _Ranking(now, limit, top(ids[a.in_stock[ids]], a.pop_log, limit))
        self._dirty.discard(key)
        return ranked

    def categories(self) -> tuple[str, ...]:
        """The categories holding items: the same object until that set changes (serving reads
        it every batch and keeps what it derives from it while it is the same)."""
        if self._categories is None:
            self._categories = tuple(c for c, ids in self._by_category.items() if c and ids)
        return self._categories


_NONE = np.zeros(0, np.int32)


def top(ids: np.ndarray, score: np.ndarray, limit: int) -> np.ndarray:
    """The ``limit`` of ``ids`` with the highest ``score[id]``, highest first, ties in the order of
    ``ids``: ``heapq.nlargest(limit, ids, key=score.__getitem__)``, which sorts stably, as one
    stable numpy sort (a selection first is no faster here: ``np.partition`` slows down on the
    many tied ``-inf`` scores of items without activity)."""
    return ids[np.argsort(-score[ids], kind="stable")[:limit]]


class _Members:
    """A category's member ids, in its insertion order, as a growing int32 array; ``stale`` once
    a member left (rebuilt from the category's dict before the next ranking)."""

    __slots__ = ("_buffer", "_n", "stale")

    def __init__(self) -> None:
        self._buffer = np.zeros(16, np.int32)
        self._n = 0
        self.stale = False

    @property
    def ids(self) -> np.ndarray:
        return self._buffer[: self._n]

    def append(self, dense: int) -> None:
        if self._n == len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.zeros(len(self._buffer), np.int32)])
        self._buffer[self._n] = dense
        self._n += 1

    def reset(self, ids: np.ndarray) -> None:
        self._buffer, self._n, self.stale = np.concatenate([ids, np.zeros(16, np.int32)]), len(ids), False


class _Ranking:
    """A category's popular items as ranked at ``when`` (at least ``limit`` asked for): dense
    ids, and their names when first asked for."""

    __slots__ = ("_head", "_names", "ids", "limit", "when")

    def __init__(self, when: float, limit: int, ids: np.ndarray) -> None:
        self.when, self.limit, self.ids = when, limit, ids
        self._names: list[str] | None = None
        self._head: tuple[int, np.ndarray] | None = None

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` ids over their ranks 0, 1, ... (int32, two rows), kept for the last
        ``n`` asked for: retrieval reads the same categories' heads click after click, and joins
        a request's in one concatenation (shared: do not change it)."""
        kept = self._head
        if kept is None or kept[0] != n:
            ids = self.ids[:n]
            kept = self._head = (n, np.stack([ids, np.arange(len(ids), dtype=np.int32)]))
        return kept[1]

    def names(self, item_ids: DenseIds) -> list[str]:
        if self._names is None:
            self._names = list(map(item_ids.names.__getitem__, self.ids.tolist()))
        return self._names
