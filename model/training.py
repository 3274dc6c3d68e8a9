"""Incremental training: one compiled step per micro-batch of stream examples, never a full retrain.

* Sparse-friendly: the item and text tables (2^17 rows each) get Adagrad updates on the rows a batch
  touched only (Keras's Adagrad applies ``IndexedSlices`` sparsely); dense weights, including the
  small category table, use Adam. Dense Adam over the big tables is what makes a step slow. The
  ranker's linear part gets Adagrad too, at a high rate, so that a new shop's ranking adapts
  within its first steps.
* Stable over long streams: gradients clipped by global norm, constant modest learning rates, and
  a batch whose loss or gradient is not finite changes nothing (counted in ``skipped_steps``).
* Sentiment that sees the rare class: each review's loss is weighted by the inverse share of its
  class among the reviews learnt so far (``sentiment_class_weights``), and every review is scored
  as serving scores it (text alone) *before* it is learnt from; the last of these held-out scores
  calibrate the published score and choose its decision threshold at each export
  (:mod:`model.calibration`).
* Deterministic: weights start from :func:`model.config.initial_weights` (numpy, seeded), the only
  randomness (review context dropout) comes from a seeded numpy generator, and TensorFlow's op
  determinism is switched on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from model.calibration import fit_calibration
from model.config import TASKS, ModelConfig, initial_weights
from model.errors import SnapshotError
from model.examples import Example, encode_examples
from model.features import UserContext, encode_users
from model.losses import present, task_losses, total_loss
from model.network import MultiTaskNet
from model.snapshot import OPTIMIZER_PREFIX, Snapshot

#: Weights learnt by Adagrad, each at its own rate (``ModelConfig``): the embedding tables, whose
#: rows see sparse gradients, and the ranker's linear part, which must move fast at first.
ADAGRAD_WEIGHTS = ("item_table", "text_table", "recommend/wide")
#: Counters of the reviews learnt per sentiment class (the class weights' shares).
SENTIMENT_CLASSES = ("sentiment/positive", "sentiment/negative")
#: Most recent reviews whose before-learning scores calibrate the sentiment score at export.
CALIBRATION_WINDOW = 4000
#: Bounds of a sentiment class weight (a class 50 times rarer than the other counts 50 times less
#: than it would balanced): the first reviews of a stream must not get arbitrary weights.
CLASS_WEIGHT_RANGE = (0.02, 50.0)


class Trainer:
    """Learns from micro-batches of :class:`~model.examples.Example`; exports snapshots with
    monotonically increasing versions; resumes from a snapshot (weights and optimizer state)."""

    def __init__(self, config: ModelConfig, seed: int = 0, resume: Snapshot | None = None) -> None:
        tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(seed)
        if resume is not None:
            config = resume.config
        self.config = config
        self._rng = np.random.default_rng(seed)
        weights = resume.serving_weights() if resume is not None else initial_weights(config, seed)
        self.net = MultiTaskNet(config, weights)
        self._adagrad = [self.net.named[n] for n in ADAGRAD_WEIGHTS]
        self._dense = [v for n, v in self.net.named.items() if n not in ADAGRAD_WEIGHTS and v.trainable]
        # A tiny initial accumulator: rows see few, small gradients (one example's share of a
        # batch mean), which a large one would drown for thousands of steps.
        self._opt_adagrad = [
            keras.optimizers.Adagrad(rate, initial_accumulator_value=1e-6)
            for rate in (config.item_learning_rate, config.text_learning_rate, config.wide_learning_rate)
        ]
        self._opt_dense = keras.optimizers.Adam(config.learning_rate)
        for opt, table in zip(self._opt_adagrad, self._adagrad, strict=True):
            opt.build([table])
        self._opt_dense.build(self._dense)
        self.version = resume.version if resume is not None else 0
        self.counters: dict[str, int] = dict(resume.counters) if resume is not None else {}
        for key in ("steps", "examples", "skipped_steps", *(f"labels/{t}" for t in TASKS), *SENTIMENT_CLASSES):
            self.counters.setdefault(key, 0)
        # (logit before learning, label) of the latest reviews, and whether one came since the last fit.
        self._held: deque[tuple[float, int]] = deque(maxlen=CALIBRATION_WINDOW)
        self._held_new = False
        if resume is not None:
            self._restore_optimizers(resume)
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._sentiment_logits = tf.function(lambda x: self.net(x)["sentiment"], reduce_retracing=True)

    def _optimizer_variables(self) -> dict[str, keras.Variable]:
        out = {}
        named = [(t, o) for t, o in zip(ADAGRAD_WEIGHTS, self._opt_adagrad, strict=True)]
        for label, opt in [*named, ("dense", self._opt_dense)]:
            for i, v in enumerate(opt.variables):
                out[f"{OPTIMIZER_PREFIX}{label}/{i:03d}"] = v
        return out

    def _restore_optimizers(self, snapshot: Snapshot) -> None:
        saved = {k: v for k, v in snapshot.weights.items() if k.startswith(OPTIMIZER_PREFIX)}
        if not saved:
            return  # a serving snapshot: fresh optimizer state
        for name, var in self._optimizer_variables().items():
            value = saved.get(name)
            if value is None or tuple(value.shape) != tuple(var.shape):
                raise SnapshotError(f"optimizer state {name} is missing or mis-shaped")
            var.assign(value.astype(var.dtype))

    def _train_step(
        self, inputs: dict[str, tf.Tensor], targets: dict[str, tf.Tensor]
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        c = self.config
        variables = self._adagrad + self._dense
        with tf.GradientTape() as tape:
            out = self.net(inputs)
            losses = task_losses(out, targets)
            total = total_loss(losses, present(targets), c, self.net.named["task_log_vars"])
        grads = tape.gradient(total, [v.value for v in variables])
        grads = [g if g is not None else tf.zeros_like(v) for g, v in zip(grads, variables, strict=True)]
        grads, norm = tf.clip_by_global_norm(grads, c.clipnorm)
        ok = tf.math.is_finite(total) & tf.math.is_finite(norm)
        # Skipped, not applied as zeros: Adam would still move every weight by its momentum, and
        # a NaN gradient times zero is still NaN.
        if ok:
            n = len(self._adagrad)
            for opt, grad, weight in zip(self._opt_adagrad, grads[:n], self._adagrad, strict=True):
                opt.apply([_dedupe(grad)], [weight])
            self._opt_dense.apply(grads[n:], self._dense)
        return losses, ok

    def learn_many(self, examples: Sequence[Example]) -> dict[str, float]:
        """Learn from ``examples`` in micro-batches of ``config.batch_size``; returns each task's
        mean loss over the batches that had its labels (tasks without labels are absent)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        bs = self.config.batch_size
        for start in range(0, len(examples), bs):
            batch = examples[start : start + bs]
            inputs, targets = encode_examples(batch, self.config)
            self._score_before_learning(inputs, targets)
            self._weigh_sentiment_classes(targets)
            self._drop_review_context(inputs, targets)
            losses, ok = self._step(inputs, targets)
            self.counters["steps"] += 1
            self.counters["examples"] += len(batch)
            if not bool(ok):
                self.counters["skipped_steps"] += 1
                continue
            here = {
                "recommend": targets["engaged_weight"],
                "interest": targets["next_category_mask"],
                "sentiment": targets["positive_mask"],
                "rating": targets["rating_mask"],
            }
            for task in TASKS:
                labelled = int(np.count_nonzero(here[task]))
                if labelled:
                    self.counters[f"labels/{task}"] += labelled
                    sums[task] = sums.get(task, 0.0) + float(losses[task])
                    counts[task] = counts.get(task, 0) + 1
        return {t: sums[t] / counts[t] for t in sums}

    def _score_before_learning(self, inputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> None:
        """Keep the batch's reviews' sentiment logits, computed as serving computes them (the
        text alone: no user, item or category), before the weights learn from them: held-out
        scores for calibration."""
        rows = np.flatnonzero(targets["positive_mask"] > 0)
        if not len(rows):
            return
        x = {k: v[rows] for k, v in inputs.items()}
        x |= encode_users([UserContext.empty()] * len(rows), self.config)
        x["item"][:] = 0
        x["category"][:] = 0
        logits = self._sentiment_logits(x).numpy()
        if not np.isfinite(logits).all():
            return
        self._held.extend(zip(logits.tolist(), targets["positive"][rows].astype(int).tolist(), strict=True))
        self._held_new = True

    def _weigh_sentiment_classes(self, targets: dict[str, np.ndarray]) -> None:
        """Count the batch's reviews per class, and, with ``sentiment_class_weights``, turn their
        mask into weights: ``reviews / (2 * reviews of its class)`` over every review learnt so
        far, this batch's included, within :data:`CLASS_WEIGHT_RANGE`."""
        mask = targets["positive_mask"]
        positive = (mask > 0) & (targets["positive"] > 0.5)
        negative = (mask > 0) & ~positive
        self.counters["sentiment/positive"] += int(positive.sum())
        self.counters["sentiment/negative"] += int(negative.sum())
        if not self.config.sentiment_class_weights or not (negative.any() or positive.any()):
            return
        n_pos, n_neg = self.counters["sentiment/positive"], self.counters["sentiment/negative"]
        total = n_pos + n_neg
        low, high = CLASS_WEIGHT_RANGE
        w_pos = float(np.clip(total / (2 * max(n_pos, 1)), low, high))
        w_neg = float(np.clip(total / (2 * max(n_neg, 1)), low, high))
        targets["positive_mask"] = np.where(positive, w_pos, np.where(negative, w_neg, 0.0)).astype(np.float32)

    def calibrated(self) -> ModelConfig:
        """The config with the sentiment calibration fitted on the latest held-out scores (the
        current one when too few reviews of either class were scored)."""
        if self._held_new:
            self._held_new = False
            logits, labels = zip(*self._held, strict=True)
            fitted = fit_calibration(np.array(logits), np.array(labels), self.config.sentiment_negative_recall)
            if fitted is not None:
                self.config = fitted.applied_to(self.config)
        return self.config

    def _drop_review_context(self, inputs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> None:
        """Serving scores review text without knowing the item, so the sentiment head must not
        come to depend on it: hide the reviewed item from a share of review rows. Also hide a
        ``text_dropout`` share of each text's n-grams (the rest scaled up to keep the
        expectation): without it the deep text part (a 16-d row per n-gram, which Adagrad moves
        by about the learning rate on its first occurrence) memorised rare n-grams and overfitted
        within two epochs (Chinese validation accuracy 0.926 against 0.933 with it)."""
        reviews = targets["positive_mask"] > 0
        drop = reviews & (self._rng.random(len(reviews)) < self.config.review_context_dropout)
        inputs["item"][drop] = 0
        inputs["category"][drop] = 0
        p = self.config.text_dropout
        if p > 0:
            weights = inputs["text_weights"]  # all zero on rows without text (clicks)
            keep = self._rng.random(weights.shape) >= p
            inputs["text_weights"] = np.where(keep, weights / (1.0 - p), 0.0).astype(np.float32)

    def predict(self, examples: Sequence[Example]) -> dict[str, np.ndarray]:
        """The network's raw outputs (logits, rating) for ``examples``; for tests and checks."""
        inputs, _ = encode_examples(examples, self.config)
        return {k: v.numpy() for k, v in self.net(inputs).items()}

    def export(
        self,
        metrics: dict[str, float] | None = None,
        *,
        with_optimizer: bool = False,
        extra: dict[str, object] | None = None,
    ) -> Snapshot:
        """A snapshot of the current weights with the next version number. Serving needs no
        optimizer state; a training checkpoint (to resume from) should include it."""
        self.version += 1
        weights = self.net.numpy_weights()
        if with_optimizer:
            weights |= {k: v.numpy() for k, v in self._optimizer_variables().items()}
        return Snapshot(
            version=self.version,
            config=self.calibrated(),
            weights=weights,
            created=time.time(),
            counters=dict(self.counters),
            metrics=dict(metrics or {}),
            extra=dict(extra or {}),
        )


def _dedupe(grad: tf.Tensor | tf.IndexedSlices) -> tf.Tensor | tf.IndexedSlices:
    """Sum repeated rows of a sparse gradient: Adagrad's accumulator must see the row's total
    gradient, not one square per occurrence."""
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    unique, position = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(unique)[0])
    return tf.IndexedSlices(values, unique, grad.dense_shape)
