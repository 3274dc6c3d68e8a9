"""Online sentiment on a shop whose reviews are 3% negative: the trainer child learns a stream of
reviews as the engine feeds it (packed example records), and the snapshot it publishes must still
find the unhappy reviews. Learning unweighted and labelling at 0.5 (the rule before class weights
and a trained threshold) finds none of them on this stream: every review was called positive."""

from __future__ import annotations

import time

import numpy as np

from model.config import ModelConfig, initial_weights
from model.examples import Example, pack_examples
from model.features import UserContext
from model.scoring import NeuralServingModel
from model.snapshot import Snapshot
from state.catalog import Catalog
from streams.learning.trainer_process import TrainerProcess, TrainerReport

CONFIG = ModelConfig(item_buckets=64, category_buckets=16, text_buckets=1 << 12)
HAPPY = ["love", "great", "perfect", "comfortable", "beautiful", "soft", "flattering", "gorgeous", "cute", "happy"]
UNHAPPY = ["returned", "cheap", "tore", "disappointed", "itchy", "awful", "broke", "refund", "scratchy", "sadly"]
FILLER = [
    "dress",
    "size",
    "color",
    "fabric",
    "ordered",
    "wear",
    "fit",
    "the",
    "it",
    "was",
    "and",
    "my",
    "for",
    "this",
    "top",
    "jeans",
    "petite",
    "length",
    "waist",
    "summer",
    "work",
    "medium",
    "small",
    "large",
    "material",
    "looks",
    "online",
    "store",
]


def reviews(n: int, seed: int, negatives: float) -> list[tuple[str, int]]:
    """Reviews of eight neutral words and one or two words of their own mood; one in five also
    has a word of the other mood ("love the colour but it tore")."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = int(rng.random() >= negatives)
        own, other = (HAPPY, UNHAPPY) if label else (UNHAPPY, HAPPY)
        words = [*rng.choice(FILLER, 8), *rng.choice(own, 2 if rng.random() < 0.3 else 1)]
        if rng.random() < 0.2:
            words.append(rng.choice(other))
        rng.shuffle(words)
        out.append((" ".join(str(w) for w in words), label))
    return out


def _learn(trainer: TrainerProcess, stream: list[tuple[str, int]], timeout_s: float = 300.0) -> Snapshot:
    """Submit ``stream`` in records of one review each, 256 a batch, as the worker would; the
    snapshot published after the trainer learnt all of it."""
    records = [pack_examples([Example(UserContext.empty(), "i1", "c", text=t, positive=y)]) for t, y in stream]
    seen: list[TrainerReport] = []
    deadline = time.monotonic() + timeout_s  # the child imports TensorFlow first
    for start in range(0, len(records), 256):
        while not trainer.submit(records[start : start + 256], float(start), 1):
            assert time.monotonic() < deadline, "the trainer stopped taking examples"
            seen += trainer.reports()
            time.sleep(0.05)
    while True:
        assert time.monotonic() < deadline, f"the trainer learnt {sum(r.examples for r in seen)} examples"
        seen += trainer.reports()
        done = [i for i, r in enumerate(seen) if r.examples] and sum(r.examples for r in seen) == len(records)
        last = max(i for i, r in enumerate(seen) if r.examples) if done else None
        snapshot = next((r.snapshot for r in seen[last + 1 :] if r.snapshot), None) if last is not None else None
        if snapshot is not None:
            return Snapshot.from_bytes(snapshot)
        time.sleep(0.05)


def test_a_stream_with_3_percent_negatives_still_finds_the_negatives() -> None:
    stream = reviews(12_000, seed=0, negatives=0.03)
    assert 0.02 < 1 - np.mean([y for _, y in stream]) < 0.04
    resume = Snapshot(version=1, config=CONFIG, weights=initial_weights(CONFIG, 0)).to_bytes()
    trainer = TrainerProcess(resume, snapshot_interval_s=0.5)
    try:
        snapshot = _learn(trainer, stream)
    finally:
        trainer.stop()
    assert snapshot.counters["sentiment/negative"] + snapshot.counters["sentiment/positive"] == len(stream)
    served = NeuralServingModel(snapshot, Catalog(3600.0), interest_half_life_s=3600.0)
    assert served.sentiment_threshold != 0.5 and snapshot.config.sentiment_calibration != (1.0, 0.0)
    test = reviews(4000, seed=1, negatives=0.5)  # recall does not depend on the share of negatives
    labels = np.array([y for _, y in test])
    positive = np.array(served.sentiment_many([t for t, _ in test])) >= served.sentiment_threshold
    negative_recall = float(np.mean(~positive[labels == 0]))
    positive_recall = float(np.mean(positive[labels == 1]))
    assert negative_recall >= 0.5, negative_recall  # 0.58 measured (2026-12-06)
    assert positive_recall >= 0.9, positive_recall
    # Calibrated: on reviews of the stream's own mix the mean score is the share of positives.
    same_mix = reviews(4000, seed=2, negatives=0.03)
    scores = served.sentiment_many([t for t, _ in same_mix])
    assert abs(np.mean(scores) - np.mean([y for _, y in same_mix])) < 0.02


def test_a_shop_s_recall_floor_finds_more_of_the_negatives() -> None:
    """``SHOPGUIDE_SENTIMENT_NEGATIVE_RECALL`` reaches the trainer child: the snapshot it publishes
    labels at a threshold that finds at least that share of the negatives it calibrated on, and
    the same stream's fresh reviews show it (0.877 measured against 0.58 without the floor, at
    positive recall 0.875 against over 0.9; 2026-12-07)."""
    stream = reviews(12_000, seed=0, negatives=0.03)
    resume = Snapshot(version=1, config=CONFIG, weights=initial_weights(CONFIG, 0)).to_bytes()
    trainer = TrainerProcess(resume, snapshot_interval_s=0.5, sentiment_negative_recall=0.88)
    try:
        snapshot = _learn(trainer, stream)
    finally:
        trainer.stop()
    assert snapshot.config.sentiment_negative_recall == 0.88
    served = NeuralServingModel(snapshot, Catalog(3600.0), interest_half_life_s=3600.0)
    test = reviews(4000, seed=1, negatives=0.5)
    labels = np.array([y for _, y in test])
    positive = np.array(served.sentiment_many([t for t, _ in test])) >= served.sentiment_threshold
    assert float(np.mean(~positive[labels == 0])) >= 0.8
    assert float(np.mean(positive[labels == 1])) >= 0.8
