"""Offline evaluation: prequential replay of click streams, and held-out sentiment accuracy.

Prequential (test-then-train): events are replayed in time order through the same state rules as
the engine (``state.user``, ``state.item``, ``state.catalog``); before each positive event every
method is asked for the user's top 10, then every method learns from the event. The model learns
as it would online: examples built from state at event time, a training micro-batch every
``train_every`` events, and serving switched to the new snapshot after each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from model.candidates import admissible
from model.examples import Example, ExampleConfig, click_examples, review_example
from model.offline.baselines import (
    Cooccurrence,
    Covisitation,
    Popularity,
    RecencyPopularity,
    Recommender,
    Repeat,
)
from model.offline.datasets import Interaction, LabeledReview
from model.retrieval import CandidatePool
from model.scoring import NeuralServingModel
from model.snapshot import Snapshot
from model.training import Trainer
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState

Progress = Callable[[int], None]
WARM_USER_EVENTS = 5


class ModelRecommender:
    """The multi-task model inside a replay: numpy serving, a trainer fed every event's examples."""

    name = "model"

    def __init__(
        self,
        trainer: Trainer,
        catalog: Catalog,
        *,
        interest_half_life_s: float,
        seed: int = 0,
        train_every: int = 256,
        extra_examples: Callable[[], list[Example]] | None = None,
    ) -> None:
        self.trainer = trainer
        self.catalog = catalog
        self.rng = np.random.default_rng(seed)
        self.train_every = train_every
        self.example_config = ExampleConfig(trainer.config, interest_half_life_s)
        self.serving = NeuralServingModel(trainer.export(), catalog, interest_half_life_s=interest_half_life_s)
        self.extra_examples = extra_examples
        self.pending: list[Example] = []
        self.events = 0
        self.losses: dict[str, list[float]] = {}
        self._last: tuple[int, float, CandidatePool] | None = None

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        z, _ = self.serving.net.towers(self.serving.user_inputs([user], now))
        pool = self.serving.pool(user, now)
        self._last = (id(user), now, pool)
        return admissible(self.serving.rank(z["recommend"][0], pool), user, self.catalog, k)

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        pool = None
        if self._last is not None and self._last[:2] == (id(user_before), ts):
            cached = self._last[2]
            if item_id in cached.items:
                pool = cached
        if pool is None:
            pool = self.serving.pool(user_before, ts, extra=[item_id])
        self._last = None
        self.pending += click_examples(
            user_before,
            item_id,
            action,
            ts,
            category,
            self.catalog,
            self.rng,
            config=self.example_config,
            pool=pool,
        )
        self.serving.observe_click(user_before, item_id, action, ts, category)
        self.events += 1
        if self.events % self.train_every == 0:
            self.flush()

    def flush(self) -> None:
        """Train on the pending examples (plus any interleaved extra ones) and serve the result."""
        batch = self.pending
        if self.extra_examples is not None:
            batch = batch + self.extra_examples()
        self.pending = []
        if not batch:
            return
        order = self.rng.permutation(len(batch))
        for task, loss in self.trainer.learn_many([batch[i] for i in order]).items():
            self.losses.setdefault(task, []).append(loss)
        self.serving = self.serving.with_snapshot(self.trainer.export())


@dataclass
class MethodScore:
    hits: int = 0
    ndcg: float = 0.0
    n: int = 0
    warm_hits: int = 0
    warm_ndcg: float = 0.0
    warm_n: int = 0
    returning_hits: int = 0  # users with at least one prior event (online: those already answered once)
    returning_n: int = 0
    curve: list[float] = field(default_factory=list)  # hit rate per window of positives
    _window_hits: int = 0

    def add(self, rank: int | None, warm: bool, returning: bool) -> None:
        gain = 0.0 if rank is None else 1.0 / math.log2(rank + 2)
        self.n += 1
        if returning:
            self.returning_n += 1
            self.returning_hits += rank is not None
        self.hits += rank is not None
        self.ndcg += gain
        self._window_hits += rank is not None
        if warm:
            self.warm_n += 1
            self.warm_hits += rank is not None
            self.warm_ndcg += gain

    def close_window(self, size: int) -> None:
        self.curve.append(self._window_hits / size)
        self._window_hits = 0

    def figures(self) -> dict[str, float]:
        return {
            "hit_rate@10": self.hits / self.n if self.n else 0.0,
            "ndcg@10": self.ndcg / self.n if self.n else 0.0,
            "warm_hit_rate@10": self.warm_hits / self.warm_n if self.warm_n else 0.0,
            "warm_ndcg@10": self.warm_ndcg / self.warm_n if self.warm_n else 0.0,
            "warm_n": self.warm_n,
            "returning_hit_rate@10": self.returning_hits / self.returning_n if self.returning_n else 0.0,
            "returning_n": self.returning_n,
        }


