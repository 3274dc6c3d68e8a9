from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import HALF_LIFE, TINY

from model.examples import (
    Example,
    ExampleConfig,
    ExampleDecodeError,
    click_examples,
    encode_examples,
    review_example,
)
from model.retrieval import CovisIndex
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState


def _shop() -> tuple[UserState, Catalog, CovisIndex]:
    catalog = Catalog(HALF_LIFE, clock=lambda: 0.0)
    for i in range(30):
        item = ItemState()
        item.apply_activity({"click": float(i + 1)}, 100.0, HALF_LIFE, f"c{i % 3}")
        catalog.upsert(f"i{i}", item)
    user = UserState()
    for i, action in enumerate(("click", "buy", "click", "cart")):
        user.apply_click(f"i{i}", action, 100.0 + i, f"c{i % 3}", HALF_LIFE)
    return user, catalog, CovisIndex()


def test_click_examples_positive_then_admissible_negatives() -> None:
    user, catalog, index = _shop()
    before = user.to_bytes()
    out = click_examples(user, "i7", "cart", 200.0, "c1", catalog, np.random.default_rng(0),
                         index=index, config=ExampleConfig(TINY, HALF_LIFE))
    assert user.to_bytes() == before  # inputs are not mutated
    assert out[0].item_id == "i7" and out[0].engaged == 1.0 and out[0].weight == 4.0
    assert out[0].next_category == "c1"
    negatives = out[1:]
    assert len(negatives) == TINY.negatives
    assert all(e.engaged == 0.0 and e.next_category is None for e in negatives)
    assert "i1" not in {e.item_id for e in negatives}  # bought
    assert "i7" not in {e.item_id for e in negatives}


def test_click_examples_see_only_the_past() -> None:
    user, catalog, index = _shop()
    out = click_examples(user, "i7", "click", 200.0, "c1", catalog, np.random.default_rng(0),
                         index=index, config=ExampleConfig(TINY, HALF_LIFE))
    assert "i7" not in [h[0] for h in out[0].user.history]
    assert out[0].candidate[0] == 0.0  # not in the user's history yet


def test_review_label_from_rating_or_masked() -> None:
    assert review_example(None, "ok", 5, None, "i", "c").positive == 1
    assert review_example(None, "ok", 2, None, "i", "c").positive == 0
    assert review_example(None, "ok", 3, None, "i", "c").positive is None
    assert review_example(None, "ok", None, 1, "i", "c").rating is None


def test_example_bytes_round_trip_and_corruption(stream) -> None:
    for example in stream.examples[:50] + stream.examples[-5:]:
        data = example.to_bytes()
        assert Example.from_bytes(data) == example
        assert len(data) < 600
    with pytest.raises(ExampleDecodeError):
        Example.from_bytes(b"\x09garbage")
    with pytest.raises(ExampleDecodeError):
        Example.from_bytes(stream.examples[0].to_bytes()[:-7])


def test_encoded_masks_follow_labels(stream) -> None:
    clicks = [e for e in stream.examples if e.engaged is not None][:10]
    reviews = [e for e in stream.examples if e.positive is not None][:4]
    _, t = encode_examples(clicks + reviews, TINY)
    assert t["engaged_weight"][:10].all() and not t["engaged_weight"][10:].any()
    assert not t["positive_mask"][:10].any() and t["positive_mask"][10:].all()
    assert t["next_category_mask"][0] == 1.0 and not t["next_category_mask"][10:].any()


def test_a_click_retrieval_did_not_offer_labels_only_the_interest() -> None:
    """The ranker ranks the pool only: a clicked item retrieval missed would teach it that having
    no history, co-visitation or popularity is a good sign."""
    user, catalog, index = _shop()
    config = ExampleConfig(TINY, HALF_LIFE)
    [only] = click_examples(user, "new-item", "click", 200.0, "c2", catalog,
                            np.random.default_rng(0), index=index, config=config)
    assert only.engaged is None and only.next_category == "c2"
    _, t = encode_examples([only], TINY)
    assert t["engaged_weight"][0] == 0.0 and t["next_category_mask"][0] == 1.0
    everything = ExampleConfig(TINY, HALF_LIFE, retrieved_positives_only=False)
    out = click_examples(user, "new-item", "click", 200.0, "c2", catalog,
                         np.random.default_rng(0), index=index, config=everything)
    assert out[0].engaged == 1.0 and len(out) == 1 + TINY.negatives
