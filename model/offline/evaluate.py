"""Offline evaluation: prequential replay of click streams, and held-out sentiment figures.

Prequential (test-then-train): events are replayed in time order through the same state rules as
the engine (``state.user``, ``state.item``, ``state.catalog``); before each positive event every
method is asked for the user's top 10, then every method learns from the event. The model learns
as it would online: examples built from state at event time, a training micro-batch every
``train_every`` events, and serving switched to the new snapshot after each.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from model.calibration import SentimentCalibration, fit_calibration, macro_f1
from model.candidates import NEW_SHARE, admissible
from model.config import ModelConfig
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
from model.retrieval import SOURCE_FEATURES, CandidatePool, sources_of
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
        new_share: float = NEW_SHARE,
    ) -> None:
        self.trainer = trainer
        self.catalog = catalog
        self.rng = np.random.default_rng(seed)
        self.train_every = train_every
        self.example_config = ExampleConfig(trainer.config, interest_half_life_s)
        self.serving = NeuralServingModel(
            trainer.export(), catalog, interest_half_life_s=interest_half_life_s, new_share=new_share
        )
        self.extra_examples = extra_examples
        self.pending: list[Example] = []
        self.events = 0
        self.losses: dict[str, list[float]] = {}
        self._last: tuple[int, float, CandidatePool, list[tuple[str, float]]] | None = None

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        """The top ``k`` the engine would publish (``NeuralServingModel.select``)."""
        z, _ = self.serving.net.towers(self.serving.user_inputs([user], now))
        pool = self.serving.pool(user, now)
        ranked = self.serving.rank(z["recommend"][0], pool)
        self._last = (id(user), now, pool, ranked)
        return self.serving.select(ranked, user, k)

    def last_ranking(self, user: UserState, now: float) -> list[tuple[str, float]]:
        """The whole ranked pool of the last ``recommend``, which must have been for ``user`` at
        ``now``."""
        if self._last is None or self._last[:2] != (id(user), now):
            raise RuntimeError("last_ranking needs a recommend for the same user and time first")
        return self._last[3]

    def last_pool(self) -> set[str] | None:
        """The items of the candidate pool the last ``recommend`` ranked (what any ranker could
        have shown), or None when ``observe`` has run since."""
        return None if self._last is None else set(self._last[2].items)

    def last_sources(self, item_id: str) -> list[str]:
        """The retrieval sources that put ``item_id`` into the last ``recommend``'s pool (none if
        it was not there)."""
        if self._last is None:
            raise RuntimeError("last_sources needs a recommend first")
        pool = self._last[2]
        try:
            position = pool.position(item_id)
        except ValueError:
            return []
        return sources_of(pool.rows([position])[0])

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


class NewShareView:
    """The model's ranking published with another share of new items (``new_share``; 0: the
    ranking as it is, before the share): scored in the same replay as the model, at no training
    cost, so that what a share gains on discovery and costs elsewhere is measured on the same
    rankings. Ask it after the model, for the same user and time."""

    def __init__(self, model: ModelRecommender, new_share: float) -> None:
        self.model = model
        self.new_share = new_share
        self.name = f"model_new_share_{new_share:g}"

    def recommend(self, user: UserState, now: float, k: int) -> list[tuple[str, float]]:
        return admissible(self.model.last_ranking(user, now), user, self.model.catalog, k, new_share=self.new_share)

    def observe(self, user_before: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        """The model it views learns."""


def is_model(name: str) -> bool:
    """Whether a method of a replay is the model or a view of its ranking (not a baseline)."""
    return name == ModelRecommender.name or name.startswith(f"{ModelRecommender.name}_")


#: A returning shopper's previous event was at least this long before (a new session).
NEW_SESSION_GAP_S = 30 * 60.0
#: The segments every method is scored on, beside all positives ("all"); see ``segments_of``.
SEGMENTS = ("cold", "warm", "returning", "new_session", "discovery")


def segments_of(user: UserState, touched: set[str], item_id: str, now: float) -> list[str]:
    """The segments a positive belongs to, from the user's state *before* it: "cold" (< 5 prior
    events) or "warm" (>= 5); "returning" (at least one prior event: a shopper already seen);
    "new_session" (returning, and the previous event at least 30 minutes earlier: a shopper
    coming back later); "discovery" (``item_id`` is not in ``touched``, every item the user ever
    interacted with before, not only the last 50 the state keeps)."""
    prior = sum(user.counts)
    out = ["warm" if prior >= WARM_USER_EVENTS else "cold"]
    if prior > 0:
        out.append("returning")
        if user.recent and now - user.recent[-1].ts >= NEW_SESSION_GAP_S:
            out.append("new_session")
    if item_id not in touched:
        out.append("discovery")
    return out


def ndcg_gain(rank: int | None) -> float:
    """NDCG@k of one positive with a single relevant item (ideal DCG 1): 1 / log2(rank + 2) for a
    0-based rank inside the top k, 0 outside it."""
    return 0.0 if rank is None else 1.0 / math.log2(rank + 2)


@dataclass
class Tally:
    """Hits, summed NDCG gain and count of one segment's positives; with ``pool_*``, how many of
    them were in the method's candidate pool (methods with a retrieval stage only), and by which
    retrieval source: ``by_source`` counts each source that offered the item, ``only_source``
    the positives a single source offered."""

    hits: int = 0
    gain: float = 0.0
    n: int = 0
    pool_hits: int = 0
    pool_n: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    only_source: Counter[str] = field(default_factory=Counter)


@dataclass
class MethodScore:
    """One method's scores over a replay: per segment (``SEGMENTS`` and "all"), the items it ever
    recommended (catalogue coverage) and the hit rate per window of positives."""

    tallies: dict[str, Tally] = field(default_factory=lambda: {s: Tally() for s in ("all", *SEGMENTS)})
    recommended: set[str] = field(default_factory=set)
    curve: list[float] = field(default_factory=list)  # hit rate per window of positives
    _window_hits: int = 0

    @property
    def n(self) -> int:
        return self.tallies["all"].n

    def add(
        self,
        rank: int | None,
        segments: Iterable[str],
        ranked: Sequence[str] = (),
        in_pool: bool | None = None,
        sources: Sequence[str] = (),
    ) -> None:
        """Score one positive: ``rank`` of the true item in the top k (None: missed), the
        positive's ``segments``, the ``ranked`` top k shown, whether the true item was in the
        candidate pool (None: the method has no pool) and the retrieval ``sources`` that put it
        there."""
        gain = ndcg_gain(rank)
        self._window_hits += rank is not None
        self.recommended.update(ranked)
        for segment in ("all", *segments):
            t = self.tallies[segment]
            t.n += 1
            t.hits += rank is not None
            t.gain += gain
            if in_pool is not None:
                t.pool_n += 1
                t.pool_hits += in_pool
                t.by_source.update(sources)
                if len(sources) == 1:
                    t.only_source.update(sources)

    def close_window(self, size: int) -> None:
        self.curve.append(self._window_hits / size)
        self._window_hits = 0

    def figures(self, catalog_items: int = 0) -> dict[str, float]:
        """HR@10 and NDCG@10 overall (``hit_rate@10``) and per segment (``warm_hit_rate@10``,
        ``warm_n``...), pool recall where the method has a pool (``pool_recall``,
        ``warm_pool_recall``...) with each retrieval source's part: the share of the positives it
        offered (``pool_recall_covisitation``...) and offered alone (``pool_only_covisitation``...),
        and ``coverage``: the share of the ``catalog_items`` items it ever recommended."""
        out: dict[str, float] = {}
        for segment, t in self.tallies.items():
            prefix = "" if segment == "all" else f"{segment}_"
            out[f"{prefix}hit_rate@10"] = t.hits / t.n if t.n else 0.0
            out[f"{prefix}ndcg@10"] = t.gain / t.n if t.n else 0.0
            if segment != "all":
                out[f"{prefix}n"] = t.n
            if t.pool_n:
                out[f"{prefix}pool_recall"] = t.pool_hits / t.pool_n
                for source in SOURCE_FEATURES:
                    out[f"{prefix}pool_recall_{source}"] = t.by_source[source] / t.pool_n
                    out[f"{prefix}pool_only_{source}"] = t.only_source[source] / t.pool_n
        out["coverage"] = len(self.recommended) / catalog_items if catalog_items else 0.0
        return out


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
    items: int = 0  # distinct items in the replay: the catalogue of ``coverage``

    def results(self) -> dict[str, dict[str, float]]:
        return {name: s.figures(self.items) for name, s in self.scores.items()}

    def results_after(self) -> dict[str, dict[str, float]]:
        return {name: s.figures(self.items) | {"n": s.n} for name, s in self.after.items()}


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
    touched: dict[str, set[str]] = {}  # every item each user ever interacted with (discovery)
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
            segments = segments_of(user, touched.get(e.user_id, set()), e.item_id, e.ts)
            for m in methods:
                t0 = time.perf_counter()
                ranked = [i for i, _ in m.recommend(user, e.ts, k)]
                spent[m.name] += time.perf_counter() - t0
                rank = ranked.index(e.item_id) if e.item_id in ranked else None
                pool = m.last_pool() if isinstance(m, ModelRecommender) else None
                in_pool = None if pool is None else e.item_id in pool
                sources = m.last_sources(e.item_id) if in_pool and isinstance(m, ModelRecommender) else []
                scores[m.name].add(rank, segments, ranked, in_pool, sources)
                if after and n_events >= tuned_until:  # type: ignore[operator]
                    after[m.name].add(rank, segments, ranked, in_pool, sources)
            n += 1
            if n % window == 0:
                for s in scores.values():
                    s.close_window(window)
        for m in methods:
            m.observe(user, e.item_id, e.action, e.ts, e.category)
        user.apply_click(e.item_id, e.action, e.ts, e.category, interest_half_life_s)
        touched.setdefault(e.user_id, set()).add(e.item_id)
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
        len(items),
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


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE of ``probabilities`` read as P(positive): reviews binned by score into ``bins`` equal
    widths of [0, 1] (a score of 1.0 in the last), then the mean over reviews of
    |share of positives in the bin - mean score in the bin|. 0 is perfectly calibrated."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.asarray(probabilities, dtype=float)
    if not len(labels):
        return 0.0
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(which):
        inside = which == b
        error += inside.sum() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(error / len(labels))


def classification_figures(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Macro-F1 first (the figure that counts when negatives are rare), accuracy, precision and
    recall of each class, all with "positive" at ``probabilities >= threshold`` (a model's own
    threshold: ``ModelConfig.sentiment_threshold``), and the calibration of the scores (``ece``)."""
    predicted = (probabilities >= threshold).astype(int)
    per_class: dict[str, float] = {}
    for cls, name in ((0, "negative"), (1, "positive")):
        tp = int(np.sum((predicted == cls) & (labels == cls)))
        fp = int(np.sum((predicted == cls) & (labels != cls)))
        fn = int(np.sum((predicted != cls) & (labels == cls)))
        per_class[f"{name}_precision"] = tp / (tp + fp) if tp + fp else 0.0
        per_class[f"{name}_recall"] = tp / (tp + fn) if tp + fn else 0.0
        per_class[f"{name}_n"] = tp + fn
    return {
        "macro_f1": macro_f1(labels, predicted),
        "accuracy": float(np.mean(predicted == labels)),
        **per_class,
        "ece": expected_calibration_error(labels, probabilities),
    }


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
    balance: bool = False,
) -> tuple[Snapshot, list[float]]:
    """Epochs over the training reviews (reshuffled each time) with early stopping: a seeded
    ``validation`` share of the *training* rows calibrates each epoch's scores and chooses its
    threshold (:func:`calibrated_on`), then picks the epoch by its macro-F1, so the test rows are
    never looked at. With ``balance`` each epoch repeats the rarer class's reviews to about the
    other's count (class re-sampling). Returns the best snapshot, calibrated, and the validation
    macro-F1 after each epoch."""
    fit, held = validation_split(train, seed, validation)
    if balance:
        fit = oversampled(fit)
    examples = review_examples(fit)
    rng = np.random.default_rng(seed)
    best: tuple[float, Snapshot] | None = None
    history: list[float] = []
    for _ in range(max_epochs):
        learn_epoch(trainer, examples, rng, progress)
        snapshot = calibrated_on(trainer.export(), held)
        score = snapshot_sentiment(snapshot, held)["macro_f1"]
        history.append(score)
        if best is None or score > best[0]:
            best = (score, snapshot)
        elif len(history) - 1 - history.index(best[0]) >= patience:
            break
    if best is None:
        raise ValueError("max_epochs must be at least 1")
    return best[1], history


