"""Users' decoded states kept in memory between their events, so that a shopper's state is decoded
once, not on every click.

The durable copy stays the table (every change is still written through the :class:`Store`, with
its changelog); this is a bounded cache of it, least recently used out first. It must never hold
what the table does not: it is emptied when the table's partitions move (another worker may change
them meanwhile, and recovery rewrites them), a user is dropped when erased, and a batch that fails
part-way empties it (its states may hold changes that were never written).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from state.errors import StateDecodeError
from state.user import UserState
from streams.processors.base import Store

log = logging.getLogger(__name__)


class ResidentUsers:
    """At most ``capacity`` users' states (0: none, every read decodes)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, UserState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def load(self, store: Store, key: str, handle: Any) -> UserState:
        """The user's state: the resident one, or the stored one decoded (a new one if absent or
        unreadable), made resident."""
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
            return state
        raw = store.get(key, handle)
        state = UserState()
        if raw is not None:
            try:
                state = UserState.from_bytes(raw)
            except StateDecodeError:
                log.exception("unreadable state for a user: starting it afresh")
        if self.capacity > 0:
            self._states[key] = state
            if len(self._states) > self.capacity:
                self._states.popitem(last=False)
        return state

    def drop(self, key: str) -> None:
        self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Around a batch that changes states in place: if it fails, what it changed may not have
        been written, so nothing resident is trusted any more."""
        try:
            yield
        except BaseException:
            self.clear()
            raise
