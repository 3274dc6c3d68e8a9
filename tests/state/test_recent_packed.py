import random

import msgpack

from state.codec import FORMAT
from state.user import ACTION_INDEX, ACTIONS, RECENT_MAX, RecentItem, UserState


def _plain(user: UserState) -> bytes:
    """What ``to_bytes`` stored before the recent items were packed once each: the whole list."""
    fields: list[object] = [
        user.counts,
        [[r.item_id, ACTION_INDEX[r.action], r.ts, r.category] for r in user.recent],
        user.interests.to_fields(),
        user.bought,
        user.reviews,
        user.last.to_fields() if user.last is not None else None,
        user.applied.to_fields(),
    ]
    if user.feedback:
        fields.append(user.feedback.to_fields())
    return bytes((FORMAT,)) + msgpack.packb(fields, use_bin_type=True)


def test_to_bytes_equals_packing_the_whole_state_through_clicks_and_other_changes() -> None:
    rng = random.Random(7)
    user = UserState()
    assert user.to_bytes() == _plain(user)
    for step in range(1000):
        roll = rng.random()
        if roll < 0.85:
            item = f"item-{rng.randrange(300)}" + ("é" * rng.randrange(3))
            ts, category = 1.8e9 + step * rng.random(), rng.choice(["", "c1", "c2"])
            user.apply_click(item, rng.choice(ACTIONS), ts, category, 3600.0)
        elif roll < 0.9:  # the list replaced with new items (a decoded or rebuilt state)
            user.recent = [RecentItem(r.item_id, r.action, r.ts, r.category) for r in user.recent]
        elif roll < 0.95 and user.recent:  # an item dropped from the middle, or the newest
            del user.recent[rng.randrange(len(user.recent))]
        else:
            user.recent = user.recent[rng.randrange(len(user.recent) + 1) :]
        if rng.random() < 0.1:
            user.feedback.dislike(f"item-{rng.randrange(300)}", 1.8e9 + step, [])
        if rng.random() < 0.5:  # else the next change comes on top of this one
            assert user.to_bytes() == _plain(user), step
        assert len(user.recent) <= RECENT_MAX
    assert UserState.from_bytes(user.to_bytes()) == user


def test_a_long_list_of_recent_items_packs_with_a_two_byte_header() -> None:
    user = UserState(recent=[RecentItem(f"i{n}", "view", 1.8e9 + n, "c") for n in range(RECENT_MAX)])
    assert user.to_bytes() == _plain(user)
    user.recent = user.recent[:15]
    assert user.to_bytes() == _plain(user)
