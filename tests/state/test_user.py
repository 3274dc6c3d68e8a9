import random

import numpy as np

from state.catalog import DenseIds
from state.decay import DecayedWeights
from state.user import BOUGHT_MAX, INTERESTS_MAX, RECENT_MAX, PublishedRecommendation, UserState

HL = 3600.0


def test_click_counts_recent_and_interest():
    s = UserState()
    s.apply_click("i1", "view", 1000.0, "shoes", HL)
    s.apply_click("i2", "buy", 1001.0, "bags", HL)
    assert s.action_counts() == {"view": 1, "click": 0, "cart": 0, "fav": 0, "buy": 1}
    assert [r.item_id for r in s.recent] == ["i1", "i2"]
    assert s.bought == ["i2"]
    weights = dict(s.interest_weights(1001.0, HL, 10))
    assert weights["bags"] > weights["shoes"]  # buy weighs more than view
    assert abs(sum(weights.values()) - 1.0) < 1e-9


def test_interests_move_toward_recent_clicks():
    s = UserState()
    for t in range(10):
        s.apply_click(f"a{t}", "view", 1000.0 + t, "shoes", HL)
    before = dict(s.interest_weights(1100.0, HL, 5))
    for t in range(3):
        s.apply_click(f"b{t}", "view", 1100.0 + t, "bags", HL)
    after = dict(s.interest_weights(1103.0, HL, 5))
    assert after["bags"] > before.get("bags", 0.0)
    assert after["shoes"] < before["shoes"]


def test_state_is_bounded_for_a_flooding_user():
    s = UserState()
    for n in range(5000):
        s.apply_click(f"i{n}", "buy", 1000.0 + n, f"c{n}", HL)
    assert len(s.recent) == RECENT_MAX
    assert len(s.bought) == BOUGHT_MAX
    assert len(s.interests.weights) <= INTERESTS_MAX
    assert sum(s.counts) == 5000
    assert len(s.to_bytes()) < 8000


def test_rebuying_keeps_one_entry():
    s = UserState()
    s.apply_click("i1", "buy", 1.0e9, "", HL)
    s.apply_click("i2", "buy", 1.0e9 + 1, "", HL)
    s.apply_click("i1", "buy", 1.0e9 + 2, "", HL)
    assert s.bought == ["i2", "i1"]


def test_out_of_order_click_weighs_less():
    a, b = UserState(), UserState()
    a.apply_click("x", "view", 2000.0, "shoes", HL)
    a.apply_click("y", "view", 2000.0 - HL, "bags", HL)  # an hour late
    b.apply_click("y", "view", 2000.0 - HL, "bags", HL)
    b.apply_click("x", "view", 2000.0, "shoes", HL)
    wa, wb = dict(a.interest_weights(2000.0, HL, 5)), dict(b.interest_weights(2000.0, HL, 5))
    assert abs(wa["bags"] - wb["bags"]) < 1e-9  # order of arrival does not matter
    assert wa["bags"] < wa["shoes"]


def test_round_trip_bytes():
    s = UserState()
    s.apply_click("i1", "cart", 1.7e9, "shoes", HL)
    s.apply_review()
    s.applied.record("clicks", (2, 41, 1_700_000_000_000), "e1")
    s.last = PublishedRecommendation([("i9", 0.5)], [("shoes", 1.0)], 3, "e1", 1.7e9, 1.7e9 + 0.01, [["viewed"]])
    t = UserState.from_bytes(s.to_bytes())
    assert t == s


def test_a_recommendation_stored_before_reasons_were_kept_reads_without_them():
    fields = PublishedRecommendation([("i9", 0.5)], [], 3, "e1", 1.7e9, 1.7e9).to_fields()
    assert PublishedRecommendation.from_fields(fields[:6]).reasons == []


def test_interest_shares_are_remembered_until_the_weights_change() -> None:
    s = UserState()
    s.apply_click("i1", "click", 100.0, "c1", 3600.0)
    first = s.interest_weights(200.0, 3600.0, 5)
    assert first == [("c1", 1.0)]
    assert s.interests.shares(200.0, 3600.0) is s.interests.shares(200.0, 3600.0)
    s.apply_click("i2", "buy", 150.0, "c2", 3600.0)
    shares = dict(s.interest_weights(200.0, 3600.0, 5))
    assert shares.keys() == {"c1", "c2"} and shares["c2"] > shares["c1"]
    assert abs(sum(shares.values()) - 1.0) < 1e-12
    assert s.interest_weights(200.0, 3600.0, 1) == [("c2", shares["c2"])]
    weights = s.interests.at(900.0, 3600.0)
    assert s.interest_weights(900.0, 3600.0, 5) == [
        (c, w / sum(weights.values())) for c, w in sorted(weights.items(), key=lambda kv: -kv[1])
    ]


def test_the_strongest_interests_and_their_arrays_are_kept_until_the_interests_change() -> None:
    s = UserState()
    for n in range(6):
        s.apply_click(f"i{n}", "click", 100.0 + n, f"c{n}", 3600.0)
    top = s.interest_weights(200.0, 3600.0, 3)
    assert top is s.interest_weights(200.0, 3600.0, 3) and top == s.interests.shares(200.0, 3600.0)[:3]
    assert s.interest_weights(200.0, 3600.0, 9) is s.interests.shares(200.0, 3600.0)
    ids = DenseIds(["", "c4"])
    cats, shares = s.interest_arrays(top, ids)
    assert cats.dtype == np.int32 and shares.dtype == np.float64
    assert [ids.names[i] for i in cats.tolist()] == [c for c, _ in top] and shares.tolist() == [w for _, w in top]
    assert s.interest_arrays(top, ids)[0] is cats
    other = s.interest_weights(300.0, 3600.0, 3)
    assert other is not top and s.interest_arrays(other, ids)[0] is not cats
    s.apply_click("i9", "buy", 250.0, "c9", 3600.0)
    changed = s.interest_weights(300.0, 3600.0, 3)
    assert changed is not other and changed[0][0] == "c9"
    assert s.interest_arrays(changed, ids)[0].tolist()[0] == ids["c9"]


def test_interest_shares_are_the_decayed_weights_over_their_sum_strongest_first_ties_in_order() -> None:
    rng = random.Random(5)
    for n in range(300):
        weights = DecayedWeights()
        for _ in range(rng.randrange(30)):
            amount = rng.choice([1.0, 2.0, 5.0, rng.random(), 1e-300])  # ties, and sums that underflow
            weights.add(f"c{rng.randrange(12)}", amount, 1000.0 + rng.randrange(50) * 60.0, 3600.0)
        now = 1000.0 + rng.random() * 1e5
        decayed = weights.at(now, 3600.0)
        total = sum(decayed.values())
        ranked = [] if total <= 0.0 else sorted(decayed.items(), key=lambda kv: kv[1], reverse=True)
        expected = [(c, w / total) for c, w in ranked]
        for _ in range(4):  # the first n of them, any n asked in any order, remembered or not
            if rng.random() < 0.3:
                assert weights.shares(now, 3600.0) == expected, n
            else:
                k = rng.randrange(-2, 15)
                assert weights.strongest(now, 3600.0, k) == expected[:k], (n, k)
                assert weights.strongest(now, 3600.0, k) is weights.strongest(now, 3600.0, k)