def learn_epoch(
    trainer: Trainer, examples: Sequence[Example], rng: np.random.Generator, progress: Progress | None = None
) -> None:
    """One pass over ``examples`` in an order drawn from ``rng``, a micro-batch at a time."""
    order = rng.permutation(len(examples))
    bs = trainer.config.batch_size
    for start in range(0, len(order), bs):
        trainer.learn_many([examples[i] for i in order[start : start + bs]])
        if progress is not None:
            progress(min(bs, len(order) - start))


def out_of_fold_calibration(
    config: ModelConfig,
    train: Sequence[LabeledReview],
    folds: int,
    epochs: int,
    seed: int = 0,
    progress: Progress | None = None,
    balance: bool = False,
) -> SentimentCalibration | None:
    """The sentiment calibration and threshold fitted on out-of-fold logits of every training
    row (cross-fitting): the rows are split into ``folds`` seeded folds, a model with ``config``
    learns ``epochs`` epochs on all folds but one and scores that one, so every training review,
    and all their negatives, inform the threshold, not only a validation share's. None when the
    rows hold too few reviews of a class."""
    if folds < 2:
        raise ValueError("cross-fitting needs at least 2 folds")
    which = np.random.default_rng(seed + 2).permutation(len(train)) % folds
    logits = np.zeros(len(train))
    for fold in range(folds):
        fit = [r for r, f in zip(train, which, strict=True) if f != fold]
        held = [r for r, f in zip(train, which, strict=True) if f == fold]
        trainer = Trainer(config, seed=seed)
        examples = review_examples(oversampled(fit) if balance else fit)
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            learn_epoch(trainer, examples, rng, progress)
        logits[which == fold] = snapshot_logits(trainer.export(), held)
    labels = np.array([r.label for r in train])
    return fit_calibration(logits, labels, config.sentiment_negative_recall)


