"""The shoppers' feed hub: latest recommendation per shopper, one-slot mailboxes, event ids."""

import asyncio
import json

from streams.service.feeds import FeedHub, sse_event


def rec(user: str, ts: float, *items: str) -> dict:
    return {"user_id": user, "items": [{"item_id": i, "score": 1.0} for i in items], "published_ts": ts}


def test_the_newest_recommendation_wins_and_older_ones_are_ignored():
    hub = FeedHub()
    hub.publish("u1", rec("u1", 2.0, "a"))
    hub.publish("u1", rec("u1", 1.0, "b"))
    assert hub.latest("u1")["items"][0]["item_id"] == "a"
    assert hub.event_id(hub.latest("u1")) == "2.0"


def test_the_hub_is_bounded():
    hub = FeedHub(max_users=3)
    for n in range(5):
        hub.publish(f"u{n}", rec(f"u{n}", 1.0, "a"))
    assert len(hub) == 3 and hub.latest("u0") is None and hub.latest("u4") is not None


def test_streams_wake_for_their_own_shopper_and_for_items_they_show():
    async def scenario() -> None:
        hub = FeedHub()
        mine, other = hub.subscribe("u1"), hub.subscribe("u2")
        hub.publish("u1", rec("u1", 1.0, "a", "b"))
        assert await mine.next(0.5) and not await other.next(0.05)
        hub.publish("u1", rec("u1", 2.0, "a"))
        hub.publish("u1", rec("u1", 3.0, "c"))  # a burst collapses into one wake-up
        assert await mine.next(0.5) and not await mine.next(0.05)
        hub.item_changed("c")
        assert await mine.next(0.5)
        hub.item_changed("zzz")
        assert not await mine.next(0.05)
        assert hub.streams == 2
        hub.unsubscribe(mine)
        hub.unsubscribe(other)
        assert hub.streams == 0

    asyncio.run(scenario())


def test_server_sent_events_carry_id_and_one_line_of_json():
    raw = sse_event("2.0", {"text": "a\nb", "zh": "好"}).decode()
    lines = raw.split("\n")
    assert lines[:2] == ["id: 2.0", "event: feed"] and raw.endswith("\n\n")
    assert json.loads(lines[2].removeprefix("data: ")) == {"text": "a\nb", "zh": "好"}
