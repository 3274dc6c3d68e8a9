"""The shipped warm start: small, verified on load, and useful from the first event."""

from __future__ import annotations

from importlib import resources

from model.scoring import WARM_START, load_warm_start, serving_from_snapshot
from state.catalog import Catalog
from state.user import UserState


def test_warm_start_is_small_and_verifies() -> None:
    size = len(resources.files("model").joinpath(WARM_START).read_bytes())
    assert size <= 5_000_000
    snapshot = load_warm_start()
    assert snapshot.version > 0
    assert "data_sha256" in snapshot.extra and "command" in snapshot.extra


def test_warm_start_classifies_and_ranks_from_the_first_event() -> None:
    catalog = Catalog(3600.0, clock=lambda: 0.0)
    model = serving_from_snapshot(load_warm_start(), catalog, interest_half_life_s=3600.0)
    positive = ["质量很好，非常满意，推荐购买", "I love this dress, the fit is perfect"]  # noqa: RUF001
    negative = ["太差了，用了两天就坏了，退货", "Poor quality, it ripped after one wash"]  # noqa: RUF001
    scores = model.sentiment_many(positive + negative)
    assert min(scores[:2]) > 0.5 > max(scores[2:])
    user = UserState()
    for item in ("a", "b", "a"):
        model.observe_click(user, item, "click", 10.0, "shoes")
        user.apply_click(item, "click", 10.0, "shoes", 3600.0)
    rec = model.recommend_many([user], 20.0, 5)[0]
    assert {i for i, _ in rec.items} <= {"a", "b"}  # only what retrieval knows
    assert rec.interests[0][0] == "shoes"