def calibrated_on(snapshot: Snapshot, rows: Sequence[LabeledReview]) -> Snapshot:
    """``snapshot`` with its sentiment calibration and threshold fitted on ``rows`` (held out from
    its training), unchanged when they hold too few reviews of a class."""
    fitted = fit_calibration(
        snapshot_logits(snapshot, rows), np.array([r.label for r in rows]), snapshot.config.sentiment_negative_recall
    )
    return snapshot if fitted is None else replace(snapshot, config=fitted.applied_to(snapshot.config))


def oversampled(rows: Sequence[LabeledReview]) -> list[LabeledReview]:
    """``rows`` with the rarer label's rows repeated round(majority / minority) times."""
    by_label: dict[int, list[LabeledReview]] = {}
    for r in rows:
        by_label.setdefault(r.label, []).append(r)
    if len(by_label) < 2:
        return list(rows)
    rare, common = sorted(by_label.values(), key=len)
    return common + rare * max(1, round(len(common) / len(rare)))


def validation_split(
    train: Sequence[LabeledReview], seed: int = 0, validation: float = 0.1
) -> tuple[list[LabeledReview], list[LabeledReview]]:
    """The training rows ``train_sentiment`` fits on, and the ``validation`` share of them it
    holds out to choose its epoch."""
    return split(train, seed=seed + 1, test=validation)


