"""Helpers for the model's tests: a tiny config and a synthetic click/review stream, so the suite
needs neither ../shared/data nor more than a few seconds of TensorFlow."""

from __future__ import annotations

import numpy as np

from model.config import initial_weights
from model.covisitation import CovisIndex
from model.doubles import tiny_config
from model.examples import Example, ExampleConfig, click_examples, review_example
from model.scoring import NeuralServingModel, serving_from_snapshot
from model.snapshot import Snapshot
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState

#: The one tiny config of the model's tests: ``model.doubles.tiny_config()``, as other suites use.
TINY = tiny_config()
HALF_LIFE = 3600.0
REVIEWS = [  # "\uff0c" is the full-width comma of Chinese text
    ("这个东西很好用\uff0c非常满意", 5, 1),
    ("质量太差了\uff0c很失望", 1, 0),
    ("great fit, love it", 5, 1),
    ("terrible fabric, returned it", 1, 0),
    ("物流很快\uff0c不错", 4, 1),
    ("not good, too small", 2, 0),
]


class Stream:
    """Users, a catalog and a co-visitation index fed by a seeded random click stream."""

    def __init__(self, seed: int = 0, events: int = 400) -> None:
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.catalog = Catalog(HALF_LIFE, clock=lambda: self.now)
        self.index = CovisIndex(max_items=1000, ids=self.catalog.item_ids)
        self.users: dict[str, UserState] = {}
        self.items: dict[str, ItemState] = {}
        self.examples: list[Example] = []
        self.config = ExampleConfig(TINY, HALF_LIFE)
        for i in range(events):
            self.click(
                f"u{self.rng.integers(30)}",
                f"i{self.rng.integers(120)}",
                ("view", "click", "cart", "fav", "buy")[self.rng.integers(5)],
                1000.0 + i,
            )
        for n, (text, rating, label) in enumerate(REVIEWS * 10):
            self.examples.append(review_example(None, text, rating, label, f"i{n % 7}", "c1"))

    def click(self, user_id: str, item_id: str, action: str, ts: float) -> None:
        self.now = ts
        category = f"c{int(item_id[1:]) % 9}"
        user = self.users.setdefault(user_id, UserState())
        self.examples += click_examples(
            user, item_id, action, ts, category, self.catalog, self.rng, index=self.index, config=self.config
        )
        self.index.observe(user, item_id)
        user.apply_click(item_id, action, ts, category, HALF_LIFE)
        item = self.items.setdefault(item_id, ItemState())
        item.apply_activity({action: 1.0}, ts, HALF_LIFE, category)
        self.catalog.upsert(item_id, item)


def random_serving(stream: Stream, seed: int, version: int) -> NeuralServingModel:
    """A serving model over ``stream``'s catalog and index whose embedding tables are random
    (an untrained model's are near zero and would rank every candidate alike)."""
    weights = initial_weights(TINY, seed=seed)
    rng = np.random.default_rng(seed)
    for name in ("item_table", "category_table", "text_table"):
        weights[name] = rng.normal(0, 0.5, weights[name].shape).astype(np.float32)
    return serving_from_snapshot(
        Snapshot(version, TINY, weights), stream.catalog, interest_half_life_s=HALF_LIFE, index=stream.index
    )
