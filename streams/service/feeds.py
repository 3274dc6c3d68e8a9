"""The shoppers' live feeds: the latest recommendation per shopper and who is watching it.

``shopguide.recommendations`` is compacted and holds the latest list per shopper; the hub keeps
that latest one (bounded, least recently updated dropped first) and wakes the page streams of its
shopper. A stream needs only the newest state, so each subscription is a one-slot mailbox: a burst
of recommendations while the page is busy collapses into the last one. The event id is the
recommendation's ``published_ts``, so a page that reconnects with ``Last-Event-ID`` gets the latest
at once only if it has not seen it.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any


class Subscription:
    """One page stream's mailbox: :meth:`next` returns the shopper's newest recommendation."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def next(self, timeout_s: float) -> bool:
        """True when woken within ``timeout_s``, False on timeout (time for a keep-alive)."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout_s)
        except TimeoutError:
            return False
        self._event.clear()
        return True


class FeedHub:
    def __init__(self, max_users: int = 200_000) -> None:
        self._latest: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._subs: dict[str, set[Subscription]] = {}
        self._max_users = max_users

    def publish(self, user_id: str, recommendation: dict[str, Any]) -> None:
        old = self._latest.get(user_id)
        if old is not None and float(old.get("published_ts", 0)) > float(recommendation.get("published_ts", 0)):
            return  # an older record read after a newer one (the topic's partitions are read apart)
        self._latest[user_id] = recommendation
        self._latest.move_to_end(user_id)
        while len(self._latest) > self._max_users:
            self._latest.popitem(last=False)
        for sub in self._subs.get(user_id, ()):
            sub.wake()

    def latest(self, user_id: str) -> dict[str, Any] | None:
        return self._latest.get(user_id)

    @staticmethod
    def event_id(recommendation: dict[str, Any]) -> str:
        return repr(float(recommendation.get("published_ts", 0.0)))

    def item_changed(self, item_id: str) -> None:
        """Wake the streams whose feed shows ``item_id`` (it went out of stock, or its figures moved)."""
        for user_id, subs in self._subs.items():
            rec = self._latest.get(user_id)
            if rec and any(i.get("item_id") == item_id for i in rec.get("items", ())):
                for sub in subs:
                    sub.wake()

    def wake_all(self) -> None:
        """Wake every stream (the guide is stopping: each sees it and ends)."""
        for subs in self._subs.values():
            for sub in subs:
                sub.wake()

    def subscribe(self, user_id: str) -> Subscription:
        sub = Subscription(user_id)
        self._subs.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.user_id]

    @property
    def streams(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def __len__(self) -> int:
        return len(self._latest)


def sse_event(event_id: str, data: dict[str, Any], event: str = "feed") -> bytes:
    """One server-sent event (data on one line: JSON has no raw newlines)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n".encode()
