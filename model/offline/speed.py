"""Speed of the model path, as benchmarks (figures to read, not timed tests): scoring, whole
recommendations, training throughput, and the cost of shipping a snapshot (export, encode, decode,
build the serving model). Uses the default config and synthetic data, so it needs no data set."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from model.candidate_features import N_CANDIDATE_FEATURES
from model.config import ModelConfig
from model.covisitation import CovisIndex
from model.examples import Example, ExampleConfig, click_examples, review_example
from model.retrieval import CandidatePool
from model.scoring import serving_from_snapshot
from model.snapshot import Snapshot
from model.training import Trainer
from state.catalog import Catalog
from state.decay import INTEREST_HALF_LIFE_S, POPULARITY_HALF_LIFE_S
from state.item import ItemState
from state.user import ACTIONS, UserState


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def snapshot_costs(snapshot: Snapshot, repeat: int = 5) -> dict[str, dict[str, float]]:
    """Size, ``to_bytes`` and ``from_bytes`` (checksum, shapes, finiteness) of a serving snapshot
    in each stored dtype, and what a worker pays to store a snapshot it received."""
    snapshot = snapshot.without_optimizer()
    out: dict[str, dict[str, float]] = {}
    for dtype in ("float32", "float16", "bfloat16"):
        blob = snapshot.to_bytes(dtype=dtype)
        received = Snapshot.from_bytes(blob)
        out[dtype] = {
            "bytes": len(blob),
            "encode_ms": _median_ms(functools.partial(snapshot.to_bytes, dtype=dtype), repeat),
            "decode_verify_ms": _median_ms(functools.partial(Snapshot.from_bytes, blob), repeat),
            "store_received_encode_ms": _median_ms(received.to_bytes, repeat),
        }
    return out


def synthetic_stream(
    rng: np.random.Generator, users: int, items: int, events: int, every: int = 3
) -> tuple[list[Example], Catalog, CovisIndex, list[UserState], float]:
    """Training examples from a Zipf-distributed click stream (every ``every``-th click learnt
    from) and 2,000 reviews; the catalog, index and users it leaves, and its last event time."""
    now = [0.0]
    catalog = Catalog(POPULARITY_HALF_LIFE_S, clock=lambda: now[0])
    index = CovisIndex(ids=catalog.item_ids)
    states = [UserState() for _ in range(users)]
    ex_config = ExampleConfig(ModelConfig(), INTEREST_HALF_LIFE_S)
    examples: list[Example] = []
    item_states: dict[str, ItemState] = {}
    zipf = np.minimum(rng.zipf(1.3, size=events), items) - 1
    for t in range(events):
        u = states[int(rng.integers(users))]
        item = f"item-{zipf[t]}"
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        category = f"cat-{zipf[t] % 500}"
        now[0] = float(t)
        if t % every == 0:
            examples += click_examples(u, item, action, float(t), category, catalog, rng, index=index, config=ex_config)
        index.observe(u, item)
        u.apply_click(item, action, float(t), category, INTEREST_HALF_LIFE_S)
        state = item_states.setdefault(item, ItemState())
        state.apply_activity({action: 1.0}, float(t), POPULARITY_HALF_LIFE_S, category)
        catalog.upsert(item, state)
    examples += [review_example(None, "质量很好 非常满意 great quality", 5, None, "i", "c")] * 2000
    return examples, catalog, index, states, now[0]


def run(seed: int = 0, users: int = 2000, items: int = 100_000, events: int = 30_000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    config = ModelConfig()
    examples, catalog, index, states, last = synthetic_stream(rng, users, items, events)

    trainer = Trainer(config, seed=seed)
    trainer.learn_many(examples[:512])  # compile
    t0 = time.perf_counter()
    trainer.learn_many(examples)
    throughput = len(examples) / (time.perf_counter() - t0)

    out: dict[str, Any] = {"training_examples_per_s": throughput, "batch_size": config.batch_size}
    out["export_ms"] = _median_ms(trainer.export, 5)
    snapshot = trainer.export()
    out["snapshot"] = snapshot_costs(snapshot)
    out["serving_from_snapshot_ms"] = _median_ms(
        lambda: serving_from_snapshot(snapshot, catalog, interest_half_life_s=INTEREST_HALF_LIFE_S, index=index), 20
    )

    serving = serving_from_snapshot(snapshot, catalog, interest_half_life_s=INTEREST_HALF_LIFE_S, index=index)
    active = [u for u in states if u.recent]
    z, _ = serving.net.towers(serving.user_inputs(active[:1], last))
    pool = CandidatePool(
        [f"item-{i}" for i in rng.choice(items, 500, replace=False)],
        [f"cat-{i}" for i in range(500)],
        rng.random((500, N_CANDIDATE_FEATURES), dtype=np.float32),
    )
    out["score_500_candidates_ms"] = _median_ms(lambda: serving.rank(z["recommend"][0], pool), 200)
    batch = active[:256]
    out["recommend_many_256_users_ms"] = _median_ms(lambda: serving.recommend_many(batch, last, 10), 5)
    out["recommend_per_user_ms"] = out["recommend_many_256_users_ms"] / len(batch)
    out["retrieval_pool_size_mean"] = float(np.mean([len(serving.pool(u, last).items) for u in batch]))
    texts = ["质量很好 非常满意", "terrible fabric, returned it"] * 128
    out["sentiment_many_256_ms"] = _median_ms(lambda: serving.sentiment_many(texts), 5)
    out["catalog_items"] = len(catalog)
    return out
