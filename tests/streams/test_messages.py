import json

from state.item import ItemState
from state.user import PublishedRecommendation
from streams import messages


def test_recommendation_contract():
    rec = PublishedRecommendation(
        [("i1", 0.91234567), ("i2", 0.5)], [("shoes", 0.6)], 3, "e1", 100.0, 100.005, [["rule:r1", "viewed"], []]
    )
    m = json.loads(messages.recommendation("u1", rec))
    assert m == {
        "user_id": "u1",
        "items": [
            {"item_id": "i1", "score": 0.912346, "reasons": ["rule:r1", "viewed"]},
            {"item_id": "i2", "score": 0.5, "reasons": []},
        ],
        "interests": [{"category": "shoes", "weight": 0.6}],
        "model_version": 3,
        "trigger_event_id": "e1",
        "event_ts": 100.0,
        "published_ts": 100.005,
    }


def test_sentiment_contract():
    item = ItemState()
    figures = item.apply_review(False, 2, 20)
    m = json.loads(
        messages.sentiment(
            event_id="r1",
            user_id="u",
            item_id="i",
            score=0.6,  # under the model's trained threshold: labelled as the model decided
            positive=False,
            figures=figures,
            model_version=1,
            event_ts=5.0,
            published_ts=6.0,
        )
    )
    assert m["label"] == "negative" and m["item_reviews"] == 1 and m["item_positive_ratio"] == 0.0
    assert {"event_id", "user_id", "item_id", "score", "model_version", "published_ts"} <= m.keys()


def test_dead_letter_keeps_a_prefix_of_the_payload_as_text():
    payload = b"\xff" + "好".encode() * 3000
    m = json.loads(
        messages.dead_letter(
            source_topic="t",
            partition=1,
            offset=2,
            reason="encoding",
            error="bad",
            payload=payload,
            ts=1.0,
            payload_max=256,
        )
    )
    assert m["payload"].startswith("\\xff好")
    assert m["truncated"] and m["payload_bytes"] == len(payload)
    assert len(m["payload"].encode()) <= 256 + 16
    assert {"source_topic", "partition", "offset", "error", "payload", "ts"} <= m.keys()
