"""Which reviews get a reply draft: negative by rating or by label, whichever arrives first, once."""

from streams.events import Review
from streams.service.drafting import NegativeReviewWatch


def review(event_id: str, rating: int | None = None) -> Review:
    return Review(event_id, "u1", "i1", "太小了", 1.8e9, rating)


def test_a_low_rating_is_drafted_on_arrival_and_only_once():
    watch = NegativeReviewWatch()
    drafted = watch.review(review("r1", rating=2))
    assert drafted is not None and drafted[0]["event_id"] == "r1" and drafted[1] is None
    assert watch.label("r1", "negative") is None
    assert watch.review(review("r1", rating=2)) is None
    assert watch.review(review("r2", rating=3)) is None


def test_a_negative_label_drafts_whichever_comes_first():
    watch = NegativeReviewWatch()
    assert watch.review(review("r1")) is None
    assert watch.label("r1", "negative") == (
        {"event_id": "r1", "user_id": "u1", "item_id": "i1", "text": "太小了", "ts": 1.8e9},
        "negative",
    )
    assert watch.label("r2", "negative") is None  # label before its review
    assert watch.review(review("r2"))[1] == "negative"
    assert watch.review(review("r3")) is None
    assert watch.label("r3", "positive") is None
    assert watch.label("r3", "alert") is None


def test_waiting_reviews_and_labels_are_bounded():
    watch = NegativeReviewWatch(kept_max=10)
    for n in range(50):
        watch.review(review(f"r{n}"))
        watch.label(f"x{n}", "negative")
    assert len(watch._reviews) == 10 and len(watch._labels) == 10
