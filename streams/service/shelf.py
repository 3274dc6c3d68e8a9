"""What the shopper's page shows of each item: catalog fields, review figures, quotes, alerts.

Fed from ``shopguide.items`` and ``shopguide.sentiment`` (the worker's per-review labels carry the
item's positive ratio and review count), it turns a recommendation into cards, each with the first of the engine's
``reasons`` for the item that the page can phrase (``reason_of``). Bounded: a few quotes per item.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.events import Item, Review

#: How long after an alert the item carries the alert marker.
ALERT_SHOWN_S = 6 * 3600.0
QUOTES_PER_LABEL = 3
QUOTE_MAX = 240
PENDING_REVIEWS_MAX = 20_000
#: The engine's reasons without a category, as the page's reason kinds.
_PLAIN_REASONS = {
    "viewed": "viewed",
    "covisited": "covisited",
    "bought_together": "bought_together",
    "followed": "followed",
    "popular": "popular_shop",
    "explore": "new",
}


@dataclass
class ShelfItem:
    item: Item
    positive_ratio: float | None = None
    reviews: int = 0
    alert_ts: float | None = None
    quotes: dict[str, deque[dict[str, Any]]] = field(
        default_factory=lambda: {
            "positive": deque(maxlen=QUOTES_PER_LABEL),
            "negative": deque(maxlen=QUOTES_PER_LABEL),
        }
    )


class Shelf:
    def __init__(self) -> None:
        self._items: dict[str, ShelfItem] = {}
        self._pending: OrderedDict[str, Review] = OrderedDict()  # reviews waiting for their label

    def __len__(self) -> int:
        return len(self._items)

    def apply_item(self, item: Item) -> bool:
        """Store a catalog record (older records never overwrite newer); True when it changed stock."""
        current = self._items.get(item.item_id)
        if current is None:
            self._items[item.item_id] = ShelfItem(item)
            return False
        if current.item.ts is not None and item.ts is not None and item.ts < current.item.ts:
            return False
        changed = current.item.in_stock != item.in_stock
        current.item = item
        return changed

    def remember_review(self, review: Review) -> None:
        self._pending[review.event_id] = review
        while len(self._pending) > PENDING_REVIEWS_MAX:
            self._pending.popitem(last=False)

    def apply_sentiment(self, message: dict[str, Any]) -> str | None:
        """Take one ``shopguide.sentiment`` message; the item id it concerns, if known."""
        entry = self._items.get(str(message.get("item_id")))
        if entry is None:
            return None
        label = message.get("label")
        if label == "alert":
            entry.alert_ts = float(message.get("published_ts") or 0.0)
        elif label in ("positive", "negative"):
            entry.positive_ratio = float(message.get("item_positive_ratio", 0.0))
            entry.reviews = int(message.get("item_reviews", 0))
            review = self._pending.pop(str(message.get("event_id")), None)
            if review is not None:
                entry.quotes[label].append(
                    {
                        "event_id": review.event_id,
                        "text": review.text[:QUOTE_MAX],
                        "label": label,
                        "score": round(float(message.get("score", 0.0)), 3),
                        "rating": review.rating,
                        "ts": review.ts,
                    }
                )
        return entry.item.item_id

    def category_of(self, item_id: str) -> str | None:
        entry = self._items.get(item_id)
        return entry.item.category if entry else None

    def card(self, item_id: str, now: float) -> dict[str, Any] | None:
        entry = self._items.get(item_id)
        if entry is None:
            return None
        it = entry.item
        return {
            "item_id": it.item_id,
            "title": it.title or it.item_id,
            "category": it.category,
            "price": it.price,
            "in_stock": it.in_stock,
            "positive_ratio": entry.positive_ratio,
            "reviews": entry.reviews,
            "alerting": entry.alert_ts is not None and now - entry.alert_ts < ALERT_SHOWN_S,
        }

    def title(self, item_id: str) -> str:
        """The item's title, its id when the shelf has none."""
        entry = self._items.get(item_id)
        return entry.item.title or item_id if entry is not None else item_id

    def details(self, item_id: str, now: float) -> dict[str, Any] | None:
        card = self.card(item_id, now)
        if card is None:
            return None
        entry = self._items[item_id]
        card["attributes"] = dict(entry.item.attributes or {})
        card["quotes"] = [q for label in ("positive", "negative") for q in reversed(entry.quotes[label])]
        return card

    def feed(self, user_id: str, recommendation: dict[str, Any], now: float) -> dict[str, Any]:
        """The page's view of a recommendation: in-stock cards with reasons, and interest chips."""
        strongest = [i["category"] for i in recommendation.get("interests", ())][:3]
        cards = []
        for rec_item in recommendation.get("items", ()):
            card = self.card(str(rec_item.get("item_id")), now)
            if card is None or not card["in_stock"]:
                continue
            card["reason"] = reason_of(rec_item.get("reasons") or (), card["category"], strongest, self.title)
            cards.append(card)
        return {
            "user_id": user_id,
            "cards": cards,
            "interests": recommendation.get("interests", []),
            "model_version": recommendation.get("model_version"),
            "trigger_event_id": recommendation.get("trigger_event_id"),
            "published_ts": recommendation.get("published_ts"),
        }


def reason_of(
    reasons: Iterable[str], category: str, strongest: Sequence[str], title_of: Callable[[str], str] = str
) -> dict[str, str]:
    """The card's reason: the first of the engine's ``reasons`` the page can phrase (``rule:<id>``
    as ``featured``; ``covisited:<item_id>`` with that recent item's ``title_of``; ``demoted:*`` and
    unknown ones skipped); for a recommendation without any (written before reasons existed),
    ``interest`` when the item's category is among the shopper's ``strongest`` interests, else
    ``popular`` in it."""
    for reason in reasons:
        name, _, arg = str(reason).partition(":")
        if name == "rule":
            return {"kind": "featured"}
        if name in ("interest", "popular_in") and arg:
            return {"kind": "interest" if name == "interest" else "popular", "category": arg}
        if name == "covisited" and arg:
            return {"kind": "covisited", "item": title_of(arg)}
        if not arg and name in _PLAIN_REASONS:
            return {"kind": _PLAIN_REASONS[name]}
    return {"kind": "interest" if category in strongest else "popular", "category": category}
