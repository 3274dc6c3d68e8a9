"""Turning text and user state into the network's fixed-shape numeric inputs.

Everything is hashed into bounded bucket spaces with a stable hash (CRC-32; Python's ``hash`` is
salted per process), so there is no vocabulary to download, build or ship, and memory does not grow
with the catalog or the language. Text works for Chinese and English alike: every CJK character is
a token, every Latin word is a token, and the features are token unigrams and bigrams, i.e. the
character 1-2 grams of Chinese and the word 1-2 grams of English that the TF-IDF baselines use.

Training (``model.training``) and numpy serving (``model.scoring``) both encode through these
functions, so the two cannot disagree on an input.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from model.config import ACTION_CODES, N_COUNTS, ModelConfig
from state.user import ACTION_INDEX, ACTION_WEIGHT, ACTIONS, UserState

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\s]")
#: How much each older history position counts relative to the next newer one.
HISTORY_DECAY = 0.85


def bucket(value: str, buckets: int) -> int:
    """A stable bucket in ``1 .. buckets-1`` (0 means padding/unknown; "" maps there)."""
    if not value:
        return 0
    return 1 + zlib.crc32(value.encode("utf-8")) % (buckets - 1)


class IdBuckets(dict[str, int]):
    """:func:`bucket` of item or category ids, remembered: they recur on every event, and ranking
    maps hundreds of candidates per recommendation, for which ``map(buckets.__getitem__, ids)``
    is one dict lookup each instead of a Python call and a CRC. Bounded: emptied when it reaches
    ``kept`` ids (about 10 MB). Text n-grams do not go through it, so they cannot crowd out ids."""

    def __init__(self, buckets: int, kept: int = 1 << 16) -> None:
        super().__init__()
        self.buckets, self.kept = buckets, kept

    def __missing__(self, value: str) -> int:
        if len(self) >= self.kept:
            self.clear()
        b = self[value] = bucket(value, self.buckets)
        return b


_ID_BUCKETS: dict[int, IdBuckets] = {}


def id_buckets(buckets: int) -> IdBuckets:
    """The shared :class:`IdBuckets` for this number of buckets."""
    found = _ID_BUCKETS.get(buckets)
    return found if found is not None else _ID_BUCKETS.setdefault(buckets, IdBuckets(buckets))


def item_bucket(item_id: str, config: ModelConfig) -> int:
    return id_buckets(config.item_buckets)[item_id]


def category_bucket(category: str, config: ModelConfig) -> int:
    return id_buckets(config.category_buckets)[category]


def tokens(text: str) -> list[str]:
    """Latin words and single non-space characters (each CJK character, each punctuation mark)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def text_features(text: str, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hashed unigram and bigram ids with sublinear-tf, L2-normalised weights (what TF-IDF does,
    the IDF being learnt by the per-bucket weights). At most ``config.text_features``, the first
    ones in reading order."""
    toks = tokens(text)
    counts: dict[int, int] = {}
    n = config.text_buckets
    grams = [f"1{t}" for t in toks] + [f"2{a} {b}" for a, b in pairwise(toks)]
    for gram in grams:
        b = bucket(gram, n)
        if b in counts:
            counts[b] += 1
        elif len(counts) < config.text_features:
            counts[b] = 1
    ids = np.fromiter(counts.keys(), dtype=np.int32, count=len(counts))
    weights = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
    norm = float(np.sqrt(np.sum(weights * weights)))
    return ids, (weights / norm if norm > 0 else weights).astype(np.float32)


@dataclass(frozen=True, slots=True)
class UserContext:
    """What the network sees of a user at one moment, before hashing (compact to send)."""

    history: list[tuple[str, int, str]]  # (item_id, action index, category), newest first
    interests: list[tuple[str, float]]  # (category, share), strongest first
    counts: list[int]  # one per action, then reviews

    @classmethod
    def empty(cls) -> UserContext:
        return cls([], [], [0] * N_COUNTS)


def user_context(user: UserState, now: float, config: ModelConfig, interest_half_life_s: float) -> UserContext:
    """The user as of ``now``, from state only (nothing after ``now`` can leak in)."""
    history = [(r.item_id, ACTION_INDEX[r.action], r.category) for r in reversed(user.recent[-config.history :])]
    interests = user.interest_weights(now, interest_half_life_s, config.interests)
    return UserContext(history, interests, [*user.counts, user.reviews])


@dataclass(frozen=True, slots=True)
class UserRows:
    """A batch of users' inputs before padding, each part flat in row order: every user's
    history (at most ``ModelConfig.history`` items, newest first) as item and category buckets and
    its actions' :data:`ACTION_WEIGHT`, its interests (at most ``ModelConfig.interests``) as
    category buckets and shares, and its counts (one per action, then reviews)."""

    history_lengths: np.ndarray  # int64, one per user
    history_items: np.ndarray  # int32
    history_cats: np.ndarray  # int32
    history_actions: np.ndarray  # float64
    interest_lengths: np.ndarray  # int64, one per user
    interest_cats: np.ndarray  # int32
    interest_shares: np.ndarray  # float64
    counts: list[int]  # N_COUNTS per user


def encode_users(users: Sequence[UserContext], config: ModelConfig) -> dict[str, np.ndarray]:
    """:func:`encode_rows` of these users' contexts."""
    b, r, k = len(users), config.history, config.interests
    items, cats = id_buckets(config.item_buckets), id_buckets(config.category_buckets)
    histories = [u.history[:r] for u in users]
    interests = [u.interests[:k] for u in users]
    n_hist = sum(map(len, histories))
    n_int = sum(map(len, interests))
    rows = UserRows(
        np.fromiter(map(len, histories), np.int64, b),
        np.fromiter((items[item_id] for h in histories for item_id, _, _ in h), np.int32, n_hist),
        np.fromiter((cats[category] for h in histories for _, _, category in h), np.int32, n_hist),
        np.fromiter((_ACTION_WEIGHTS[action] for h in histories for _, action, _ in h), np.float64, n_hist),
        np.fromiter(map(len, interests), np.int64, b),
        np.fromiter((cats[category] for i in interests for category, _ in i), np.int32, n_int),
        np.fromiter((share for i in interests for _, share in i), np.float64, n_int),
        [c for u in users for c in u.counts[:N_COUNTS]],
    )
    return encode_rows(rows, config)


def encode_rows(rows: UserRows, config: ModelConfig) -> dict[str, np.ndarray]:
    """Padded arrays for the user side of the network. History weights favour strong, recent
    actions (an action's weight over the strongest one's, decayed by ``HISTORY_DECAY`` per
    position) and sum to 1 (0 for an empty history), so the pooled vector is an average; with
    ``history_attention``, each history item's action is also given as its code (1 to 5; 0 pads).
    Each array is filled in one assignment of the batch's values in row order."""
    b, r, k = len(rows.history_lengths), config.history, config.interests
    filled = np.arange(r) < rows.history_lengths[:, None]
    hist_items = np.zeros((b, r), np.int32)
    hist_cats = np.zeros((b, r), np.int32)
    hist_w = np.zeros((b, r), np.float32)
    hist_items[filled] = rows.history_items
    hist_cats[filled] = rows.history_cats
    starts = np.cumsum(rows.history_lengths) - rows.history_lengths
    position = np.arange(len(rows.history_actions)) - np.repeat(starts, rows.history_lengths)
    hist_w[filled] = rows.history_actions / 5.0 * _history_decay(r)[position]
    chosen = np.arange(k) < rows.interest_lengths[:, None]
    int_cats = np.zeros((b, k), np.int32)
    int_w = np.zeros((b, k), np.float32)
    int_cats[chosen] = rows.interest_cats
    int_w[chosen] = rows.interest_shares
    counts = np.fromiter(map(math.log1p, rows.counts), np.float64, len(rows.counts))
    total = hist_w.sum(axis=1, keepdims=True)
    hist_w = np.divide(hist_w, total, out=np.zeros_like(hist_w), where=total > 0)
    out = {
        "hist_items": hist_items,
        "hist_cats": hist_cats,
        "hist_weights": hist_w,
        "interest_cats": int_cats,
        "interest_weights": int_w,
        "counts": counts.astype(np.float32).reshape(b, N_COUNTS),
    }
    if config.history_attention:
        out["hist_actions"] = np.zeros((b, r), np.int32)
        out["hist_actions"][filled] = rows.history_actions
    return out


#: Each action's weight by action index. The weights are the integers 1 to 5, so a history's
#: weights are also its actions' codes (:data:`model.config.ACTION_CODES`).
_ACTION_WEIGHTS = [ACTION_WEIGHT[a] for a in ACTIONS]
if sorted(_ACTION_WEIGHTS) != list(range(1, ACTION_CODES)):
    raise ValueError(f"the model codes actions by their weights 1..{ACTION_CODES - 1}: {ACTION_WEIGHT}")


@functools.cache
def _history_decay(positions: int) -> np.ndarray:
    """``HISTORY_DECAY ** j`` for each history position ``j`` (0 the newest)."""
    return np.array([HISTORY_DECAY**j for j in range(positions)])


def encode_texts(texts: Sequence[str], config: ModelConfig) -> dict[str, np.ndarray]:
    """Padded hashed text features (weight 0 on padding); empty strings give all-zero rows."""
    ids = np.zeros((len(texts), config.text_features), np.int32)
    weights = np.zeros((len(texts), config.text_features), np.float32)
    for i, text in enumerate(texts):
        if text:
            t_ids, t_w = text_features(text, config)
            ids[i, : len(t_ids)] = t_ids
            weights[i, : len(t_w)] = t_w
    return {"text_ids": ids, "text_weights": weights}
