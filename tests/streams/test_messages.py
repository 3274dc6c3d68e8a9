import json
import random

from state.item import ItemState
from state.user import PublishedRecommendation
from streams import messages
from streams.events import compact_json


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


def test_a_recommendation_is_byte_for_byte_the_json_module_s_text() -> None:
    """msgspec writes it; floats json prints with an exponent (tiny scores, far timestamps), NaN
    and infinities, and every character a string may hold come out as ``json`` writes them."""
    rng = random.Random(11)
    floats = [0.0, -0.0, 1e-5, 9.9e-05, 1e-4, 0.000123, 0.5, 1.8e9, 1e16, 9.999999999999998e15, 1e300, 5e-324]
    floats += [float("nan"), float("inf"), -float("inf")]
    text = "".join(chr(c) for c in range(0, 0x800)) + "\u2028\u2029\ufeff好🛒"
    for n in range(400):
        pick = [rng.choice(floats), rng.uniform(0, 1e-3), 10 ** rng.uniform(-8, 20)]
        chars = "".join(rng.choice(text) for _ in range(8))
        rec = PublishedRecommendation(
            [(chars, rng.choice(pick)), ("i2", rng.choice(pick))],
            [(chars[::-1], rng.choice(pick))],
            n,
            "e\x00" + chars,
            rng.choice(pick),
            rng.choice(pick),
            [[chars, "viewed"], []],
            "exp" if n % 2 else "",
            "arm-" + chars if n % 2 else "",
            "r1",
        )
        fields = messages.recommendation_fields(chars, rec)
        assert messages.recommendation(chars, rec) == compact_json(fields), (n, rec)
