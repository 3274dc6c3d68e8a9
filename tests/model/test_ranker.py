"""What the ranker learns from its negatives: an item with nothing going for it (no history, no
co-visitation, no category interest, no popularity) is an unlikely click, so it does not outrank
the user's own recent items of the category they are clicking through, even in a fresh catalog
where every item has no popularity yet.

This trains the tiny model on a synthetic shop, where the behaviour holds with or without the
catalog-wide negatives (``ExampleConfig.catalog_negatives``); the full-size behaviour is guarded
on the shipped warm start (``test_warm_start.py``) and end to end
(``tests/integration/test_realtime.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import HALF_LIFE, TINY

from model.covisitation import CovisIndex
from model.examples import ExampleConfig, click_examples
from model.scoring import serving_from_snapshot
from model.training import Trainer
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState

CATEGORIES = [f"k{c}" for c in range(8)]


def _train(catalog_negatives: int, seed: int = 0) -> Trainer:
    """A shop of 400 items in 8 categories, each in the catalog from its first click (as in the
    replays the warm start learns from, so every catalog item has some popularity); each user
    sticks to a favourite category, comes back to their own items, and clicks that category's
    popular items; the ranker learns on the stream."""
    rng = np.random.default_rng(seed)
    now = [0.0]
    catalog = Catalog(HALF_LIFE, clock=lambda: now[0])
    items = {f"s{i}": ItemState() for i in range(400)}  # in the catalog once clicked
    index = CovisIndex(max_items=1000, ids=catalog.item_ids)
    config = ExampleConfig(TINY, HALF_LIFE, catalog_negatives=catalog_negatives)
    users = {u: UserState() for u in range(40)}
    favourite = {u: int(rng.integers(8)) for u in users}
    examples = []
    for t in range(1500):
        ts = now[0] = 1000.0 + t
        u = int(rng.integers(40))
        user = users[u]
        own = [r.item_id for r in user.recent]
        if own and rng.random() < 0.5:
            item_id = own[int(rng.integers(len(own)))]
        elif rng.random() < 0.9:  # the favourite category's 10 most clicked items
            item_id = f"s{favourite[u] + 8 * int(rng.integers(10))}"
        else:
            item_id = f"s{int(rng.integers(400))}"
        category = CATEGORIES[int(item_id[1:]) % 8]
        examples += click_examples(user, item_id, "click", ts, category, catalog, rng, index=index, config=config)
        index.observe(user, item_id)
        user.apply_click(item_id, "click", ts, category, HALF_LIFE)
        items[item_id].apply_activity({"click": 1.0}, ts, HALF_LIFE, category)
        catalog.upsert(item_id, items[item_id])
    trainer = Trainer(TINY, seed=seed)
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(len(examples))
        trainer.learn_many([examples[i] for i in order])
    return trainer


def _burst_scores(trainer: Trainer) -> tuple[list[float], list[float]]:
    """A fresh 40-item catalog (no popularity), 6 clicks in "shoes" then 12 in "tea": scores of
    the user's own tea items and of the never-clicked books and bags items."""
    names = ("shoes", "bags", "books", "tea")
    catalog = Catalog(HALF_LIFE, refresh_s=0.0, clock=lambda: 0.0)
    for n in range(40):
        item = ItemState()
        item.apply_catalog(names[n % 4], f"thing {n}", None, True, 0.0)
        catalog.upsert(f"rt-{n}", item)
    model = serving_from_snapshot(trainer.export(), catalog, interest_half_life_s=HALF_LIFE)
    user = UserState()
    for i, n in enumerate([4 * k for k in range(6)] + [4 * (k % 10) + 3 for k in range(12)]):
        model.observe_click(user, f"rt-{n}", "view", 10.0 + i, names[n % 4])
        user.apply_click(f"rt-{n}", "view", 10.0 + i, names[n % 4], HALF_LIFE)
    z, _ = model.net.towers(model.user_inputs([user], 30.0))
    scores = dict(model.rank(z["recommend"][0], model.pool(user, 30.0)))
    own_tea = [scores[f"rt-{4 * k + 3}"] for k in range(10)]
    unrelated = [scores[f"rt-{n}"] for n in range(40) if n % 4 in (1, 2)]
    return own_tea, unrelated


@pytest.fixture(scope="module")
def trained() -> Trainer:
    return _train(ExampleConfig().catalog_negatives)


def test_own_items_of_the_burst_category_outrank_items_with_nothing_going_for_them(
    trained,
) -> None:
    own_tea, unrelated = _burst_scores(trained)
    assert min(own_tea) > max(unrelated), (own_tea, unrelated)
