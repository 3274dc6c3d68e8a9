"""Per-task losses with per-example masks, and how they are combined into one objective.

Each task's loss is a mean over the examples that carry its label (a weighted mean for
recommendations, where a buy counts more than a view, and for sentiment, where the trainer may
weigh the classes: ``positive_mask`` then holds each review's class weight), so a batch that
mixes clicks and reviews gives every task a loss on its own scale, and a task with no label in
the batch contributes exactly zero loss and zero gradient.
"""

from __future__ import annotations

import tensorflow as tf

from model.config import TASKS, ModelConfig


def _masked_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(weights))


def task_losses(out: dict[str, tf.Tensor], t: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Binary cross-entropy (recommend, sentiment), softmax cross-entropy (interest) and squared
    error on the 1-5 scale divided by 4 (rating), each averaged over its labelled examples."""
    rec = tf.nn.sigmoid_cross_entropy_with_logits(labels=t["engaged"], logits=out["recommend"])
    interest = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t["next_category"], logits=out["interest"])
    sent = tf.nn.sigmoid_cross_entropy_with_logits(labels=t["positive"], logits=out["sentiment"])
    rating = tf.square(out["rating"] - t["rating"]) / 4.0
    return {
        "recommend": _masked_mean(rec, t["engaged_weight"]),
        "interest": _masked_mean(interest, t["next_category_mask"]),
        "sentiment": _masked_mean(sent, t["positive_mask"]),
        "rating": _masked_mean(rating, t["rating_mask"]),
    }


def present(t: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """1.0 for each task that has at least one label in the batch, else 0.0."""
    masks = {
        "recommend": t["engaged_weight"],
        "interest": t["next_category_mask"],
        "sentiment": t["positive_mask"],
        "rating": t["rating_mask"],
    }
    return {task: tf.cast(tf.reduce_sum(m) > 0, tf.float32) for task, m in masks.items()}


def total_loss(
    losses: dict[str, tf.Tensor],
    here: dict[str, tf.Tensor],
    config: ModelConfig,
    log_vars: tf.Tensor,
) -> tf.Tensor:
    """``sum_i w_i L_i`` with the configured weights, or, with ``uncertainty_weighting``,
    Kendall et al. (2018): ``sum_i c_i exp(-s_i) L_i + s_i / 2`` with learnt ``s_i = log var_i``
    (``c_i`` = 1 for classification, 1/2 for regression). Tasks weighted 0 are left out entirely
    (single-task training), and a task absent from the batch adds nothing, not even ``s_i``."""
    total = tf.constant(0.0)
    for i, task in enumerate(TASKS):
        if config.weight(task) == 0.0:
            continue
        if config.uncertainty_weighting:
            scale = 0.5 if task == "rating" else 1.0
            term = scale * tf.exp(-log_vars[i]) * losses[task] + 0.5 * log_vars[i]
        else:
            term = config.weight(task) * losses[task]
        total += here[task] * term
    return total
