from guide.aspects import ASPECTS, detect_aspects
from guide.replies import ReplyDraft


def test_negative_english_review_gets_an_english_draft_with_the_exchange_policy(demo_kb):
    review = {"event_id": "r-9", "item_id": "g-shoes", "text": "Runs a full size small, my toes hurt.", "rating": 2}
    draft = demo_kb.draft_reply(review, None)
    assert isinstance(draft, ReplyDraft)
    assert (draft.lang, draft.aspects, draft.status) == ("en", ["size_fit"], "draft")
    assert "TrailFlex running shoes" in draft.text and "exchange" in draft.text
    assert draft.to_json()["review_event_id"] == "r-9"


def test_negative_chinese_review_gets_a_chinese_draft_per_aspect(demo_kb):
    review = {"event_id": "r-10", "item_id": "g-kettle", "text": "物流太慢了，而且用了一周就坏了。", "rating": 3}
    draft = demo_kb.draft_reply(review, "negative")
    assert draft is not None and draft.lang == "zh"
    assert draft.aspects == ["quality", "shipping"]
    assert "一年质保" in draft.text and "查看物流" in draft.text and "抱歉" in draft.text


def test_happy_reviews_get_no_draft(demo_kb):
    assert demo_kb.draft_reply({"event_id": "r-1", "item_id": "g-tea", "text": "好喝", "rating": 5}, "positive") is None
    assert demo_kb.draft_reply({"event_id": "r-2", "item_id": "g-tea", "text": "ok"}, None) is None


def test_unknown_item_and_no_cue_still_get_a_polite_draft(demo_kb):
    draft = demo_kb.draft_reply({"event_id": "r-3", "item_id": "gone", "text": "Meh.", "rating": 1}, None)
    assert draft is not None and draft.aspects == ["other"] and "your order" in draft.text


def test_aspects_in_both_languages():
    assert {"shipping", "packaging"} <= set(detect_aspects("The box was crushed and it arrived two weeks late"))
    assert {"service", "not_as_described"} <= set(detect_aspects("客服态度差，颜色和图片不一样", "zh"))
    assert detect_aspects("Ordered a large, fits like a medium.") == ["size_fit"]
    assert detect_aspects("") == ["other"]
    assert set(detect_aspects("too expensive, broke in a week, wrong size")) <= set(ASPECTS)
