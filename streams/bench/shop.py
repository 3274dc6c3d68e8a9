"""A simulated shop for the benchmarks: N users and M items with the skew of real traffic.

Real e-commerce streams are heavily skewed: a few shoppers and a few items account for most events,
and a shopper mostly browses a couple of categories. Growth figures only mean something under that
skew (a uniform stream would defeat every cache and every "top items" list), so users and items are
drawn from bounded Zipf laws, and each user keeps to two favourite categories most of the time. The
same seed gives the same events, whatever process draws them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

from state.user import PublishedRecommendation, UserState
from streams.events import Click, Item, Review
from streams.tools.sample import ACTION_MIX, review_text

#: Zipf exponents: users are less skewed than items (many shoppers come once or twice).
USER_SKEW = 0.9
ITEM_SKEW = 1.1
#: Items per category: the Taobao excerpt has 75,385 items in 3,757 categories (about 20).
ITEMS_PER_CATEGORY = 20
#: Share of clicks within one of the user's two favourite categories.
FAVOURITE_SHARE = 0.8
_CHUNK = 4096


class Zipf:
    """Ranks 0..n-1 with P(rank r) proportional to 1/(r+1)^s, drawn by inverting the CDF."""

    def __init__(self, n: int, s: float) -> None:
        weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
        self._cdf = np.cumsum(weights)
        self._cdf /= self._cdf[-1]

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self._cdf, rng.random(size)), len(self._cdf) - 1)


class SimulatedShop:
    def __init__(self, users: int, items: int, seed: int = 0, review_share: float = 0.05) -> None:
        if users < 1 or items < 1:
            raise ValueError("a shop needs at least one user and one item")
        self.users = users
        self.items = items
        self.categories = max(1, items // ITEMS_PER_CATEGORY)
        self.review_share = review_share
        self._seed = seed
        self._users = Zipf(users, USER_SKEW)
        self._global = Zipf(items, ITEM_SKEW)
        self._in_category = Zipf(-(-items // self.categories), ITEM_SKEW)
        self._actions = [a for a, _ in ACTION_MIX]
        weights = np.array([w for _, w in ACTION_MIX])
        self._action_p = weights / weights.sum()

    @staticmethod
    def user_id(rank: int) -> str:
        return f"u{rank}"

    @staticmethod
    def item_id(index: int) -> str:
        return f"i{index}"

    def category(self, index: int) -> str:
        return f"c{index % self.categories}"

    def catalog(self, ts: float) -> Iterator[Item]:
        """One catalog record per item; item ``i`` is in category ``i % categories``, so that the
        popular (low) indexes spread over every category."""
        rng = random.Random(self._seed)
        for i in range(self.items):
            yield Item(self.item_id(i), self.category(i), f"Item {i}", round(rng.uniform(5, 500), 2), True, ts)

    def _favourite(self, user: np.ndarray, which: np.ndarray) -> np.ndarray:
        # Two fixed favourite categories per user, from a multiplicative hash of its rank.
        return (user * 2654435761 + which * 40503) % (2**32) % self.categories

    def _items_for(self, rng: np.random.Generator, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An item and an action for each user of ``users``."""
        size = len(users)
        local = self._favourite(users, rng.integers(0, 2, size)) + self._in_category.draw(rng, size) * self.categories
        fav = (rng.random(size) < FAVOURITE_SHARE) & (local < self.items)
        items = np.where(fav, local, self._global.draw(rng, size))
        return items, rng.choice(len(self._actions), size=size, p=self._action_p)

    def events(self, tag: str, clock: Iterator[float]) -> Iterator[Click | Review]:
        """An endless stream of clicks and (``review_share`` of the time) reviews; event ids are
        ``{tag}-{n}`` so that a run's outputs can be told from another's. ``clock`` gives each
        event's ``ts`` (``time.time`` for live load)."""
        rng = np.random.default_rng(self._seed)
        texts = random.Random(self._seed)
        n = 0
        while True:
            users = self._users.draw(rng, _CHUNK)
            items, actions = self._items_for(rng, users)
            reviews = rng.random(_CHUNK) < self.review_share
            for u, i, a, is_review in zip(
                users.tolist(), items.tolist(), actions.tolist(), reviews.tolist(), strict=True
            ):
                ts = next(clock)
                event_id = f"{tag}-{n}"
                n += 1
                if is_review:
                    positive = texts.random() < 0.7
                    yield Review(
                        event_id,
                        self.user_id(u),
                        self.item_id(i),
                        review_text(texts, positive, texts.random() < 0.3),
                        ts,
                    )
                else:
                    yield Click(event_id, self.user_id(u), self.item_id(i), self._actions[a], ts, self.category(i))

    def user_states(
        self, ts: float, half_life_s: float, top_k: int, clicks_per_user: int = 3, variants: int = 4096
    ) -> Iterator[tuple[bytes, bytes]]:
        """(user id, state bytes) for every user, as the users table's changelog holds them.

        Each state is ``clicks_per_user`` clicks drawn from the shop's skew (folded in by the
        engine's own update rule) and one published recommendation of ``top_k`` items: what a
        worker holds for a shopper after a short visit. Building a million states one by one takes
        minutes, so ``variants`` states are built and shared round-robin: sizes and contents have
        the distribution of real ones, without the link between a user's rank and its favourites.
        """
        rng = np.random.default_rng(self._seed + 1)
        n = min(variants, self.users)
        items, actions = self._items_for(rng, np.repeat(np.arange(n), clicks_per_user))
        values = []
        for v in range(n):
            state = UserState()
            for k in range(v * clicks_per_user, (v + 1) * clicks_per_user):
                item = int(items[k])
                state.apply_click(self.item_id(item), self._actions[actions[k]], ts, self.category(item), half_life_s)
            first = v % self.categories
            shown = [(self.item_id(i), 1.0 / (1 + r)) for r, i in enumerate(range(first, self.items, self.categories))]
            state.last = PublishedRecommendation(
                shown[:top_k], state.interest_weights(ts, half_life_s, 5), 0, f"seed-{v}", ts, ts
            )
            values.append(state.to_bytes())
        for rank in range(self.users):
            yield self.user_id(rank).encode(), values[rank % n]
