import json

import pytest
from guide_fixtures import review

from guide.encoder import Encoder
from guide.evaluation import load_gold
from guide.knowledge import Answer, Evidence, KnowledgeBase

ITEM = {
    "item_id": "it-1",
    "category": "electronics",
    "title": "SoundLite earbuds",
    "price": 59.9,
    "ts": 1.0,
    "attributes": {"battery_life": "6 h per charge", "bluetooth": "5.3"},
}


def test_reopen_restores_everything_without_embedding_again(tmp_path, monkeypatch):
    path = str(tmp_path / "kb")
    kb = KnowledgeBase.open(path)
    kb.add_item(ITEM)
    kb.add_reviews([review("r-1", "it-1", "The battery lasts all day. Great sound."), review("r-2", "it-1", "续航好")])
    kb.set_sentiment("it-1", "r-1", "positive", 0.9)
    before = kb.ask("How long does the battery last?", item_id="it-1")
    stats = kb.stats()
    kb.close()

    calls = []
    real = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts: calls.append(list(texts)) or real(self, texts))
    again = KnowledgeBase.open(path)
    assert calls == []  # items, sentences and policy all come back with their vectors
    assert again.stats() == stats
    after = again.ask("How long does the battery last?", item_id="it-1")
    assert calls == [["How long does the battery last?"]]  # only the question is embedded
    assert after == before
    assert after.evidence[0].sentiment == "positive"
    again.close()


def test_newest_sentences_per_item_are_kept():
    kb = KnowledgeBase.open(None, max_sentences_per_item=3)
    added = kb.add_reviews(
        [review(f"r-{i}", "it-1", f"Sentence number {i}. Another one {i}.", ts=100.0 + i) for i in range(4)]
    )
    assert added == 3
    kb.add_reviews([review("r-new", "it-1", "Newest words here.", ts=200.0)])
    texts = {e.text for e in kb.ask("sentence number another newest", item_id="it-1").evidence}
    assert kb.stats()["sentences"] == 3
    assert not any("0" in t or "1" in t for t in texts)
    kb.close()


def test_adding_a_review_twice_indexes_it_once(kb):
    batch = [review("r-1", "it-1", "Soft fabric. Runs small."), review("r-1", "it-1", "Soft fabric. Runs small.")]
    assert kb.add_reviews(batch) == 2
    assert kb.add_reviews(batch) == 0
    assert kb.stats()["sentences"] == 2


@pytest.mark.parametrize("order", ["before", "after"])
def test_sentiment_attaches_whether_it_arrives_before_or_after_the_review(kb, order):
    if order == "before":
        kb.set_sentiment("it-1", "r-1", "negative", 0.8)
    kb.add_reviews([review("r-1", "it-1", "The zipper broke after two weeks.")])
    if order == "after":
        kb.set_sentiment("it-1", "r-1", "negative", 0.8)
    answer = kb.ask("Is the zipper sturdy?", item_id="it-1")
    assert answer.evidence[0].event_id == "r-1"
    assert answer.evidence[0].sentiment == "negative"


def test_chinese_question_is_answered_from_english_reviews_and_back(demo_kb):
    zh = demo_kb.ask("能放下15.6寸的笔记本吗", item_id="g-backpack")
    assert zh.lang == "zh" and zh.evidence[0].event_id in {"rv-b1", "catalog:laptop"}
    en = demo_kb.ask("Does it keep you warm in a cold winter?", item_id="g-jacket")
    assert en.lang == "en" and "rv-j1" in {e.event_id for e in en.evidence}
    assert any(e.lang == "zh" for e in en.evidence)


def test_answer_quotes_evidence_and_counts_stance(demo_kb):
    answer = demo_kb.ask("How long does the battery last?", item_id="g-earbuds")
    assert not answer.handoff and answer.intent == "product_question"
    assert "reviews that" in answer.answer and "positive" in answer.answer
    for e in answer.evidence:
        assert e.text in answer.answer
    zh = demo_kb.ask("续航怎么样？能用多久？", item_id="g-earbuds")
    assert "条评论中有" in zh.answer
    assert json.dumps(zh.to_json(), ensure_ascii=False)


