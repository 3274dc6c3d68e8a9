"""The demo's sample: a small shop generated from a seed, so the repository ships no third-party data.

A catalog of items in a dozen categories with skewed popularity (a few out of stock), shoppers who
each favour two or three categories and mostly view, sometimes cart and buy, and reviews in Chinese
and English written from phrase lists, positive or negative. The same seed gives the same events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streams.events import Click, Item, Review

CATEGORIES = (
    "dresses",
    "shoes",
    "bags",
    "phones",
    "laptops",
    "books",
    "tea",
    "skincare",
    "toys",
    "kitchen",
    "sports",
    "jewelry",
)
ACTION_MIX = (("view", 0.62), ("click", 0.2), ("fav", 0.06), ("cart", 0.08), ("buy", 0.04))

_EN_POS = (
    "Love it",
    "Great quality",
    "Fits perfectly",
    "Exactly as described",
    "Very comfortable",
    "Beautiful colour",
    "Fast delivery",
    "Worth every penny",
    "Highly recommend",
)
_EN_NEG = (
    "Terrible quality",
    "Broke after two days",
    "Much smaller than pictured",
    "Arrived damaged",
    "Cheap material",
    "Not worth the money",
    "Very disappointed",
    "Returned it immediately",
)
_EN_TAIL = (
    "my sister agrees.",
    "will buy again.",
    "for the price.",
    "after a week of use.",
    "as a gift.",
    "compared to the photos.",
)
_ZH_POS = ("质量很好", "非常满意", "物流很快", "性价比高", "做工精致", "颜色很漂亮", "穿着很舒服", "值得购买")
_ZH_NEG = ("质量太差", "非常失望", "物流太慢", "做工粗糙", "和图片不一样", "用了两天就坏了", "不值这个价", "客服态度差")
_ZH_TAIL = ("下次还会再来。", "推荐给朋友了。", "包装也不错。", "就这样吧。", "不会再买了。", "给个评价。")


@dataclass(frozen=True)
class Sample:
    items: list[Item]
    clicks: list[Click]
    reviews: list[Review]
    invalid: list[tuple[str, bytes]]  # (kind, payload) that the engine must dead-letter


def review_text(rng: random.Random, positive: bool, chinese: bool) -> str:
    if chinese:
        phrases = rng.sample(_ZH_POS if positive else _ZH_NEG, 2)
        return "，".join(phrases) + "，" + rng.choice(_ZH_TAIL)
    phrases = rng.sample(_EN_POS if positive else _EN_NEG, 2)
    return f"{phrases[0]}! {phrases[1]}, {rng.choice(_EN_TAIL)}"


def generate(events: int = 2000, seed: int = 7, start_ts: float = 1.7e9) -> Sample:
    """About 88% clicks, 10% reviews, and 3 invalid messages among ``events``."""
    rng = random.Random(seed)
    n_items, n_users = 300, 200
    items = []
    for i in range(n_items):
        category = CATEGORIES[i % len(CATEGORIES)]
        items.append(
            Item(
                item_id=f"item-{i:04d}",
                category=category,
                title=f"{category[:-1].title()} #{i}",
                price=round(rng.uniform(5, 500), 2),
                in_stock=rng.random() > 0.05,
                ts=start_ts,
            )
        )
    # Popularity follows a power law within each category.
    weights = [1.0 / (1 + (i // len(CATEGORIES))) ** 1.1 for i in range(n_items)]
    by_category: dict[str, list[int]] = {c: [] for c in CATEGORIES}
    for i, item in enumerate(items):
        by_category[item.category].append(i)
    favourites = {u: rng.sample(CATEGORIES, rng.randint(2, 3)) for u in range(n_users)}
    n_invalid = 3
    n_reviews = max(1, (events - n_invalid) // 10)
    n_clicks = events - n_invalid - n_reviews
    clicks, reviews = [], []
    ts = start_ts
    actions = [a for a, _ in ACTION_MIX]
    action_w = [w for _, w in ACTION_MIX]
    for n in range(n_clicks):
        ts += rng.uniform(0.0, 0.5)
        user = int(rng.paretovariate(1.2)) % n_users
        category = rng.choice(favourites[user]) if rng.random() < 0.85 else rng.choice(CATEGORIES)
        pool = by_category[category]
        idx = rng.choices(pool, weights=[weights[i] for i in pool])[0]
        clicks.append(
            Click(
                event_id=f"c-{seed}-{n}",
                user_id=f"user-{user:03d}",
                item_id=items[idx].item_id,
                action=rng.choices(actions, weights=action_w)[0],
                ts=ts,
                category=category,
            )
        )
    for n in range(n_reviews):
        positive = rng.random() < 0.7
        chinese = n % 3 == 0
        rating = (rng.choice((4, 5)) if positive else rng.choice((1, 2))) if not chinese else None
        reviews.append(
            Review(
                event_id=f"r-{seed}-{n}",
                user_id=f"user-{rng.randrange(n_users):03d}",
                item_id=items[rng.randrange(n_items)].item_id,
                text=review_text(rng, positive, chinese),
                ts=start_ts + rng.uniform(0, max(ts - start_ts, 1.0)),
                rating=rating,
            )
        )
    invalid = [
        (
            "clicks",
            b'{"event_id": "bad-1", "user_id": "user-001", "item_id": "item-0001", '
            b'"action": "teleport", "ts": 1800000000}',
        ),
        ("clicks", b"301780,543546,4181361,pv,15"),
        ("reviews", b'{"event_id": "bad-3", "item_id": "item-0002", "text": "no user", "ts": 1800000000}'),
    ][:n_invalid]
    return Sample(items, clicks, reviews, invalid)
