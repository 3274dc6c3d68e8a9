from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import HALF_LIFE, TINY

from model.covisitation import CovisIndex
from model.errors import ExampleDecodeError
from model.examples import (
    ExampleConfig,
    click_examples,
    encode_examples,
    pack_examples,
    packed_count,
    review_example,
    unpack_examples,
)
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
    return user, catalog, CovisIndex(ids=catalog.item_ids)


def test_click_examples_positive_then_admissible_negatives() -> None:
    user, catalog, index = _shop()
    before = user.to_bytes()
    out = click_examples(
        user,
        "i7",
        "cart",
        200.0,
        "c1",
        catalog,
        np.random.default_rng(0),
        index=index,
        config=ExampleConfig(TINY, HALF_LIFE),
    )
    assert user.to_bytes() == before  # inputs are not mutated
    assert out[0].item_id == "i7" and out[0].engaged == 1.0 and out[0].weight == 4.0
    assert out[0].next_category == "c1"
    negatives = out[1:]
    config = ExampleConfig(TINY, HALF_LIFE)
    assert TINY.negatives < len(negatives) <= TINY.negatives + config.catalog_negatives
    assert all(e.engaged == 0.0 and e.next_category is None for e in negatives)
    assert "i1" not in {e.item_id for e in negatives}  # bought
    assert "i7" not in {e.item_id for e in negatives}


def test_click_examples_see_only_the_past() -> None:
    user, catalog, index = _shop()
    out = click_examples(
        user,
        "i7",
        "click",
        200.0,
        "c1",
        catalog,
        np.random.default_rng(0),
        index=index,
        config=ExampleConfig(TINY, HALF_LIFE),
    )
    assert "i7" not in [h[0] for h in out[0].user.history]
    assert out[0].candidate[0] == 0.0  # not in the user's history yet


def test_review_label_from_rating_or_masked() -> None:
    assert review_example(None, "ok", 5, None, "i", "c").positive == 1
    assert review_example(None, "ok", 2, None, "i", "c").positive == 0
    assert review_example(None, "ok", 3, None, "i", "c").positive is None
    assert review_example(None, "ok", None, 1, "i", "c").rating is None


def test_examples_of_an_event_travel_as_one_record_and_corruption_is_refused(stream) -> None:
    for examples in (stream.examples[:9], stream.examples[-5:], stream.examples[:1], []):
        data = pack_examples(examples)
        assert unpack_examples(data) == examples and packed_count(data) == len(examples)
    # A click's examples share their user context: it travels once.
    user, catalog, index = _shop()
    click = click_examples(
        user,
        "i7",
        "cart",
        200.0,
        "c1",
        catalog,
        np.random.default_rng(0),
        index=index,
        config=ExampleConfig(TINY, HALF_LIFE),
    )
    together = len(pack_examples(click))
    apart = sum(len(pack_examples([e])) for e in click)
    assert len(click) > 3 and together < 0.7 * apart
    assert unpack_examples(pack_examples(click)) == click
    data = pack_examples(stream.examples[:9])
    for junk in (b"", b"\x09garbage", data[:-7], data[:1], bytes((data[0], 8)) + data[2:]):
        with pytest.raises(ExampleDecodeError):
            unpack_examples(junk)
    assert packed_count(b"\x09garbage") == 0


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
    [only] = click_examples(
        user, "new-item", "click", 200.0, "c2", catalog, np.random.default_rng(0), index=index, config=config
    )
    assert only.engaged is None and only.next_category == "c2"
    _, t = encode_examples([only], TINY)
    assert t["engaged_weight"][0] == 0.0 and t["next_category_mask"][0] == 1.0
    everything = ExampleConfig(TINY, HALF_LIFE, retrieved_positives_only=False)
    out = click_examples(
        user, "new-item", "click", 200.0, "c2", catalog, np.random.default_rng(0), index=index, config=everything
    )
    assert out[0].engaged == 1.0
    assert 1 + TINY.negatives < len(out) <= 1 + TINY.negatives + everything.catalog_negatives


def _big_shop(n: int = 500) -> tuple[UserState, Catalog, CovisIndex]:
    """A catalog much larger than the retrieval pool, most of it never clicked."""
    catalog = Catalog(HALF_LIFE, clock=lambda: 0.0)
    for i in range(n):
        item = ItemState()
        if i < 40:
            item.apply_activity({"click": float(i + 1)}, 100.0, HALF_LIFE, f"c{i % 7}")
        else:
            item.apply_catalog(f"c{i % 7}", f"thing {i}", None, True, 100.0)
        catalog.upsert(f"i{i}", item)
    user = UserState()
    for i in range(5):
        user.apply_click(f"i{i}", "click", 100.0 + i, f"c{i % 7}", HALF_LIFE)
    return user, catalog, CovisIndex(ids=catalog.item_ids)


def test_catalog_negatives_are_drawn_beyond_the_pool_with_retrieval_features() -> None:
    """Besides pool negatives, a click draws ``catalog_negatives`` items uniformly from the whole
    catalog; those retrieval did not offer get exactly the features retrieval gives an extra."""
    from model.retrieval import retrieve

    user, catalog, index = _big_shop()
    config = ExampleConfig(TINY, HALF_LIFE, catalog_negatives=4)
    interests = user.interest_weights(200.0, HALF_LIFE, TINY.interests)
    pool = retrieve(user, 200.0, catalog, index, interests, config.retrieval, extra=["i30"])
    out = click_examples(user, "i30", "click", 200.0, "c2", catalog, np.random.default_rng(3), config=config, pool=pool)
    assert out[0].engaged == 1.0
    negatives = out[1:]
    assert all(e.engaged == 0.0 and e.weight == 1.0 for e in negatives)
    beyond = [e for e in negatives[TINY.negatives :] if e.item_id not in pool.items]
    assert beyond, "uniform draws from a 500-item catalog should leave the pool"
    extra = [e.item_id for e in beyond]
    reference = retrieve(user, 200.0, catalog, index, interests, config.retrieval, extra=["i30", *extra])
    for e in beyond:
        i = reference.items.index(e.item_id)
        assert not reference.was_retrieved(i)
        assert e.candidate == tuple(reference.features[i].tolist())
        assert e.category == reference.categories[i]
    off = click_examples(
        user,
        "i30",
        "click",
        200.0,
        "c2",
        catalog,
        np.random.default_rng(3),
        config=ExampleConfig(TINY, HALF_LIFE, catalog_negatives=0),
        pool=pool,
    )
    assert len(off) == 1 + TINY.negatives and {e.item_id for e in off} <= set(pool.items)


def test_catalog_sample_is_uniform_and_follows_removals() -> None:
    _, catalog, _ = _big_shop(50)
    rng = np.random.default_rng(0)
    seen = [item for _ in range(400) for item in catalog.sample(5, rng)]
    assert set(seen) == {f"i{i}" for i in range(50)}
    for i in range(0, 50, 2):
        catalog.remove(f"i{i}")
    rest = {item for _ in range(200) for item in catalog.sample(5, rng)}
    assert rest == {f"i{i}" for i in range(1, 50, 2)}
    assert Catalog(HALF_LIFE).sample(3, rng) == []
