"""Published interests follow the user: in a shop whose category names the model never learned, a
user's own clicks decide the top interest, and a burst in another category moves it there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from model_fixtures import HALF_LIFE, TINY

from model.config import initial_weights
from model.examples import encode_examples
from model.features import category_bucket
from model.offline.commands import write_warm_start
from model.scoring import NeuralServingModel, load_warm_start, serving_from_snapshot
from model.snapshot import Snapshot
from model.training import Trainer
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState

SHOP = ("shoes", "bags", "books", "tea")  # the integration test's shop: names no training saw


def _shop_catalog() -> Catalog:
    catalog = Catalog(HALF_LIFE, clock=lambda: 0.0)
    for n in range(40):
        item = ItemState()
        item.apply_catalog(SHOP[n % 4], f"thing {n}", None, True, 1.0)
        catalog.upsert(f"rt-{n}", item)
    return catalog


def _top_interests_through_a_burst(model: NeuralServingModel) -> tuple[str, list[float]]:
    """Six clicks on shoes, then twelve on tea (as in the integration test): the top interest
    after the shoes, and tea's published weight after each tea click."""
    user, ts = UserState(), 1000.0
    for n in range(6):
        model.observe_click(user, f"rt-{4 * n}", "view", ts, "shoes")
        user.apply_click(f"rt-{4 * n}", "view", ts, "shoes", HALF_LIFE)
        ts += 4.0
    first = model.recommend_many([user], ts, 10)[0].interests
    tea: list[float] = []
    for n in range(12):
        item = f"rt-{4 * (n % 10) + 3}"
        model.observe_click(user, item, "view", ts, "tea")
        user.apply_click(item, "view", ts, "tea", HALF_LIFE)
        ts += 4.0
        interests = model.recommend_many([user], ts, 10)[0].interests
        tea.append(dict(interests).get("tea", 0.0))
        if n == 11:
            assert interests[0][0] == "tea", interests
    return first[0][0], tea


def _foreign_snapshot() -> Snapshot:
    """A model trained on another shop: every category bucket holds learnt rows, the bucket
    "books" hashes onto is a very popular category there, and the head has learnt to echo the
    user's own shares (interest/prior > 0)."""
    assert len({category_bucket(c, TINY) for c in SHOP}) == len(SHOP)
    weights = initial_weights(TINY, seed=0)
    rng = np.random.default_rng(0)
    table = rng.normal(0.0, 0.5, weights["category_table"].shape).astype(np.float32)
    table[:, TINY.dim] = -1.5  # the "never happens next" bias of buckets seen without labels
    table[category_bucket("books", TINY), TINY.dim] = 3.0
    weights["category_table"] = table
    weights["interest/prior"] = np.array([0.5, 1.5], np.float32)
    weights["interest/query/kernel"] = rng.normal(0.0, 0.3, weights["interest/query/kernel"].shape).astype(np.float32)
    return Snapshot(3, TINY, weights)


def test_warm_start_cut_follows_the_user_and_moves_with_a_burst(tmp_path: Path) -> None:
    path = tmp_path / "warm.sgs"
    write_warm_start(_foreign_snapshot(), path)
    cut = Snapshot.from_bytes(path.read_bytes())
    assert not np.any(cut.weights["category_table"][1:])  # other shops' category rows dropped
    np.testing.assert_allclose(cut.weights["interest/prior"], [0.5, 1.5])  # the multiplier stays
    model = serving_from_snapshot(cut, _shop_catalog(), interest_half_life_s=HALF_LIFE)
    top, tea = _top_interests_through_a_burst(model)
    assert top == "shoes"
    assert tea[-1] > tea[0] and tea == sorted(tea)


def test_unlearned_categories_rank_on_the_users_own_shares() -> None:
    """A live model that learned "books" (a strong category) but not yet shoes or tea: the
    unlearned ones take a typical learnt logit, and the user's shares decide."""
    snapshot = _foreign_snapshot()
    table = snapshot.weights["category_table"]
    for name in ("shoes", "bags", "tea"):
        table[category_bucket(name, TINY)] = 0.0
    model = serving_from_snapshot(snapshot, _shop_catalog(), interest_half_life_s=HALF_LIFE)
    top, tea = _top_interests_through_a_burst(model)
    assert top == "shoes"
    assert tea[-1] > tea[0] and tea == sorted(tea)


def test_training_leaves_buckets_it_never_saw_at_zero(stream) -> None:
    """So that "not learned" is a zero row, also for a category that appears in a live shop
    later: the interest softmax runs over learned or named buckets only."""
    trainer = Trainer(TINY, seed=0)
    trainer.learn_many(stream.examples)
    inputs, _ = encode_examples(stream.examples, TINY)
    named = set()
    for key in ("hist_cats", "interest_cats", "category", "label_category"):
        named |= set(np.unique(inputs[key]).tolist())
    table = trainer.export().weights["category_table"]
    learned = set(np.flatnonzero(np.any(table != 0, axis=1)).tolist())
    assert learned and learned <= named
    assert len(named) < TINY.category_buckets // 2  # most buckets were never seen


def test_shipped_warm_start_follows_the_user_in_a_new_shop() -> None:
    """The engine's case: the shipped warm start in a shop with categories it never saw."""
    model = serving_from_snapshot(load_warm_start(), _shop_catalog(), interest_half_life_s=HALF_LIFE)
    top, tea = _top_interests_through_a_burst(model)
    assert top == "shoes"
    assert tea[-1] > tea[0] and tea == sorted(tea)


def test_a_category_the_catalog_does_not_hold_yet_can_be_shown() -> None:
    """The head's columns are the catalog's categories and the batch's users' own: a click on an
    item of a category the catalog does not know (from the event) makes it a column of the batch,
    the top one of the user who clicked it; an item of no category adds none."""
    model = serving_from_snapshot(load_warm_start(), _shop_catalog(), interest_half_life_s=HALF_LIFE)
    user, other, ts = UserState(), UserState(), 1000.0
    for n in range(8):
        user.apply_click(f"new-{n}", "buy", ts + n, "hats", HALF_LIFE)
        other.apply_click(f"rt-{n}", "view", ts + n, "", HALF_LIFE)
    other.apply_click("rt-1", "view", ts + 8, "bags", HALF_LIFE)
    recs = model.recommend_many([other, user], ts + 9, 10)
    assert recs[1].interests[0][0] == "hats"
    assert recs[0].interests[0][0] == "bags" and "" not in dict(recs[0].interests)