@dataclass
class ReplayResult:
    n: int  # positives scored
    events: int
    scores: dict[str, MethodScore]
    window: int
    seconds: float
    recommend_ms: dict[str, float]
    #: Scores of the positives after the first ``tuned_until`` events only (the part of the
    #: stream no tuning decision looked at), when ``prequential`` was given ``tuned_until``.
    after: dict[str, MethodScore] = field(default_factory=dict)
    tuned_until: int | None = None

    def results(self) -> dict[str, dict[str, float]]:
        return {name: s.figures() for name, s in self.scores.items()}

    def results_after(self) -> dict[str, dict[str, float]]:
        return {name: s.figures() | {"n": s.n} for name, s in self.after.items()}


def replay_catalog(popularity_half_life_s: float) -> tuple[Catalog, list[float]]:
    """A catalog whose clock is the replay's event counter (``now[0]``), so that popularity
    rankings refresh every 100 events whatever the wall-clock speed: replays are deterministic."""
    now = [0.0]
    catalog = Catalog(popularity_half_life_s, refresh_s=100.0, clock=lambda: now[0])
    return catalog, now


def prequential(
    events: Iterable[Interaction],
    methods: Sequence[Recommender],
    catalog: Catalog,
    clock: list[float],
    *,
    is_positive: Callable[[Interaction], bool],
    interest_half_life_s: float,
    popularity_half_life_s: float,
    k: int = 10,
    window: int = 2000,
    progress: Progress | None = None,
    tuned_until: int | None = None,
) -> ReplayResult:
    """Test-then-train over ``events`` (time-ordered). Every method sees the same user states.
    With ``tuned_until``, the positives after that many events are also scored on their own."""
    users: dict[str, UserState] = {}
    items: dict[str, ItemState] = {}
    scores = {m.name: MethodScore() for m in methods}
    after = {m.name: MethodScore() for m in methods} if tuned_until is not None else {}
    spent = dict.fromkeys(scores, 0.0)
    n = n_events = 0
    started = time.perf_counter()
    for e in events:
        user = users.get(e.user_id)
        if user is None:
            user = users[e.user_id] = UserState()
        if is_positive(e):
            warm = sum(user.counts) >= WARM_USER_EVENTS
            returning = sum(user.counts) > 0
            for m in methods:
                t0 = time.perf_counter()
                ranked = [i for i, _ in m.recommend(user, e.ts, k)]
                spent[m.name] += time.perf_counter() - t0
                rank = ranked.index(e.item_id) if e.item_id in ranked else None
                scores[m.name].add(rank, warm, returning)
                if after and n_events >= tuned_until:  # type: ignore[operator]
                    after[m.name].add(rank, warm, returning)
            n += 1
            if n % window == 0:
                for s in scores.values():
                    s.close_window(window)
        for m in methods:
            m.observe(user, e.item_id, e.action, e.ts, e.category)
        user.apply_click(e.item_id, e.action, e.ts, e.category, interest_half_life_s)
        item = items.get(e.item_id)
        if item is None:
            item = items[e.item_id] = ItemState()
        item.apply_activity({e.action: 1.0}, e.ts, popularity_half_life_s, e.category)
        catalog.upsert(e.item_id, item)
        n_events += 1
        clock[0] = float(n_events)
        if progress is not None:
            progress(1)
    for m in methods:
        if isinstance(m, ModelRecommender):
            m.flush()
    return ReplayResult(
        n,
        n_events,
        scores,
        window,
        time.perf_counter() - started,
        {name: 1000 * s / max(n, 1) for name, s in spent.items()},
        after,
        tuned_until,
    )


