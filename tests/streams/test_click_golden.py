"""The click path's golden outputs: 6,400 events of a simulated shop (new and returning shoppers,
buys, out-of-stock items, reviews) through the engine's click and review processors, in process.

Any change to the click path (retrieval, features, ranking, interests, training examples, state
updates) that changes what is published fails here. A faster implementation must reproduce these
digests as they are; a deliberate change to the model's behaviour records new ones, with its effect
on quality measured (``shopguide evaluate recommend``) and stated in its commit.
"""

from streams.bench.clickpath import OUT_OF_STOCK, as_batches, build_replay, shop_events
from streams.bench.shop import SimulatedShop
from streams.events import Click

GOLDEN = {
    "recommendations": "b12198cd8c6e62ceafe6b1e6652987330ca7391a50b6a7cca66aa8e7c382235c",
    "examples": "560a0f824d239b33e58d336f0c38f810a26bddd6794f4eb1e374bc1186293058",
    "published": 6096,
    "example_records": 290,
    "score_sum": 39564.484,
    "interest_sum": 1273.892,
}


def test_the_click_path_publishes_the_golden_outputs() -> None:
    shop = SimulatedShop(1500, 3000, seed=7)
    events = shop_events(shop, 6400)
    clicks = [e for e in events if isinstance(e, Click)]
    # What the replay covers: returning shoppers, buys, out-of-stock items and reviews.
    assert len(clicks) >= 6000 and len(clicks) < len(events)
    assert len({c.user_id for c in clicks}) < len(clicks) / 3
    assert sum(c.action == "buy" for c in clicks) > 100
    assert sum(int(c.item_id[1:]) % OUT_OF_STOCK == 0 for c in clicks) > 100

    replay = build_replay(shop, digest=True)
    for batch in as_batches(events):
        replay.feed(batch)
    assert replay.digest is not None
    got = replay.digest.summary()
    assert abs(got.pop("score_sum") - GOLDEN["score_sum"]) < 0.01
    assert abs(got.pop("interest_sum") - GOLDEN["interest_sum"]) < 0.01
    assert got == {k: v for k, v in GOLDEN.items() if not k.endswith("_sum")}, got