def test_policy_questions_are_answered_in_the_question_language(demo_kb):
    zh = demo_kb.ask("退款多久到账")
    assert zh.intent == "returns" and zh.evidence[0].event_id == "policy:refund_time"
    assert "原路退款" in zh.answer
    en = demo_kb.ask("Can I pay with PayPal?")
    assert en.evidence[0].event_id == "policy:payment_methods" and "PayPal" in en.answer


def test_handoff_for_a_person_an_unanswerable_question_and_no_evidence(demo_kb, kb):
    assert demo_kb.ask("转人工").handoff
    assert demo_kb.ask("I want to talk to a real person").intent == "human"
    assert demo_kb.ask("Does it have a rotisserie spit?", item_id="g-airfryer").handoff
    empty = kb.ask("Does it come in red?", item_id="nobody-knows-me")
    assert isinstance(empty, Answer) and empty.handoff


def test_unknown_item_is_answered_from_the_policy(demo_kb):
    answer = demo_kb.ask("包邮吗", item_id="no-such-item")
    assert answer.evidence[0].event_id == "policy:shipping_fee" and not answer.handoff


def test_invalid_items_are_refused_with_a_clear_message(kb):
    with pytest.raises(ValueError, match="at most 32 keys"):
        kb.add_item({**ITEM, "attributes": {f"k{i}": i for i in range(33)}})
    with pytest.raises(ValueError, match=r"keys are 1\.\.64"):
        kb.add_item({**ITEM, "attributes": {"k" * 65: "v"}})
    with pytest.raises(ValueError, match="at most 256 characters"):
        kb.add_item({**ITEM, "attributes": {"color": "x" * 257}})
    with pytest.raises(ValueError, match="string or a finite number"):
        kb.add_item({**ITEM, "attributes": {"weight": float("nan")}})
    with pytest.raises(ValueError, match="item_id"):
        kb.add_item({**ITEM, "item_id": ""})
    kb.add_item(ITEM)
    assert kb.stats()["items"] == 1


def test_older_item_events_do_not_overwrite_newer_ones(kb):
    kb.add_item({**ITEM, "price": 50.0, "ts": 10.0})
    kb.add_item({**ITEM, "price": 99.0, "ts": 5.0})
    answer = kb.ask("what is the price", item_id="it-1")
    assert any(e.text == "price: 50" for e in answer.evidence)


def test_a_batch_of_items_is_embedded_at_once_and_refuses_only_its_bad_events(kb, monkeypatch):
    calls = []
    real = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts: calls.append(len(texts)) or real(self, texts))
    refused = kb.add_items(
        [
            {**ITEM, "price": 50.0, "ts": 10.0},
            {**ITEM, "item_id": ""},
            {**ITEM, "price": 99.0, "ts": 5.0},  # older than the first: ignored
            {**ITEM, "item_id": "it-2", "title": "Trail runner"},
        ]
    )
    assert [k for k, _ in refused] == [1] and "item_id" in refused[0][1]
    assert len(calls) == 1  # one encoder batch for both items' fields
    assert kb.stats()["items"] == 2
    assert any(e.text == "price: 50" for e in kb.ask("what is the price", item_id="it-1").evidence)


def test_without_the_encoder_the_guide_answers_from_bm25(caplog):
    kb = KnowledgeBase.open(None, use_encoder=False)
    assert not kb.encoder_available
    kb.add_reviews([review("r-1", "it-1", "The zipper broke after two weeks.")])
    answer = kb.ask("did the zipper break?", item_id="it-1")
    assert isinstance(answer.evidence[0], Evidence) and answer.evidence[0].event_id == "r-1"


def test_demo_catalog_stats(demo_kb):
    stats = demo_kb.stats()
    assert stats["items"] == len(load_gold("catalog")["items"])
    assert stats["sentences"] > 0 and stats["bytes"] > 0


