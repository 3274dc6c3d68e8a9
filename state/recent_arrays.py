"""A user's recent items as arrays over dense ids, kept beside the decoded state so that retrieval
reads them as they are instead of converting the state's ``RecentItem`` objects on every call.

Resident only: dense ids are assigned per process (``Catalog.item_ids``), so these arrays are never
stored; the durable state is the list of recent items they mirror (``UserState.recent``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class RecentArrays:
    """The last ``len(recent)`` items of a user as dense item ids (int32), action weights and
    times (float64) and category ids (int32), oldest first, over the id spaces ``item_ids`` and
    ``category_ids``. Appending writes past the window's end in buffers twice the window's bound
    (a click costs four stores) and copies the window into new buffers when they are full, so
    that a view once taken never changes (a pool re-run with extras reads its own)."""

    __slots__ = ("_buffers", "_end", "_start", "_views", "category_ids", "item_ids", "last")

    def __init__(
        self,
        item_ids: dict[str, int],
        category_ids: dict[str, int],
        items: Sequence[str],
        weights: Sequence[float],
        times: Sequence[float],
        categories: Sequence[str],
        bound: int,
        last: object,
    ) -> None:
        self.item_ids, self.category_ids = item_ids, category_ids
        n = len(items)
        capacity = max(2 * bound, n, 1)
        ids, cats = np.zeros(capacity, np.int32), np.zeros(capacity, np.int32)
        ids[:n] = [item_ids[i] for i in items]
        cats[:n] = [category_ids[c] for c in categories]
        w, ts = np.zeros(capacity), np.zeros(capacity)
        w[:n], ts[:n] = weights, times
        self._buffers = (ids, w, ts, cats)
        self._start, self._end = 0, n
        self._views: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        #: The newest item's object in the state these arrays mirror (None: no items).
        self.last = last

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, item_id: str, weight: float, ts: float, category: str, keep: int, last: object) -> None:
        """Add the newest item (``last``, its object in the state) and keep the newest ``keep``."""
        ids, w, t, cats = self._buffers
        if self._end == len(ids):
            start, end = self._start, self._end
            self._buffers = tuple(_moved(b, start, end) for b in self._buffers)  # type: ignore[assignment]
            ids, w, t, cats = self._buffers
            self._start, self._end = 0, end - start
        end = self._end
        ids[end], w[end], t[end], cats[end] = self.item_ids[item_id], weight, ts, self.category_ids[category]
        self._end = end + 1
        self._start = max(self._start, self._end - keep)
        self._views = None
        self.last = last

    def views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Item ids, weights, times and category ids, oldest first (views that later appends
        leave as they are; the same ones until the next append)."""
        if self._views is None:
            s, e = self._start, self._end
            ids, w, t, cats = self._buffers
            self._views = ids[s:e], w[s:e], t[s:e], cats[s:e]
        return self._views


def _moved(buffer: np.ndarray, start: int, end: int) -> np.ndarray:
    """A new buffer like ``buffer`` holding its ``[start:end]`` at its start."""
    out = np.zeros_like(buffer)
    out[: end - start] = buffer[start:end]
    return out
