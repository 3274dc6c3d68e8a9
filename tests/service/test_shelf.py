"""The page's shelf: cards with figures, quotes and reasons; stock changes; bounds."""

from streams.events import Item, Review
from streams.service.shelf import QUOTES_PER_LABEL, Shelf

NOW = 1.8e9


def shelf_with(*items: Item) -> Shelf:
    shelf = Shelf()
    for item in items:
        shelf.apply_item(item)
    return shelf


def test_cards_carry_figures_and_quotes_from_the_sentiment_topic():
    shelf = shelf_with(Item("i1", "shoes", "Trail runner", 89.5, ts=NOW))
    for n in range(5):
        shelf.remember_review(Review(f"r{n}", "u", "i1", f"great {n}", NOW, 5))
        shelf.apply_sentiment(
            {
                "event_id": f"r{n}",
                "item_id": "i1",
                "label": "positive",
                "score": 0.9,
                "item_positive_ratio": 0.8,
                "item_reviews": n + 1,
            }
        )
    details = shelf.details("i1", NOW)
    assert (details["positive_ratio"], details["reviews"], details["alerting"]) == (0.8, 5, False)
    assert [q["text"] for q in details["quotes"]] == ["great 4", "great 3", "great 2"][:QUOTES_PER_LABEL]
    shelf.apply_sentiment({"item_id": "i1", "label": "alert", "published_ts": NOW - 60})
    assert shelf.card("i1", NOW)["alerting"] is True
    assert shelf.card("i1", NOW + 7 * 3600)["alerting"] is False
    assert shelf.apply_sentiment({"item_id": "nope", "label": "positive"}) is None


def test_stock_changes_are_reported_and_older_records_do_not_win():
    shelf = shelf_with(Item("i1", "shoes", ts=NOW))
    assert shelf.apply_item(Item("i1", "shoes", in_stock=False, ts=NOW + 1)) is True
    assert shelf.apply_item(Item("i1", "shoes", in_stock=True, ts=NOW)) is False
    assert shelf.card("i1", NOW)["in_stock"] is False


def test_the_feed_drops_unavailable_items_and_explains_the_rest():
    shelf = shelf_with(
        Item("s1", "shoes", "Boot"),
        Item("s2", "shoes", "Sandal"),
        Item("b1", "bags", "Tote"),
        Item("h1", "hats", "Cap"),
        Item("x1", "hats", "Gone", in_stock=False),
    )
    shelf.note_tap("u1", "s2")
    shelf.note_tap("u1", "s1")
    rec = {
        "items": [{"item_id": i} for i in ("s1", "s2", "b1", "h1", "x1", "unknown")],
        "interests": [{"category": "bags", "weight": 0.5}],
        "published_ts": NOW,
    }
    view = shelf.feed("u1", rec, NOW)
    assert [c["item_id"] for c in view["cards"]] == ["s1", "s2", "b1", "h1"]
    assert [c["reason"] for c in view["cards"]] == [
        {"kind": "viewed", "title": "Sandal"},  # never the card's own item
        {"kind": "viewed", "title": "Boot"},
        {"kind": "interest", "category": "bags"},
        {"kind": "popular", "category": "hats"},
    ]
    assert shelf.feed("u2", rec, NOW)["cards"][0]["reason"] == {"kind": "popular", "category": "shoes"}
