"""Per-item state: catalog facts, decayed popularity and review sentiment, bounded in size.

The item table is keyed by item id and fed by three item-keyed streams: the catalog, the activity
counts that click-processing workers send in batches, and reviews re-keyed by item. Every worker
follows the table's changelog to keep a read-only view of all items (``state.catalog``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from state.codec import decode, encode
from state.decay import DecayedWeights
from state.dedup import AppliedLog
from state.user import ACTION_WEIGHT

#: What a negative review can complain of, in a fixed order (an item keeps them as bits).
COMPLAINT_ASPECTS = ("size_fit", "quality", "shipping", "packaging", "service", "price", "not_as_described", "other")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """When an item's recent reviews turn negative enough to tell someone."""

    window: int = 20
    min_reviews: int = 5
    negative_ratio: float = 0.5
    jump: float = 0.25
    rearm_ratio: float = 0.3  # below this the item may alert again (hysteresis)


@dataclass(frozen=True, slots=True)
class SentimentFigures:
    positive_ratio: float
    reviews: int
    recent_negative_ratio: float
    recent_reviews: int
    baseline_negative_ratio: float  # over the reviews before the recent window
    mean_rating: float | None
    #: (aspect, count) of the complaint aspects among the recent negative reviews, in COMPLAINT_ASPECTS order.
    recent_aspects: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True)
class ItemState:
    category: str = ""
    title: str = ""
    price: float | None = None
    in_stock: bool = True
    catalog_ts: float = float("-inf")  # ts of the catalog record applied; -inf: none yet
    popularity: DecayedWeights = field(default_factory=DecayedWeights)  # action -> count
    reviews: int = 0
    positive: int = 0
    rating_sum: float = 0.0
    rating_n: int = 0
    # Oldest first: 1 a positive review, -mask a negative one (bit i: it complains of
    # COMPLAINT_ASPECTS[i]; 0: none known).
    recent: list[int] = field(default_factory=list)
    alerting: bool = False
    alert_trigger: str = ""  # the event id of the review that raised the last alert
    applied: AppliedLog = field(default_factory=AppliedLog)

    @property
    def in_catalog(self) -> bool:
        return self.catalog_ts != float("-inf")

    def apply_catalog(self, category: str, title: str, price: float | None, in_stock: bool, ts: float) -> bool:
        """Apply a catalog record unless an equally new or newer one was applied; True if applied."""
        if ts < self.catalog_ts:
            return False
        self.category, self.title, self.price, self.in_stock = category, title, price, in_stock
        self.catalog_ts = ts
        return True

    def apply_activity(self, counts: dict[str, float], ts: float, half_life_s: float, category: str = "") -> None:
        """Add click counts; ``category`` (from the clicks) fills in for items not in the catalog."""
        if category and not self.in_catalog:
            self.category = category
        for action, n in counts.items():
            self.popularity.add(action, n, ts, half_life_s)

    def popularity_score(self, now: float, half_life_s: float, weights: Mapping[str, float] = ACTION_WEIGHT) -> float:
        """Action-weighted decayed activity at ``now``."""
        return sum(weights[a] * n for a, n in self.popularity.at(now, half_life_s).items())

    def apply_review(
        self, positive: bool, rating: int | None, window: int, aspects: Sequence[str] = ()
    ) -> SentimentFigures:
        """Count a scored review; a negative one's complaint ``aspects`` are kept while it is recent."""
        self.reviews += 1
        self.positive += int(positive)
        if rating is not None:
            self.rating_sum += rating
            self.rating_n += 1
        mask = sum(1 << i for i, a in enumerate(COMPLAINT_ASPECTS) if a in aspects)
        self.recent.append(1 if positive else -mask)
        if len(self.recent) > window:
            del self.recent[: len(self.recent) - window]
        return self.figures()

    def figures(self) -> SentimentFigures:
        recent_n = len(self.recent)
        recent_neg = sum(1 for v in self.recent if v != 1)
        counts = [sum(1 for v in self.recent if v != 1 and -v & (1 << i)) for i in range(len(COMPLAINT_ASPECTS))]
        before_n = self.reviews - recent_n
        before_neg = (self.reviews - self.positive) - recent_neg
        return SentimentFigures(
            positive_ratio=self.positive / self.reviews if self.reviews else 0.0,
            reviews=self.reviews,
            recent_negative_ratio=recent_neg / recent_n if recent_n else 0.0,
            recent_reviews=recent_n,
            baseline_negative_ratio=before_neg / before_n if before_n > 0 else 0.0,
            mean_rating=self.rating_sum / self.rating_n if self.rating_n else None,
            recent_aspects=tuple((a, n) for a, n in zip(COMPLAINT_ASPECTS, counts, strict=True) if n),
        )

    def check_alert(self, rule: AlertRule) -> SentimentFigures | None:
        """The figures when the item has just entered the alert condition, else None.

        An alert fires once when the recent negative ratio crosses the threshold and sits at least
        ``jump`` above the item's earlier negative ratio; it re-arms only when the ratio falls
        well below the threshold (``rearm_ratio``), so a lasting problem, or reviews arriving
        interleaved around the threshold, is reported once, not on every review.
        """
        f = self.figures()
        bad = (
            f.recent_reviews >= rule.min_reviews
            and f.recent_negative_ratio >= rule.negative_ratio
            and f.recent_negative_ratio - f.baseline_negative_ratio >= rule.jump
        )
        if bad and not self.alerting:
            self.alerting = True
            return f
        if f.recent_negative_ratio < rule.rearm_ratio:
            self.alerting = False
        return None

    def to_bytes(self) -> bytes:
        return encode(
            [
                self.category,
                self.title,
                self.price,
                self.in_stock,
                None if not self.in_catalog else self.catalog_ts,
                self.popularity.to_fields(),
                [self.reviews, self.positive, self.rating_sum, self.rating_n],
                self.recent,
                self.alerting,
                self.applied.to_fields(),
                self.alert_trigger,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemState:
        fields = decode(data, "item")
        if len(fields) == 10:  # written before items remembered their last alert's trigger
            fields.append("")
        (category, title, price, in_stock, catalog_ts, popularity, counts, recent, alerting, applied, trigger) = fields
        reviews, positive, rating_sum, rating_n = counts
        return cls(
            category=category,
            title=title,
            price=price,
            in_stock=bool(in_stock),
            catalog_ts=float("-inf") if catalog_ts is None else float(catalog_ts),
            popularity=DecayedWeights.from_fields(popularity),
            reviews=int(reviews),
            positive=int(positive),
            rating_sum=float(rating_sum),
            rating_n=int(rating_n),
            recent=list(recent),
            alerting=bool(alerting),
            alert_trigger=str(trigger),
            applied=AppliedLog.from_fields(applied),
        )
