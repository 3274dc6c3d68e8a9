"""Training examples built from the stream, from state at event time only.

A worker builds examples when it handles an event (it holds the user's state *before* the event and
its retrieval index), sends them over Kafka (:func:`pack_examples`, one record per event), and the
trainer learns from them. One example may carry labels for several tasks; a missing label masks its
task, so one batch mixes clicks and reviews.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgpack
import numpy as np

from model.candidate_features import N_CANDIDATE_FEATURES
from model.config import N_COUNTS, ModelConfig
from model.covisitation import CovisIndex
from model.errors import ExampleDecodeError
from model.features import (
    UserContext,
    category_bucket,
    encode_texts,
    encode_users,
    item_bucket,
    user_context,
)
from model.retrieval import CandidatePool, RetrievalConfig, retrieve
from state.catalog import Catalog
from state.decay import INTEREST_HALF_LIFE_S
from state.user import ACTION_WEIGHT, UserState

#: Version byte of a record of examples (1: one example per record, no longer read).
FORMAT = 2
_CANDIDATE = struct.Struct(f"<{N_CANDIDATE_FEATURES}f")
#: A record's example count is its second byte (an event yields at most 1 + negatives examples).
MAX_PACKED = 255


@dataclass(frozen=True, slots=True)
class Example:
    """One row of a training batch. ``None`` labels are masked."""

    user: UserContext
    item_id: str = ""  # the candidate (clicks) or the reviewed item (reviews)
    category: str = ""
    candidate: tuple[float, ...] = field(default=(0.0,) * N_CANDIDATE_FEATURES)
    engaged: float | None = None  # recommend: 1 positive, 0 sampled negative
    weight: float = 1.0  # recommend: action weight of a positive (negatives: 1)
    next_category: str | None = None  # interest: the category the user turned to
    text: str = ""
    positive: int | None = None  # sentiment
    rating: float | None = None  # 1..5


def pack_examples(examples: Sequence[Example]) -> bytes:
    """The examples of one event as one record. They share the user's context (a click's positive
    and negatives, built from the same state), which is most of an example's bytes: sent once per
    event instead of once per example, a click's examples take less than half the bytes and a
    fraction of the time to pack and unpack."""
    contexts: dict[int, int] = {}  # id(context) -> its index in ``users``
    users: list[list[object]] = []
    rows: list[list[object]] = []
    for e in examples:
        index = contexts.get(id(e.user))
        if index is None:
            index = contexts[id(e.user)] = len(users)
            u = e.user
            users.append([u.history, u.interests, u.counts])  # msgpack writes tuples as arrays, like lists
        rows.append(
            _packed_row(
                index,
                e.item_id,
                e.category,
                _CANDIDATE.pack(*e.candidate),
                e.engaged,
                e.weight,
                e.next_category,
                e.text,
                e.positive,
                e.rating,
            )
        )
    return _record(users, rows)


def _packed_row(
    user: int,
    item_id: str,
    category: str,
    candidate: bytes,
    engaged: float | None,
    weight: float = 1.0,
    next_category: str | None = None,
    text: str = "",
    positive: int | None = None,
    rating: float | None = None,
) -> list[object]:
    """An example as a record holds it (``user``: its context's index in the record)."""
    return [user, item_id, category, candidate, engaged, weight, next_category, text, positive, rating]


def _record(users: list[list[object]], rows: list[list[object]]) -> bytes:
    if len(rows) > MAX_PACKED:
        raise ValueError(f"at most {MAX_PACKED} examples per record, not {len(rows)}")
    return bytes((FORMAT, len(rows))) + msgpack.packb([users, rows], use_bin_type=True)


def packed_count(data: bytes) -> int:
    """How many examples a :func:`pack_examples` record holds, without decoding it (the worker
    that runs the trainer counts what it drops)."""
    return data[1] if len(data) > 1 and data[0] == FORMAT else 0


def unpack_examples(data: bytes) -> list[Example]:
    """The examples of a :func:`pack_examples` record; raises :class:`ExampleDecodeError` for
    anything else (the training topic is a public topic like any other)."""
    if len(data) < 2 or data[0] != FORMAT:
        raise ExampleDecodeError(f"unknown example format byte {data[:1]!r}")
    try:
        users, rows = msgpack.unpackb(data[2:], raw=False)
        contexts = [
            UserContext(
                [(str(i), int(a), str(c)) for i, a, c in history],
                [(str(c), float(w)) for c, w in interests],
                [int(c) for c in counts],
            )
            for history, interests, counts in users
        ]
        examples = [
            Example(
                contexts[index],
                item_id,
                category,
                _CANDIDATE.unpack(cand),
                engaged,
                float(weight),
                next_category,
                text,
                positive,
                rating,
            )
            for index, item_id, category, cand, engaged, weight, next_category, text, positive, rating in rows
        ]
    except (ValueError, TypeError, IndexError, struct.error, msgpack.UnpackException) as exc:
        raise ExampleDecodeError(f"corrupt examples: {exc}") from None
    if any(len(c.counts) != N_COUNTS for c in contexts) or len(examples) != data[1]:
        raise ExampleDecodeError("examples with the wrong number of features, or not as many as announced")
    return examples


@dataclass(frozen=True, slots=True)
class ExampleConfig:
    """How examples are built: the same values must be used by the serving model's features."""

    model: ModelConfig = field(default_factory=ModelConfig)
    interest_half_life_s: float = INTEREST_HALF_LIFE_S
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    #: Label the ranker only with clicks whose item retrieval had offered (and their negatives).
    #: The ranker only ever ranks the pool; a clicked item retrieval missed looks like "no
    #: history, no co-visitation, not popular" and would teach it that those are bad signs.
    #: Such a click still labels the interest task.
    retrieved_positives_only: bool = True
    #: Negatives per labelled click drawn uniformly from the whole catalog, besides the
    #: ``model.negatives`` drawn from the retrieval pool. Pool negatives alone never show the
    #: ranker an item with nothing going for it (no history, co-visitation, interest or
    #: popularity): such rows are rare in a pool but make up a fresh shop's catalog, and the
    #: ranker, never told, scored them near 1. These rows teach it that an unrelated, unknown
    #: item is an unlikely click. Their features come from the same retrieval feature function.
    catalog_negatives: int = 2


def click_examples(
    user_before: UserState,
    item_id: str,
    action: str,
    ts: float,
    category: str,
    catalog: Catalog,
    rng: np.random.Generator,
    *,
    index: CovisIndex | None = None,
    config: ExampleConfig | None = None,
    pool: CandidatePool | None = None,
) -> list[Example]:
    """The clicked item as a positive (weighted by action: buy > cart > fav > click > view),
    ``negatives`` items sampled from the candidates retrieval offered the user just before the
    click, so the ranker learns to rank what it will be asked to rank, and
    ``ExampleConfig.catalog_negatives`` items drawn uniformly from the whole catalog (featured
    as retrieval would feature them), so it also learns that an item with nothing going for it
    is unlikely. The positive also labels
    the interest task with the click's category. A click on an item retrieval did not offer
    labels only the interest task (``ExampleConfig.retrieved_positives_only``).

    ``pool`` is the retrieval done for this user at ``ts`` if the caller already has it (it must
    have been built with ``extra=[item_id]``); otherwise it is computed here.
    """
    d = _ClickDraw.of(user_before, item_id, action, ts, category, catalog, rng, index, config, pool)
    rows = d.rows.tolist()
    out = [Example(d.context, item_id, d.categories[0], tuple(rows[0]), d.engaged, d.weight, d.next_category)]
    out += [
        Example(d.context, item, cat, tuple(row), 0.0)
        for item, cat, row in zip(d.items[1:], d.categories[1:], rows[1:], strict=True)
    ]
    return out


def click_record(
    user_before: UserState,
    item_id: str,
    action: str,
    ts: float,
    category: str,
    catalog: Catalog,
    rng: np.random.Generator,
    *,
    index: CovisIndex | None = None,
    config: ExampleConfig | None = None,
    pool: CandidatePool | None = None,
) -> bytes:
    """``pack_examples(click_examples(...))``, the same bytes and draws, packed from the draw's
    arrays without building an :class:`Example` per row (what a worker sends per click)."""
    d = _ClickDraw.of(user_before, item_id, action, ts, category, catalog, rng, index, config, pool)
    u = d.context
    candidates = np.ascontiguousarray(d.rows, "<f4").tobytes()
    size = _CANDIDATE.size
    rows = [_packed_row(0, item_id, d.categories[0], candidates[:size], d.engaged, d.weight, d.next_category)]
    rows += [
        _packed_row(0, item, cat, candidates[n * size : (n + 1) * size], 0.0)
        for n, (item, cat) in enumerate(zip(d.items, d.categories, strict=True))
        if n
    ]
    return _record([[u.history, u.interests, u.counts]], rows)


@dataclass(frozen=True, slots=True)
class _ClickDraw:
    """What a click's examples are made of: the user's context, the positive then the negatives
    (items, categories, feature rows), and the positive's labels."""

    context: UserContext
    items: list[str]
    categories: list[str]
    rows: np.ndarray  # [len(items), N_CANDIDATE_FEATURES], float32
    engaged: float | None
    weight: float
    next_category: str | None

    @staticmethod
    def of(
        user_before: UserState,
        item_id: str,
        action: str,
        ts: float,
        category: str,
        catalog: Catalog,
        rng: np.random.Generator,
        index: CovisIndex | None,
        config: ExampleConfig | None,
        pool: CandidatePool | None,
    ) -> _ClickDraw:
        """The draw of :func:`click_examples`."""
        config = config or ExampleConfig()
        mc = config.model
        if pool is None:
            interests = user_before.interest_weights(ts, config.interest_half_life_s, mc.interests)
            index = index or CovisIndex(ids=catalog.item_ids)
            pool = retrieve(user_before, ts, catalog, index, interests, config.retrieval, extra=[item_id])
        context = user_context(user_before, ts, mc, config.interest_half_life_s)
        pos_i = pool.position(item_id)
        if config.retrieved_positives_only and not pool.was_retrieved(pos_i):
            rows = pool.rows([pos_i])
            return _ClickDraw(context, [item_id], [category or pool.category(pos_i)], rows, None, 1.0, category or None)
        excluded = {*user_before.bought, item_id}  # negatives are neither bought nor the positive
        negatives: list[int] = []
        eligible = pool.eligible(catalog, excluded)
        if eligible:
            picks = rng.choice(len(eligible), size=min(mc.negatives, len(eligible)), replace=False)
            negatives += [eligible[p] for p in sorted(picks.tolist())]
        drawn: list[str] = []
        if config.catalog_negatives > 0:
            drawn = [
                item
                for item in catalog.sample(config.catalog_negatives, rng)
                if item not in excluded and catalog.available(item)
            ]
        # Only the rows used: a pool has hundreds of candidates, an example a handful.
        items, categories, rows = pool.picked([pos_i, *negatives], drawn)
        categories[0] = category or categories[0]
        return _ClickDraw(context, items, categories, rows, 1.0, ACTION_WEIGHT[action], category or None)


def review_example(
    user_before: UserState | None,
    text: str,
    rating: float | None,
    label: int | None,
    item_id: str,
    category: str,
    *,
    ts: float = 0.0,
    config: ExampleConfig | None = None,
) -> Example:
    """A review: sentiment from ``label``, or, when there is none, from the rating (>= 4
    positive, <= 2 negative, 3 masked); the rating task learns the rating when there is one."""
    config = config or ExampleConfig()
    if label is None and rating is not None and rating != 3:
        label = int(rating >= 4)
    context = (
        UserContext.empty()
        if user_before is None
        else user_context(user_before, ts, config.model, config.interest_half_life_s)
    )
    return Example(
        context, item_id, category, text=text, positive=label, rating=None if rating is None else float(rating)
    )


def encode_examples(
    examples: Sequence[Example], config: ModelConfig
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Network inputs and (targets, masks) for a batch of examples."""
    inputs = encode_users([e.user for e in examples], config)
    inputs |= encode_texts([e.text for e in examples], config)
    inputs["item"] = np.array([item_bucket(e.item_id, config) for e in examples], np.int32)
    inputs["category"] = np.array([category_bucket(e.category, config) for e in examples], np.int32)
    inputs["candidate_features"] = np.array([e.candidate for e in examples], np.float32).reshape(
        len(examples), N_CANDIDATE_FEATURES
    )
    next_cat = np.array([category_bucket(e.next_category or "", config) for e in examples], np.int32)
    # Not a feature: the interest softmax runs over the categories learned so far plus those the
    # batch names, so a category's first label must be among them (model.network).
    inputs["label_category"] = next_cat
    targets = {
        "engaged": np.array([e.engaged or 0.0 for e in examples], np.float32),
        "engaged_weight": np.array([0.0 if e.engaged is None else e.weight for e in examples], np.float32),
        "next_category": next_cat,
        "next_category_mask": (next_cat > 0).astype(np.float32),
        "positive": np.array([e.positive or 0 for e in examples], np.float32),
        "positive_mask": np.array([e.positive is not None for e in examples], np.float32),
        "rating": np.array([e.rating or 3.0 for e in examples], np.float32),
        "rating_mask": np.array([e.rating is not None for e in examples], np.float32),
    }
    return inputs, targets
