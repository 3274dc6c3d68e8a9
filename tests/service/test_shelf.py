"""The page's shelf: cards with figures, quotes and reasons; stock changes; bounds."""

import pytest

from streams.events import Item, Review
from streams.service.shelf import QUOTES_PER_LABEL, Shelf, reason_of

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


def test_the_feed_drops_unavailable_items_and_explains_the_rest_with_the_engines_reasons():
    shelf = shelf_with(
        Item("s1", "shoes", "Boot"),
        Item("s2", "shoes", "Sandal"),
        Item("b1", "bags", "Tote"),
        Item("h1", "hats", "Cap"),
        Item("x1", "hats", "Gone", in_stock=False),
    )
    rec = {
        "items": [
            {"item_id": "s1", "reasons": ["demoted:ignored", "covisited:b1", "interest:shoes"]},
            {"item_id": "s2", "reasons": ["rule:summer", "viewed"]},
            {"item_id": "b1", "reasons": []},  # none: the shopper's interests decide
            {"item_id": "h1"},  # written before reasons existed
            {"item_id": "x1", "reasons": ["viewed"]},
            {"item_id": "unknown", "reasons": ["viewed"]},
        ],
        "interests": [{"category": "bags", "weight": 0.5}],
        "published_ts": NOW,
    }
    view = shelf.feed("u1", rec, NOW)
    assert [c["item_id"] for c in view["cards"]] == ["s1", "s2", "b1", "h1"]
    assert [c["reason"] for c in view["cards"]] == [
        {"kind": "covisited", "item": "Tote"},  # the title of the item it was viewed with
        {"kind": "featured"},
        {"kind": "interest", "category": "bags"},
        {"kind": "popular", "category": "hats"},
    ]


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["viewed", "popular"], {"kind": "viewed"}),
        (["followed"], {"kind": "followed"}),
        (["popular_in:hats", "popular"], {"kind": "popular", "category": "hats"}),
        (["interest:hats"], {"kind": "interest", "category": "hats"}),
        (["popular"], {"kind": "popular_shop"}),
        (["explore"], {"kind": "new"}),  # a fresh item given an explored place
        (["demoted:disliked", "popular"], {"kind": "popular_shop"}),  # a demotion is not why it is shown
        (["rule:r1", "viewed"], {"kind": "featured"}),
        (["teleported", "interest:", "viewed:x", "covisited"], {"kind": "covisited"}),  # unknown ones skipped
        (["covisited:s9", "popular"], {"kind": "covisited", "item": "s9"}),  # no title known: the id
        (["bought_together", "interest:hats"], {"kind": "bought_together"}),
        (["demoted:ignored"], {"kind": "popular", "category": "shoes"}),  # nothing to phrase: the fallback
        ([], {"kind": "interest", "category": "shoes"}),
    ],
)
def test_a_cards_reason_is_the_first_of_the_engines_reasons_the_page_can_phrase(reasons, expected):
    strongest = ["shoes"] if not reasons else ["bags"]
    assert reason_of(reasons, "shoes", strongest) == expected