def _text_serving(snapshot: Snapshot) -> NeuralServingModel:
    return NeuralServingModel(snapshot, Catalog(3600.0), interest_half_life_s=3600.0)


def snapshot_scores(snapshot: Snapshot, rows: Sequence[LabeledReview]) -> np.ndarray:
    """A snapshot's sentiment score of each review, scored as serving scores a review: its text
    alone, through the numpy path, calibrated."""
    return sentiment_scores(_text_serving(snapshot), [r.text for r in rows])


def snapshot_logits(snapshot: Snapshot, rows: Sequence[LabeledReview], batch: int = 512) -> np.ndarray:
    """The same, before calibration: the sentiment head's logits."""
    serving = _text_serving(snapshot)
    texts = [r.text for r in rows]
    return np.concatenate(
        [np.zeros(0), *(serving.sentiment_logits(texts[i : i + batch]) for i in range(0, len(texts), batch))]
    )


def snapshot_sentiment(snapshot: Snapshot, rows: Sequence[LabeledReview]) -> dict[str, float]:
    """``classification_figures`` of a snapshot's sentiment on labelled reviews, labelled at the
    snapshot's own threshold."""
    labels = np.array([r.label for r in rows])
    return classification_figures(labels, snapshot_scores(snapshot, rows), snapshot.config.sentiment_threshold)


def sentiment_scores(serving: NeuralServingModel, texts: Sequence[str], batch: int = 512) -> np.ndarray:
    out: list[float] = []
    for start in range(0, len(texts), batch):
        out += serving.sentiment_many(texts[start : start + batch])
    return np.array(out)
