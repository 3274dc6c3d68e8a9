"""A shopper's negative feedback: dislikes with their neighbours, impressions without an action,
what they demote and when, their bounds, and the state's encoding with and without them."""

from __future__ import annotations

import pytest

from state.codec import encode
from state.feedback import DISLIKED_MAX, IMPRESSIONS_MAX, NEIGHBOURS_MAX, Feedback
from state.user import ACTION_WEIGHT, UserState, action_weights

DAY = 86_400.0


def test_a_disliked_item_is_removed_and_its_neighbours_demoted_until_the_ttl() -> None:
    f = Feedback()
    f.dislike("a", 1000.0, ["b", "a", "c", "b"])
    assert f.demotions(1000.0 + DAY, 7 * DAY, 3) == ({"a"}, {"b": "disliked", "c": "disliked"})
    assert f.demotions(1000.0 + 7 * DAY, 7 * DAY, 3) == ({"a"}, {})


def test_an_item_shown_up_to_the_limit_without_an_action_is_ignored_and_an_action_resets_it() -> None:
    f = Feedback()
    for _ in range(2):
        f.show(["x", "y", "x"])  # a repeat within one impression counts once
    assert f.shown == {"x": 2, "y": 2}
    assert f.demotions(0.0, DAY, 3) == (set(), {})
    f.show(["x", "y"])
    assert f.demotions(0.0, DAY, 3) == (set(), {"x": "ignored", "y": "ignored"})
    assert f.demotions(0.0, DAY, 0) == (set(), {})  # limit 0: impressions never demote
    f.acted("x")
    assert f.demotions(0.0, DAY, 3) == (set(), {"y": "ignored"})
    user = UserState(feedback=f)
    user.apply_click("y", "view", 10.0, "c", 3600.0)
    assert not user.feedback


def test_a_dislike_wins_over_the_impressions_of_its_item() -> None:
    f = Feedback()
    for _ in range(3):
        f.show(["a", "b"])
    f.dislike("a", 0.0, [])
    f.dislike("z", 0.0, ["b", "a"])
    removed, demoted = f.demotions(1.0, DAY, 3)
    assert removed == {"a", "z"} and demoted == {"b": "disliked"}


def test_feedback_is_bounded() -> None:
    f = Feedback()
    for n in range(DISLIKED_MAX + 5):
        f.dislike(f"d{n}", float(n), [f"n{n}-{k}" for k in range(NEIGHBOURS_MAX + 5)])
    f.dislike("d10", 999.0, [])  # renewed: the newest, once
    assert len(f.disliked) == DISLIKED_MAX and f.disliked[-1].item_id == "d10"
    assert [d.item_id for d in f.disliked].count("d10") == 1
    assert all(len(d.neighbours) <= NEIGHBOURS_MAX for d in f.disliked)
    for n in range(IMPRESSIONS_MAX + 50):
        f.show([f"s{n}"])
    f.show(["s60"])
    assert len(f.shown) == IMPRESSIONS_MAX and "s0" not in f.shown and list(f.shown)[-1] == "s60"


def test_a_state_without_feedback_encodes_as_before_and_old_states_decode() -> None:
    user = UserState()
    user.apply_click("i1", "buy", 100.0, "c", 3600.0)
    old_layout = encode(
        [
            user.counts,
            [[r.item_id, 4, r.ts, r.category] for r in user.recent],
            user.interests.to_fields(),
            user.bought,
            user.reviews,
            None,
            user.applied.to_fields(),
        ]
    )
    assert user.to_bytes() == old_layout
    assert not UserState.from_bytes(old_layout).feedback
    user.feedback.dislike("i2", 100.0, ["i3"])
    user.feedback.show(["i4"])
    back = UserState.from_bytes(user.to_bytes())
    assert back.feedback == user.feedback and back.counts == user.counts


def test_action_weights_parse_and_refuse() -> None:
    assert action_weights("") == ACTION_WEIGHT
    assert action_weights(" view=0.5 , buy=10") == {**ACTION_WEIGHT, "view": 0.5, "buy": 10.0}
    for bad in ("view", "like=2", "view=0", "view=-1", "view=nan", "view=x", "view=1,view=2", "buy=1e9"):
        with pytest.raises(ValueError):
            action_weights(bad)
    user = UserState()
    user.apply_click("i1", "view", 100.0, "c", 3600.0, action_weights("view=7"))
    assert user.interests.at(100.0, 3600.0) == {"c": 7.0}