def test_question_without_an_item_searches_the_best_matching_items(demo_kb):
    answer = demo_kb.ask("Is the air fryer basket easy to clean?")
    assert answer.evidence[0].item_id == "g-airfryer"
    assert demo_kb.ask("电热水壶烧水快吗").evidence[0].item_id == "g-kettle"


def test_an_item_update_replaces_its_catalog_entry(kb):
    kb.add_item({**ITEM, "title": "Garden hose 20 m", "category": "garden", "attributes": {}, "ts": 1.0})
    kb.add_item({**ITEM, "item_id": "it-2", "title": "Rain boots", "category": "shoes", "attributes": {}, "ts": 1.0})
    kb.add_item({**ITEM, "title": "Espresso machine", "category": "kitchen", "attributes": {}, "ts": 2.0})
    assert kb.ask("espresso machine price").evidence[0].item_id == "it-1"
    assert kb.stats()["items"] == 2


def test_a_trimmed_review_is_stored_as_kept_and_reopens_the_same(tmp_path):
    path = str(tmp_path / "kb")
    kb = KnowledgeBase.open(path, max_sentences_per_item=3)
    kb.add_reviews([review("r-1", "it-1", "Old words one. Old words two. Old words three.", ts=100.0)])
    kb.add_reviews([review("r-2", "it-1", "The strap is comfortable. It fits well.", ts=200.0)])
    before = [kb.ask(q, item_id="it-1") for q in ("old words three", "is the strap comfortable")]
    stats = kb.stats()
    kb.close()
    again = KnowledgeBase.open(path, max_sentences_per_item=3)
    assert again.stats() == stats
    assert stats["sentences"] == 3
    assert [again.ask(q, item_id="it-1") for q in ("old words three", "is the strap comfortable")] == before
    assert "Old words three." in {e.text for e in before[0].evidence}
    again.close()


def test_answers_do_not_depend_on_which_items_are_cached(demo_kb, monkeypatch):
    import guide.knowledge as knowledge

    questions = [(q["text"], q["item_id"]) for q in load_gold("questions")["questions"][:40]]
    cached = [demo_kb.ask(text, item_id=item_id) for text, item_id in questions]
    monkeypatch.setattr(knowledge, "CACHED_ITEMS", 1)
    fresh = [demo_kb.ask(text, item_id=item_id) for text, item_id in questions]
    assert len(demo_kb._cache) == 1
    assert fresh == cached


def test_items_share_the_vectors_of_equal_fields_until_they_change(kb, monkeypatch):
    kb.add_items([{**ITEM, "item_id": f"it-{n}", "title": f"Earbuds {n}", "ts": 1.0} for n in range(3)])
    first, second = kb._items["it-0"].fields, kb._items["it-1"].fields
    assert first is not None and second is not None
    assert first.vectors[1] is second.vectors[1]  # "category: electronics", held once
    held = len(kb._shared._held)
    assert held == 3 + 5  # three titles, then category, price, stock and two attributes shared
    embedded: list[list[str]] = []
    real = Encoder.encode
    monkeypatch.setattr(Encoder, "encode", lambda self, texts: embedded.append(list(texts)) or real(self, texts))
    kb.add_item({**ITEM, "item_id": "it-0", "title": "Earbuds 0", "price": 10.0, "ts": 2.0})
    assert embedded == [["price: 10"]]  # the texts already held are not embedded again
    assert len(kb._shared._held) == held + 1  # the new price; the old one is still used by it-1, it-2
    for n in (1, 2):
        kb.add_item({**ITEM, "item_id": f"it-{n}", "title": f"Earbuds {n}", "price": 10.0, "ts": 2.0})
    assert len(kb._shared._held) == held  # no item has the old price any more
    assert kb.ask("earbuds price", item_id="it-2").evidence[0].text in {"price: 10", "Earbuds 2"}
