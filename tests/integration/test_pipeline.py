"""End to end through Kafka: the embedded broker, a real worker process, real RocksDB."""

from __future__ import annotations

import json
import re
import time

import pytest

from streams.events import Click, Item, Review
from streams.tools.cluster import get_json

pytestmark = pytest.mark.integration


def now() -> float:
    return time.time()


def test_a_click_yields_a_recommendation_without_bought_or_out_of_stock_items(cluster):
    for n in range(8):
        item = Item(f"shoe-{n}", "shoes", f"Shoe {n}", 20.0 + n, in_stock=(n != 3), ts=now())
        cluster.send("items", item.item_id, item.to_json())
    cluster.wait_catalog(8)
    view = Click("pc-1", "pc-user", "shoe-1", "view", now(), "shoes")
    buy = Click("pc-2", "pc-user", "shoe-2", "buy", now(), "shoes")
    cluster.send("clicks", view.user_id, view.to_json())
    cluster.send("clicks", buy.user_id, buy.to_json())
    [rec] = cluster.recommendations.wait_for(lambda m: m["trigger_event_id"] == "pc-2")
    ids = [i["item_id"] for i in rec["items"]]
    assert ids, "the recommendation is empty"
    assert len(ids) == len(set(ids)) <= 10
    assert "shoe-2" not in ids, "a bought item was recommended"
    assert "shoe-3" not in ids, "an out-of-stock item was recommended"
    assert rec["user_id"] == "pc-user" and rec["interests"][0]["category"] == "shoes"
    assert rec["event_ts"] <= rec["published_ts"]

    url = cluster.workers[0].url
    status, body = get_json(f"{url}/recommendations/pc-user")
    assert status == 200 and body["trigger_event_id"] == "pc-2" and body["items"] == rec["items"]
    status, user = get_json(f"{url}/users/pc-user")
    assert status == 200
    assert user["counts"] == {"view": 1, "click": 0, "cart": 0, "fav": 0, "buy": 1}
    assert [r["item_id"] for r in user["recent_items"]] == ["shoe-2", "shoe-1"]
    assert get_json(f"{url}/users/nobody-here")[0] == 404
    assert get_json(f"{url}/users/{'x' * 300}")[0] == 400


def test_a_review_yields_a_sentiment_message(cluster):
    review = Review("pr-1", "pr-user", "pr-item", "Love it, great quality! 非常满意", now(), rating=5)
    cluster.send("reviews", review.user_id, review.to_json())
    [m] = cluster.sentiment.wait_for(lambda m: m.get("event_id") == "pr-1")
    assert m["item_id"] == "pr-item" and m["user_id"] == "pr-user"
    assert m["label"] in ("positive", "negative") and 0.0 <= m["score"] <= 1.0
    assert m["item_reviews"] == 1 and m["published_ts"] >= review.ts
    status, body = get_json(f"{cluster.workers[0].url}/items/pr-item/sentiment")
    assert status == 200 and body["reviews"] == 1


CLICK_OK = '"item_id": "i", "action": "view", "ts": 1800000000'
BAD = [
    ("clicks", b"{not json at all bad-1", "invalid JSON"),
    ("clicks", b"\xff\xfe\x00\x01 binary bad-2", "not UTF-8"),
    (
        "clicks",
        b'{"event_id": "bad-3", "user_id": 7, "item_id": "i", "action": "view", "ts": 1}',
        "'user_id': expected a string",
    ),
    ("clicks", ('{"event_id": "bad-4", ' + CLICK_OK + "}").encode(), "'user_id': missing"),
    (
        "clicks",
        b'{"event_id": "bad-5", "user_id": "dl-user", "item_id": "i", "action": "steal", "ts": 1800000000}',
        "got 'steal'",
    ),
    ("clicks", b"301780,543546,4181361,pv,15 bad-6", "invalid JSON"),
    ("clicks", b'{"event_id": "bad-7", "user_id": "dl-user", "item_id": "i", "action": "view", "ts": NaN}', "NaN"),
    (
        "reviews",
        json.dumps(
            {"event_id": "bad-8", "user_id": "dl-user", "item_id": "i", "text": "x" * 10_001, "ts": 1.8e9}
        ).encode(),
        "at most 10000",
    ),
    (
        "reviews",
        b'{"event_id": "bad-9", "user_id": "dl-user", "item_id": "i", "text": "ok", "rating": 9, "ts": 1.8e9}',
        "1..5",
    ),
    ("items", b'{"item_id": "bad-10", "category": "c", "price": "free"}', "'price'"),
    ("clicks", b'[{"event_id": "bad-11"}]', "expected a JSON object"),
]


def test_bad_input_is_dead_lettered_and_the_valid_events_around_it_are_all_processed(cluster):
    valid = []
    for n, (kind, payload, _) in enumerate(BAD):
        click = Click(f"dl-ok-{n}", "dl-user", f"dl-item-{n}", "view", now(), "misc")
        valid.append(click.event_id)
        cluster.send("clicks", click.user_id, click.to_json())
        cluster.send(kind, None, payload)
    dead = cluster.deadletter.wait_for(lambda m: "bad-" in m["payload"], count=len(BAD))
    by_marker = {re.search(r"bad-\d+", d["payload"]).group(): d for d in dead}
    for n, (kind, payload, fragment) in enumerate(BAD, start=1):
        d = by_marker.get(f"bad-{n}")
        assert d is not None, f"no dead letter for {payload[:40]!r}"
        assert fragment in d["error"], (fragment, d["error"])
        assert d["source_topic"].endswith(kind) and d["reason"] and d["offset"] >= 0
    recs = cluster.recommendations.wait_for(lambda m: m["trigger_event_id"].startswith("dl-ok-"), count=len(valid))
    assert sorted(r["trigger_event_id"] for r in recs) == sorted(valid)
    status, user = get_json(f"{cluster.workers[0].url}/users/dl-user")
    assert status == 200 and user["counts"]["view"] == len(valid)
    assert get_json(f"{cluster.workers[0].url}/readyz")[0] == 200
