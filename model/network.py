"""The multi-task network (Keras 3 on TensorFlow): shared feature extraction, then four task heads.

Shared part: hashed item, category and text embedding tables; the user's pooled history (and,
with ``config.history_attention``, the history read as a sequence: each item plus its position's
and action's rows, weighed by a softmax of its dot product with a query made from the newest
item), decayed interests, activity counts and review text form one vector, which a shared-bottom layer or an MMoE
(``config.experts`` experts with one softmax gate per task, Ma et al. 2018) turns into one input per
task tower.

Heads:

* recommend: a two-tower score ``u . v_item + bias_item + mlp(candidate features, user) + w . features``
  (the last, a linear "wide" part, learns fast: ``ModelConfig.wide_learning_rate``). The item
  side is only embedding rows, so serving scores hundreds of candidates with one numpy gather and
  one matrix product (``model.scoring``);
* interest: a softmax over the categories the model has learned (or the batch names),
  ``q . v_category + bias``, plus learnt multiples of the user's own interest and recent-category
  shares, so that a new model already echoes them. A category nothing ever referenced keeps a zero
  row: serving treats it as "not learned" and ranks it on the user's own shares (``model.scoring``);
* sentiment: a wide (per-n-gram weight) plus deep (tower + item context) logit;
* rating: ``3 + 2 tanh(.)``, wide plus deep.

The weights are exactly those of :func:`model.config.weight_shapes`, named the same, so that a
snapshot maps one-to-one onto the numpy scorer. This module is the only one that imports
TensorFlow besides ``model.training``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from model.config import TASKS, ModelConfig, weight_shapes

NEG_INF = -1e9


class MultiTaskNet(keras.Model):
    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        super().__init__(name="shopguide_multitask")
        self.config = config
        self.named: dict[str, keras.Variable] = {}
        for name, shape in weight_shapes(config).items():
            value = weights[name]
            if value.shape != shape:
                raise ValueError(f"weight {name}: shape {value.shape}, expected {shape}")
            trainable = name != "task_log_vars" or config.uncertainty_weighting
            self.named[name] = self.add_weight(
                shape=shape,
                initializer=keras.initializers.Constant(value),
                name=name.replace("/", "__"),
                trainable=trainable,
            )

    def call(self, x: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        w, c = self.named, self.config
        d, dt = c.dim, c.text_dim
        items, cats, text = w["item_table"], w["category_table"], w["text_table"]

        hist = tf.gather(items, x["hist_items"])[..., :d] + tf.gather(cats, x["hist_cats"])[..., :d]
        hist_vec = tf.reduce_sum(hist * x["hist_weights"][..., None], axis=1)
        if c.history_attention:
            hist_vec = tf.concat([hist_vec, _attended(hist, x["hist_actions"], w)], axis=-1)
        int_vec = tf.reduce_sum(tf.gather(cats, x["interest_cats"])[..., :d] * x["interest_weights"][..., None], axis=1)
        text_pooled = tf.reduce_sum(tf.gather(text, x["text_ids"]) * x["text_weights"][..., None], axis=1)
        shared = tf.concat([hist_vec, int_vec, x["counts"], text_pooled[:, :dt]], axis=-1)

        if c.experts:
            experts = tf.nn.relu(tf.einsum("bx,kxh->bkh", shared, w["experts/kernel"]) + w["experts/bias"])
            gates = tf.nn.softmax(tf.einsum("bx,txk->btk", shared, w["gates/kernel"]) + w["gates/bias"], axis=-1)
            mixed = tf.einsum("btk,bkh->bth", gates, experts)
            task_in = {t: mixed[:, i] for i, t in enumerate(TASKS)}
        else:
            bottom = tf.nn.relu(shared @ w["bottom/kernel"] + w["bottom/bias"])
            task_in = dict.fromkeys(TASKS, bottom)
        z = {t: tf.nn.relu(task_in[t] @ w[f"{t}/tower/kernel"] + w[f"{t}/tower/bias"]) for t in TASKS}

        cand_item, cand_cat = tf.gather(items, x["item"]), tf.gather(cats, x["category"])
        item_vec = cand_item[:, :d] + cand_cat[:, :d]
        item_bias = cand_item[:, d] + cand_cat[:, d]
        user_vec = z["recommend"] @ w["recommend/user/kernel"] + w["recommend/user/bias"]
        f_in = tf.concat([x["candidate_features"], z["recommend"]], axis=-1)
        f_hidden = tf.nn.relu(f_in @ w["recommend/features/kernel"] + w["recommend/features/bias"])
        recommend = (
            tf.reduce_sum(user_vec * item_vec, axis=-1)
            + item_bias
            + (f_hidden @ w["recommend/features/out"])[:, 0]
            + w["recommend/bias"][0]
            + tf.reduce_sum(x["candidate_features"] * w["recommend/wide"], axis=-1)
        )

        query = z["interest"] @ w["interest/query/kernel"] + w["interest/query/bias"]
        n_cat = c.category_buckets
        prior = w["interest/prior"]
        own = _scatter_rows(x["interest_cats"], x["interest_weights"], n_cat)
        recent = _scatter_rows(x["hist_cats"], x["hist_weights"], n_cat)
        # The softmax runs over the categories the model has learned (non-zero rows) or that this
        # batch names: a bucket nothing ever referenced stays exactly zero ("not learned") instead
        # of drifting to a learnt "never happens" vector that a new shop's category would inherit.
        named = tf.concat(
            [tf.reshape(x[k], [-1]) for k in ("hist_cats", "interest_cats", "category", "label_category")], 0
        )
        referenced = tf.math.unsorted_segment_max(tf.ones_like(named, tf.float32), named, n_cat) > 0
        known = (tf.reduce_any(tf.not_equal(cats, 0.0), axis=1) | referenced) & (tf.range(n_cat) > 0)
        interest = query @ tf.transpose(cats[:, :d]) + cats[:, d] + prior[0] * own + prior[1] * recent
        interest = tf.where(known[None, :], interest, NEG_INF)

        s_in = tf.concat([z["sentiment"], item_vec, text_pooled[:, :dt]], axis=-1)
        s_hidden = tf.nn.relu(s_in @ w["sentiment/hidden/kernel"] + w["sentiment/hidden/bias"])
        sentiment = (s_hidden @ w["sentiment/out"])[:, 0] + w["sentiment/bias"][0] + text_pooled[:, dt]
        rating = 3.0 + 2.0 * tf.tanh(
            (z["rating"] @ w["rating/out"])[:, 0] + w["rating/bias"][0] + text_pooled[:, dt + 1]
        )
        return {"recommend": recommend, "interest": interest, "sentiment": sentiment, "rating": rating}

    def numpy_weights(self) -> dict[str, np.ndarray]:
        return {name: v.numpy() for name, v in self.named.items()}


def _attended(hist: tf.Tensor, actions: tf.Tensor, w: dict[str, keras.Variable]) -> tf.Tensor:
    """The history [batch, history, dim] as one vector per user: each item's row plus its
    position's and action's rows, averaged with softmax weights of their dot products with a
    query made from the newest (position 0), scaled by ``1 / sqrt(dim)``; zero for an empty
    history (action code 0 pads)."""
    seq = hist + w["history/position"][None] + tf.gather(w["history/action"], actions)
    query = seq[:, 0] @ w["history/query/kernel"] + w["history/query/bias"]
    filled = actions > 0
    logits = tf.where(filled, tf.einsum("brd,bd->br", seq, query) * hist.shape[-1] ** -0.5, NEG_INF)
    weights = tf.nn.softmax(logits, axis=-1) * tf.cast(filled, logits.dtype)
    return tf.einsum("br,brd->bd", weights, seq)


def _scatter_rows(ids: tf.Tensor, weights: tf.Tensor, width: int) -> tf.Tensor:
    """Row-wise scatter-add: out[b, ids[b, j]] += weights[b, j], shape [batch, width]."""
    batch = tf.shape(ids)[0]
    flat = ids + tf.range(batch)[:, None] * width
    summed = tf.math.unsorted_segment_sum(tf.reshape(weights, [-1]), tf.reshape(flat, [-1]), batch * width)
    return tf.reshape(summed, [batch, width])