def baseline_recommenders(catalog: Catalog, popularity_half_life_s: float) -> list[Recommender]:
    """Every baseline, run beside the model in the same replay. The "_unseen" variants never
    recommend an item of the user's recent history (right for MovieLens, where a film is rated
    once; wrong for Taobao, where shoppers come back); "cooccurrence" is the classic whole-history
    item-to-item co-occurrence."""
    return [
        Popularity(catalog),
        Popularity(catalog, unseen_only=True),
        RecencyPopularity(catalog, popularity_half_life_s),
        Covisitation(catalog),
        Covisitation(catalog, unseen_only=True),
        Cooccurrence(catalog),
        Repeat(catalog),
    ]


def classification_figures(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 at threshold 0.5."""
    predicted = (probabilities >= 0.5).astype(int)
    f1s = []
    for cls in (0, 1):
        tp = int(np.sum((predicted == cls) & (labels == cls)))
        fp = int(np.sum((predicted == cls) & (labels != cls)))
        fn = int(np.sum((predicted != cls) & (labels == cls)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": float(np.mean(predicted == labels)), "macro_f1": float(np.mean(f1s))}


def split(
    rows: Sequence[LabeledReview], seed: int = 0, test: float = 0.2
) -> tuple[list[LabeledReview], list[LabeledReview]]:
    """Shuffle with ``seed`` (numpy default_rng permutation), then hold out the last ``test``."""
    order = np.random.default_rng(seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    cut = int(len(shuffled) * (1 - test))
    return shuffled[:cut], shuffled[cut:]


def review_examples(rows: Sequence[LabeledReview]) -> list[Example]:
    return [review_example(None, r.text, r.rating, r.label, r.item_id, r.category) for r in rows]


def train_sentiment(
    trainer: Trainer,
    train: Sequence[LabeledReview],
    max_epochs: int,
    seed: int = 0,
    progress: Progress | None = None,
    validation: float = 0.1,
    patience: int = 2,
) -> tuple[Snapshot, list[float]]:
    """Epochs over the training reviews (reshuffled each time) with early stopping: a seeded
    ``validation`` share of the *training* rows picks the epoch, so the test rows are never
    looked at. Returns the best snapshot and the validation accuracy after each epoch."""
    fit, held = split(train, seed=seed + 1, test=validation)
    examples = review_examples(fit)
    rng = np.random.default_rng(seed)
    bs = trainer.config.batch_size
    best: tuple[float, Snapshot] | None = None
    history: list[float] = []
    for _ in range(max_epochs):
        order = rng.permutation(len(examples))
        for start in range(0, len(order), bs):
            trainer.learn_many([examples[i] for i in order[start : start + bs]])
            if progress is not None:
                progress(min(bs, len(order) - start))
        snapshot = trainer.export()
        accuracy = snapshot_sentiment(snapshot, held)["accuracy"]
        history.append(accuracy)
        if best is None or accuracy > best[0]:
            best = (accuracy, snapshot)
        elif len(history) - 1 - history.index(best[0]) >= patience:
            break
    if best is None:
        raise ValueError("max_epochs must be at least 1")
    return best[1], history


def snapshot_sentiment(snapshot: Snapshot, rows: Sequence[LabeledReview]) -> dict[str, float]:
    """Accuracy and macro-F1 of a snapshot's sentiment on labelled reviews, scored as serving
    scores a review: its text alone, through the numpy path."""
    serving = NeuralServingModel(snapshot, Catalog(3600.0), interest_half_life_s=3600.0)
    return classification_figures(np.array([r.label for r in rows]), sentiment_scores(serving, [r.text for r in rows]))


def sentiment_scores(serving: NeuralServingModel, texts: Sequence[str], batch: int = 512) -> np.ndarray:
    out: list[float] = []
    for start in range(0, len(texts), batch):
        out += serving.sentiment_many(texts[start : start + batch])
    return np.array(out)
