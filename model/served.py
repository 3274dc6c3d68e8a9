"""The candidates each recent user was last served, kept to learn from that user's next click.

A ranker trained on the features it served with ("logged features") learns exactly the
distribution it ranks: the next click's negatives come from the pool the user was shown a ranking
of, with the feature rows that ranking read. It also saves retrieving a second pool per click
(serving retrieves after a click, learning before the next one, from the same state). A click whose
pool is gone (evicted, or the worker restarted) has its pool retrieved again, at the click's time.
"""

from __future__ import annotations

from collections import OrderedDict

from model.retrieval import CandidatePool


class ServedPools:
    """At most ``capacity`` users' last served pools, least recently served evicted first. A pool
    is handed out once, and only for the recommendation it was served with: a user's state moves
    on with every click, and only the state the pool was retrieved from may learn from it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pools: OrderedDict[str, tuple[str, CandidatePool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pools)

    def put(self, user_id: str, trigger_event_id: str, pool: CandidatePool) -> None:
        if self.capacity <= 0:
            return
        self._pools.pop(user_id, None)
        self._pools[user_id] = (trigger_event_id, pool)
        if len(self._pools) > self.capacity:
            self._pools.popitem(last=False)

    def take(self, user_id: str, trigger_event_id: str) -> CandidatePool | None:
        """The pool served with the recommendation ``trigger_event_id`` triggered, if still held."""
        entry = self._pools.pop(user_id, None)
        if entry is None or entry[0] != trigger_event_id:
            return None
        return entry[1]
