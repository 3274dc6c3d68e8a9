"""``shopguide guide`` end to end: the embedded broker, a real worker and a real guide process.

The shop is the guide's demo catalog (``guide/gold/catalog.json``); each test adds what it asks about.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from streams.events import Item, Review
from streams.testing.harness import Cluster, TopicReader, fresh_settings, wait_until
from streams.tools.broker import EmbeddedBroker
from streams.tools.cluster import GuideProcess, get_json, get_text, post_json

pytestmark = pytest.mark.integration


@dataclass
class Shop:
    cluster: Cluster
    guide: GuideProcess
    answers: TopicReader
    replies: TopicReader
    clicks: TopicReader

    def ask(self, text: str, item_id: str | None = None, user: str = "shopper-1", **extra: str) -> tuple[int, dict]:
        body = {"user_id": user, "text": text, **({"item_id": item_id} if item_id else {}), **extra}
        return post_json(self.guide.url + "/ask", json.dumps(body, ensure_ascii=False).encode())

    def review(self, item_id: str, text: str, rating: int | None = None) -> str:
        event_id = f"rv-{uuid.uuid4().hex[:10]}"
        review = Review(event_id, "reviewer-1", item_id, text, time.time(), rating)
        self.cluster.send("reviews", review.user_id, review.to_json())
        return event_id


def demo_catalog() -> dict:
    return json.loads(resources.files("guide").joinpath("gold", "catalog.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shop(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("guide")
    cluster = Cluster(fresh_settings(broker, root))
    readers = []
    try:
        cluster.start_worker()
        catalog = demo_catalog()
        for item in catalog["items"]:
            cluster.producer.send(cluster.topics.items, item["item_id"].encode(), json.dumps(item).encode())
        for review in catalog["reviews"]:
            cluster.producer.send(cluster.topics.reviews, review["user_id"].encode(), json.dumps(review).encode())
        cluster.producer.flush()
        guide = cluster.start_guide(root / "guide")
        readers = [
            TopicReader(cluster.settings, getattr(cluster.topics, t)) for t in ("answers", "review_replies", "clicks")
        ]
        yield Shop(cluster, guide, *readers)
    finally:
        for reader in readers:
            reader.close()
        cluster.close()


def evidence_ids(answer: dict) -> set[str]:
    return {str(e.get("event_id") or e.get("review_event_id")) for e in answer.get("evidence", ())}


def test_a_new_review_is_answered_within_seconds_quoting_it(shop: Shop):
    event_id = shop.review(
        "g-earbuds", "The microphone is muffled on phone calls; people keep asking me to repeat myself."
    )
    published = time.monotonic()

    def quoted() -> dict | None:
        status, answer = shop.ask("Is the microphone good for phone calls?", "g-earbuds")
        assert status == 200, answer
        return answer if event_id in evidence_ids(answer) else None

    answer = wait_until(quoted, 20, "an answer quoting the new review")
    print(f"review answerable {time.monotonic() - published:.2f} s after it was published")
    assert answer["lang"] == "en" and answer["intent"] == "product_question"
    quote = next(e for e in answer["evidence"] if event_id in (e.get("event_id"), e.get("review_event_id")))
    assert quote["item_id"] == "g-earbuds" and "muffled" in quote["text"]


def test_a_chinese_question_is_answered_from_english_reviews(shop: Shop):
    item = Item("t-lamp", "home", "Arc desk lamp", 35.0, ts=time.time(), attributes={"power": "8 W"})
    shop.cluster.send("items", item.item_id, item.to_json())
    english = {
        shop.review("t-lamp", "Very bright light, my whole desk is lit evenly.", 5),
        shop.review("t-lamp", "The brightness is great and it has three colour temperatures.", 5),
    }

    def answered() -> dict | None:
        answer = shop.ask("这个台灯亮度怎么样", "t-lamp")[1]
        return answer if evidence_ids(answer) & english else None

    answer = wait_until(answered, 20, "a Chinese answer quoting the English reviews")
    assert answer["lang"] == "zh" and not answer["handoff"]
    assert any(e.get("lang") == "en" for e in answer["evidence"])


def test_asking_for_a_person_hands_off_and_counts_as_a_gap(shop: Shop):
    status, answer = shop.ask("I want to talk to a human agent please", "g-shoes")
    assert status == 200 and answer["handoff"] is True and answer["intent"] == "human"
    status, answer = shop.ask("转人工", "g-shoes", lang="zh")
    assert status == 200 and answer["handoff"] is True and answer["lang"] == "zh"
    status, gaps = get_json(shop.guide.url + "/items/g-shoes/gaps")
    assert status == 200 and gaps["handoff"] >= 2
    assert "I want to talk to a human agent please" in [q["text"] for q in gaps["questions"]]


def test_an_unknown_item_is_answered_from_the_policy_never_an_error(shop: Shop):
    status, answer = shop.ask("How long does shipping take?", "no-such-item")
    assert status == 200 and answer["intent"] == "shipping"
    assert answer["handoff"] or answer["answer"]


def test_a_question_about_an_item_is_a_view_click(shop: Shop):
    shop.ask("Is the sole grippy on wet rocks?", "g-shoes", user="asker-9")
    shop.clicks.wait_for(
        lambda c: (
            isinstance(c, dict)
            and c.get("user_id") == "asker-9"
            and c.get("item_id") == "g-shoes"
            and c.get("action") == "view"
        ),
        timeout_s=10,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "json"),
        (b"{not json", "json"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "encoding"),
        (json.dumps({"user_id": "u", "text": ""}).encode(), "out_of_range"),
        (json.dumps({"user_id": "u", "text": "x" * 1001}).encode(), "out_of_range"),
    ],
)
def test_bad_questions_over_http_get_400_with_a_reason(shop: Shop, body: bytes, reason: str):
    status, answer = post_json(shop.guide.url + "/ask", body)
    assert status == 400 and answer["reason"] == reason and answer["error"]


def test_questions_over_kafka_are_answered_and_bad_ones_dead_lettered(shop: Shop):
    t = shop.cluster.topics
    good = {"event_id": "kq-1", "user_id": "kafka-shopper", "text": "Can I return the shoes?", "item_id": "g-shoes"}
    shop.cluster.send("questions", "kafka-shopper", b"{not json")
    shop.cluster.send("questions", "kafka-shopper", json.dumps({"user_id": "kafka-shopper", "text": "no id"}).encode())
    shop.cluster.send("questions", "kafka-shopper", json.dumps(good).encode())
    answer = shop.answers.wait_for(lambda a: isinstance(a, dict) and a.get("question_event_id") == "kq-1")[0]
    assert answer["user_id"] == "kafka-shopper" and answer["intent"] == "returns" and answer["answer"]
    letters = shop.cluster.deadletter.wait_for(lambda d: d.get("source_topic") == t.questions, count=2)
    assert sorted(d["reason"] for d in letters) == ["json", "missing_field"]


def test_a_negative_review_gets_a_reply_draft_with_its_aspect(shop: Shop):
    event_id = shop.review("g-shoes", "These run a full size small, my toes hurt after ten minutes.", 1)
    draft = shop.replies.wait_for(lambda d: isinstance(d, dict) and d.get("review_event_id") == event_id)[0]
    assert draft["item_id"] == "g-shoes" and draft["status"] == "draft" and draft["lang"] == "en"
    assert "size_fit" in draft["aspects"] and draft["text"]
    # No rating: negative by the worker's label.
    zh = shop.review("g-shoes", "鞋子偏小一码,穿着很挤脚,非常失望,不推荐购买。")
    label = shop.cluster.sentiment.wait_for(lambda m: m.get("event_id") == zh)[0]["label"]
    assert label == "negative"
    draft = shop.replies.wait_for(lambda d: isinstance(d, dict) and d.get("review_event_id") == zh, timeout_s=10)[0]
    assert draft["lang"] == "zh" and "size_fit" in draft["aspects"]


def test_metrics_and_health(shop: Shop):
    status, health = get_json(shop.guide.url + "/healthz")
    assert status == 200 and health["encoder_available"] is True and health["shelf_items"] >= 12
    text = get_text(shop.guide.url + "/metrics")
    assert 'shopguide_guide_questions_total{channel="http"' in text
    assert "shopguide_guide_encoder_available 1.0" in text


def test_a_restart_keeps_the_index(shop: Shop, tmp_path: Path):
    guide = shop.guide
    before = shop.ask("How long does the battery last?", "g-earbuds")[1]
    assert evidence_ids(before)
    assert guide.stop() == 0  # SIGTERM: a clean stop
    assert (guide.settings.data_dir / "knowledge").exists()
    guide.start()
    guide.wait_ready()
    after = shop.ask("How long does the battery last?", "g-earbuds")[1]
    assert evidence_ids(after) == evidence_ids(before)
    assert "shopguide_guide_embedded_sentences_total 0.0" in get_text(guide.url + "/metrics")  # nothing embedded again


def test_a_restart_keeps_the_knowledge_gaps(shop: Shop):
    question = f"I want to talk to a human agent please, about order {uuid.uuid4().hex[:6]}"
    assert shop.ask(question, "g-earbuds")[1]["handoff"]
    before = get_json(shop.guide.url + "/items/g-earbuds/gaps")[1]
    assert question in [q["text"] for q in before["questions"]]
    assert shop.guide.stop() == 0
    shop.guide.start()
    shop.guide.wait_ready()
    assert get_json(shop.guide.url + "/items/g-earbuds/gaps")[1] == before


def test_ask_needs_an_api_token_or_the_shoppers_session(shop: Shop):
    assert shop.guide.token, "the fixture's settings carry API tokens"
    body = json.dumps({"user_id": "shopper-1", "text": "How long does shipping take?"}).encode()
    assert post_json(shop.guide.url + "/ask", body, {"Authorization": "Bearer not-a-token"})[0] == 401
    assert post_json(shop.guide.url + "/ask", body, {"Authorization": f"Bearer {shop.guide.token}"})[0] == 200
