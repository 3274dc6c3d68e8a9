"""A user's recent items already packed in msgpack, kept beside the decoded state so that storing
the state after a click packs the one new item instead of all fifty.

Resident only, like :mod:`state.recent_arrays`: the stored bytes are exactly what packing the
whole list gives (``UserState.to_bytes``), these are only the parts of them that did not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import is_
from typing import Any

from state.codec import pack, packed_array


class PackedRecent:
    """Each item of a list as packed by ``fields`` and :func:`~state.codec.pack`, remembered by
    the item's identity: items are never changed in place (a changed list holds new items), so an
    item seen before packs as it did then."""

    __slots__ = ("_fields", "_items", "_packed")

    def __init__(self, fields: Callable[[Any], list[object]]) -> None:
        self._fields = fields
        self._items: list[object] = []
        self._packed: list[bytes] = []

    def array(self, items: Sequence[object]) -> bytes:
        """``pack([fields(i) for i in items])``: the packed items still at the head of ``items``
        (what remains after older ones were dropped from the front) are reused, the rest packed."""
        kept = self._kept(items)
        packed = self._packed[len(self._packed) - kept :] if kept else []
        packed += [pack(self._fields(item)) for item in items[kept:]]
        self._items, self._packed = list(items), packed
        return packed_array(packed)

    def _kept(self, items: Sequence[object]) -> int:
        """How many of the remembered items, the newest of them, are ``items``' first ones."""
        old = self._items
        first = items[0] if items else None
        start = next((n for n, item in enumerate(old) if item is first), None)
        if start is None or len(old) - start > len(items) or not all(map(is_, old[start:], items)):
            return 0
        return len(old) - start
