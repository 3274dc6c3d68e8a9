from __future__ import annotations

import math

import numpy as np
from model_fixtures import HALF_LIFE, TINY

from model.config import N_COUNTS
from model.features import (
    HISTORY_DECAY,
    IdBuckets,
    UserContext,
    bucket,
    encode_texts,
    encode_users,
    text_features,
    tokens,
    user_context,
)
from state.user import ACTION_WEIGHT, ACTIONS, UserState


def test_bucket_is_stable_bounded_and_reserves_zero() -> None:
    assert bucket("", 64) == 0
    ids = {bucket(f"item-{i}", 64) for i in range(500)}
    assert min(ids) >= 1 and max(ids) <= 63
    assert bucket("abc", 1 << 17) == bucket("abc", 1 << 17)


def test_id_buckets_remember_at_most_kept_ids_and_agree_with_bucket() -> None:
    cache = IdBuckets(64, kept=10)
    ids = [f"item-{i}" for i in range(25)]
    assert [cache[i] for i in ids] == [bucket(i, 64) for i in ids]
    assert 0 < len(cache) <= 10
    assert cache[""] == 0


def test_tokens_split_chinese_characters_and_english_words() -> None:
    assert tokens("很好用 Great FIT!") == ["很", "好", "用", "great", "fit", "!"]


def test_text_features_are_l2_normalised_and_bounded() -> None:
    ids, w = text_features("good good good bad " * 50, TINY)
    assert len(ids) <= TINY.text_features and ids.dtype == np.int32
    assert abs(float(np.sum(w * w)) - 1.0) < 1e-5
    x = encode_texts(["", "很好"], TINY)
    assert x["text_ids"].shape == (2, TINY.text_features)
    assert not x["text_weights"][0].any() and x["text_weights"][1].any()


def test_user_encoding_shapes_and_history_weights_sum_to_one() -> None:
    user = UserState()
    for i in range(10):
        user.apply_click(f"i{i}", "click", 100.0 + i, f"c{i % 3}", HALF_LIFE)
    x = encode_users([user_context(user, 200.0, TINY, HALF_LIFE), user_context(UserState(), 0, TINY, HALF_LIFE)], TINY)
    assert x["hist_items"].shape == (2, TINY.history)
    assert x["interest_cats"].shape == (2, TINY.interests)
    assert np.isclose(x["hist_weights"][0].sum(), 1.0)
    assert x["hist_weights"][1].sum() == 0.0
    # newest first: the most recent item carries the largest weight
    assert x["hist_weights"][0][0] == x["hist_weights"][0].max()


def test_encode_users_fills_each_row_as_a_loop_over_its_entries_would() -> None:
    rng = np.random.default_rng(3)
    contexts = [UserContext.empty()]
    for n in range(1, 12):
        history = [(f"i{rng.integers(50)}", int(rng.integers(len(ACTIONS))), f"c{rng.integers(9)}") for _ in range(n)]
        interests = [(f"c{j}", float(rng.random())) for j in range(n % (TINY.interests + 3))]
        contexts.append(UserContext(history, interests, [int(c) for c in rng.integers(0, 90, N_COUNTS)]))
    x = encode_users(contexts, TINY)
    r, k = TINY.history, TINY.interests
    for i, u in enumerate(contexts):
        weights = np.zeros(r, np.float32)
        for j, (item_id, action, category) in enumerate(u.history[:r]):
            assert x["hist_items"][i, j] == bucket(item_id, TINY.item_buckets)
            assert x["hist_cats"][i, j] == bucket(category, TINY.category_buckets)
            weights[j] = ACTION_WEIGHT[ACTIONS[action]] / 5.0 * HISTORY_DECAY**j
        assert not x["hist_items"][i, len(u.history[:r]) :].any()
        total = weights.sum()
        expected = weights / total if total > 0 else weights
        assert x["hist_weights"][i].tobytes() == expected.astype(np.float32).tobytes()
        shares = np.zeros(k, np.float32)
        for j, (category, share) in enumerate(u.interests[:k]):
            assert x["interest_cats"][i, j] == bucket(category, TINY.category_buckets)
            shares[j] = share
        assert x["interest_weights"][i].tobytes() == shares.tobytes()
        assert x["counts"][i].tolist() == [np.float32(math.log1p(c)) for c in u.counts]
    assert encode_users([], TINY)["hist_items"].shape == (0, r)
