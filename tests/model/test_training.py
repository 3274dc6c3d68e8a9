"""The trainer's contracts: output shapes, masks, determinism, resumption, and agreement between
the Keras network and the numpy scorer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from model_fixtures import TINY

from model.config import TASKS
from model.examples import Example, encode_examples
from model.features import UserContext
from model.losses import present, task_losses, total_loss
from model.scoring import NumpyNet
from model.snapshot import Snapshot
from model.training import Trainer


@pytest.fixture(scope="module")
def trained(stream) -> Trainer:
    trainer = Trainer(TINY, seed=1)
    for _ in range(2):
        trainer.learn_many(stream.examples)
    return trainer


def test_output_shapes(trained, stream) -> None:
    out = trained.predict(stream.examples[:7])
    assert out["recommend"].shape == (7,)
    assert out["interest"].shape == (7, TINY.category_buckets)
    assert out["sentiment"].shape == (7,) and out["rating"].shape == (7,)
    assert np.all((out["rating"] >= 1) & (out["rating"] <= 5))
    assert np.all(out["interest"][:, 0] < -1e8)  # bucket 0 (unknown) is never predicted


def test_losses_are_finite_and_fall(stream) -> None:
    trainer = Trainer(TINY, seed=0)
    first = trainer.learn_many(stream.examples)
    for _ in range(3):
        last = trainer.learn_many(stream.examples)
    assert set(first) == set(TASKS)
    assert all(np.isfinite(v) for v in last.values())
    assert last["sentiment"] < first["sentiment"] and last["recommend"] < first["recommend"]


def test_a_batch_that_is_not_finite_changes_no_weight(stream) -> None:
    trainer = Trainer(TINY, seed=0)
    trainer.learn_many(stream.examples[:64])
    before = trainer.net.numpy_weights()
    clicks = [e for e in stream.examples if e.engaged is not None][:16]
    poisoned = [dataclasses.replace(e, candidate=(float("inf"),) * len(e.candidate)) for e in clicks]
    trainer.learn_many(poisoned)
    assert trainer.counters["skipped_steps"] == 1
    after = trainer.net.numpy_weights()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def _gradients(trainer: Trainer, examples) -> dict[str, np.ndarray]:
    inputs, targets = encode_examples(examples, trainer.config)
    names = list(trainer.net.named)
    with tf.GradientTape() as tape:
        out = trainer.net(inputs)
        loss = total_loss(
            task_losses(out, targets), present(targets), trainer.config, trainer.net.named["task_log_vars"]
        )
    grads = tape.gradient(loss, [trainer.net.named[n].value for n in names])
    return {
        n: (np.zeros(1) if g is None else tf.convert_to_tensor(g).numpy()) for n, g in zip(names, grads, strict=True)
    }


def test_masked_tasks_contribute_no_gradient(trained, stream) -> None:
    reviews = [e for e in stream.examples if e.positive is not None][:16]
    grads = _gradients(trained, reviews)
    for name in (
        "recommend/features/out",
        "recommend/user/kernel",
        "recommend/wide",
        "interest/query/kernel",
        "interest/prior",
    ):
        assert not np.any(grads[name]), name
    assert np.any(grads["sentiment/out"])
    clicks = [e for e in stream.examples if e.engaged is not None][:16]
    grads = _gradients(trained, clicks)
    for name in ("sentiment/out", "rating/out"):
        assert not np.any(grads[name]), name
    assert np.any(grads["recommend/features/out"])
    assert np.any(grads["recommend/wide"])


def test_a_task_weighted_zero_is_left_out(stream) -> None:
    alone = Trainer(TINY.with_(task_weights={"sentiment": 1.0}), seed=0)
    losses = alone.learn_many(stream.examples[:64])
    assert "recommend" in losses  # still reported...
    grads = _gradients(alone, [e for e in stream.examples if e.engaged is not None][:16])
    assert not np.any(grads["recommend/features/out"])  # ...but never learnt


def test_reviews_alone_train_the_deep_text_part(stream) -> None:
    """A review's shared input starts exactly zero (empty user context, zero text rows): the
    ReLU layers' positive starting biases let its gradient through, so training on reviews alone
    moves the text rows' deep columns, not only their wide (per-n-gram) weights."""
    trainer = Trainer(TINY.with_(task_weights={"sentiment": 1.0}), seed=0)
    reviews = [e for e in stream.examples if e.positive is not None]
    grads = _gradients(trainer, reviews[:16])
    assert np.any(grads["experts/bias"]) and np.any(grads["sentiment/hidden/bias"])
    assert np.any(grads["text_table"][:, : TINY.text_dim])
    trainer.learn_many(reviews)
    deep = trainer.net.named["text_table"].numpy()[:, : TINY.text_dim]
    assert np.any(deep)


def test_text_dropout_hides_review_ngrams_only(stream) -> None:
    trainer = Trainer(TINY.with_(text_dropout=0.5), seed=0)
    batch = [e for e in stream.examples if e.positive is not None][:8]
    batch += [e for e in stream.examples if e.engaged is not None][:8]
    inputs, targets = encode_examples(batch, trainer.config)
    before = inputs["text_weights"].copy()
    trainer._drop_review_context(inputs, targets)
    after = inputs["text_weights"]
    assert not np.any(after[8:]) and not np.any(before[8:])  # clicks carry no text
    kept = after[:8] > 0
    assert 0 < kept.sum() < (before[:8] > 0).sum()
    np.testing.assert_allclose(after[:8][kept], 2.0 * before[:8][kept], rtol=1e-6)


def test_same_seed_same_model(stream) -> None:
    a, b = Trainer(TINY, seed=3), Trainer(TINY, seed=3)
    for t in (a, b):
        t.learn_many(stream.examples[:300])
    wa, wb = a.export().weights, b.export().weights
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name])
    c = Trainer(TINY, seed=4)
    assert not np.array_equal(c.export().weights["experts/kernel"], wa["experts/kernel"])


def test_resume_from_a_checkpoint_continues_exactly(stream) -> None:
    part1, part2 = stream.examples[:128], stream.examples[128:256]
    straight = Trainer(TINY, seed=5)
    straight.learn_many(part1)
    checkpoint = Snapshot.from_bytes(straight.export(with_optimizer=True).to_bytes())
    straight.learn_many(part2)
    resumed = Trainer(TINY, seed=5, resume=checkpoint)
    resumed._rng = np.random.default_rng(5)  # same dropout draws as the uninterrupted run
    straight_rng = np.random.default_rng(5)
    straight_rng.random(128)  # the draws of part 1 (two batches of 64)
    resumed._rng = straight_rng
    resumed.learn_many(part2)
    assert resumed.version == checkpoint.version
    a, b = straight.export().weights, resumed.export().weights
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-6, err_msg=name)


def test_export_versions_are_monotonic(trained) -> None:
    v1, v2 = trained.export().version, trained.export().version
    assert v2 == v1 + 1


@pytest.fixture(scope="module")
def attending(stream) -> Trainer:
    trainer = Trainer(TINY.with_(history_attention=True), seed=1)
    for _ in range(2):
        trainer.learn_many(stream.examples)
    return trainer


@pytest.mark.parametrize("which", ["trained", "attending"])
def test_numpy_scorer_matches_keras(which, stream, request) -> None:
    trainer: Trainer = request.getfixturevalue(which)
    config = trainer.config
    examples = stream.examples[:40] + [e for e in stream.examples if e.positive is not None][:10]
    keras_out = trainer.predict(examples)
    net = NumpyNet(trainer.export())
    x, _ = encode_examples(examples, config)
    z, text = net.towers(x)
    rec = net.recommend(z["recommend"], np.arange(len(examples)), x["item"], x["category"], x["candidate_features"])
    np.testing.assert_allclose(rec, keras_out["recommend"], atol=1e-4)
    np.testing.assert_allclose(
        net.sentiment(z["sentiment"], text, x["item"], x["category"]), keras_out["sentiment"], atol=1e-4
    )
    np.testing.assert_allclose(net.rating(z["rating"], text), keras_out["rating"], atol=1e-4)
    buckets = np.arange(1, config.category_buckets)
    np.testing.assert_allclose(
        net.interest(z["interest"], x, buckets, unlearned="mask"), keras_out["interest"][:, 1:], atol=1e-4
    )


def test_the_attended_history_reads_order_and_actions(attending, stream) -> None:
    """The same items in another order, or with other actions, give the user another vector
    with ``history_attention`` (the pooled history alone weighs order and action by fixed
    decays); an empty history attends to nothing."""
    net = NumpyNet(attending.export())
    user = max((e.user for e in stream.examples), key=lambda u: len(set(u.history)))
    assert len(user.history) >= 3
    reordered = dataclasses.replace(user, history=[*user.history[1:], user.history[0]])
    bought = dataclasses.replace(user, history=[(i, 4, c) for i, _, c in user.history])
    x = encode_examples([Example(u, "i1", "c") for u in (user, reordered, bought)], attending.config)[0]
    hist = net.w["item_table"][x["hist_items"], : TINY.dim] + net.w["category_table"][x["hist_cats"], : TINY.dim]
    attended = net._attended(hist, x["hist_actions"])
    assert not np.allclose(attended[0], attended[1])
    assert not np.allclose(attended[0], attended[2])
    empty = encode_examples([Example(UserContext.empty(), "i1", "c")], attending.config)[0]
    assert not net._attended(np.ones((1, TINY.history, TINY.dim), np.float32), empty["hist_actions"]).any()


def test_shared_bottom_variant_trains(stream) -> None:
    trainer = Trainer(TINY.with_(experts=0, uncertainty_weighting=True), seed=0)
    losses = trainer.learn_many(stream.examples[:200])
    assert all(np.isfinite(v) for v in losses.values())
    assert np.any(trainer.export().weights["task_log_vars"] != 0)


def _reviews(negatives: int, positives: int) -> list[Example]:
    rows = [("refund broke tore", 0)] * negatives + [("lovely soft dress", 1)] * positives
    return [Example(UserContext.empty(), "i1", "c", text=t, positive=y) for t, y in rows]


def test_class_weights_make_a_rare_negative_count_as_much_as_the_positives() -> None:
    """One negative among 31 positives: weighted, it carries half of the batch's sentiment loss;
    unweighted, 1/32 of it. Counters keep the reviews learnt per class."""
    batch = _reviews(1, 31)
    logits = {}
    for weighted in (False, True):
        trainer = Trainer(TINY.with_(sentiment_class_weights=weighted, text_dropout=0.0), seed=0)
        trainer.learn_many(batch)
        assert (trainer.counters["sentiment/negative"], trainer.counters["sentiment/positive"]) == (1, 31)
        logits[weighted] = trainer.predict(batch[:1] + batch[-1:])["sentiment"]
    # The negative's logit falls further with weights, the positives' rises less.
    assert logits[True][0] < logits[False][0]
    assert logits[True][1] < logits[False][1]


def test_exports_carry_a_calibration_fitted_on_reviews_scored_before_learning() -> None:
    trainer = Trainer(TINY, seed=0)
    trainer.learn_many(_reviews(5, 50))  # too few negatives: today's rule stays
    first = trainer.export().config
    assert (first.sentiment_calibration, first.sentiment_threshold) == ((1.0, 0.0), 0.5)
    examples = _reviews(40, 200)
    order = np.random.default_rng(0).permutation(len(examples))
    trainer.learn_many([examples[i] for i in order])
    config = trainer.export().config
    assert config.sentiment_calibration != (1.0, 0.0)
    assert 0.0 < config.sentiment_threshold < 1.0
    resumed = Trainer(TINY, resume=trainer.export(with_optimizer=True))
    assert resumed.config.sentiment_calibration == config.sentiment_calibration


def test_reviews_are_scored_for_calibration_as_serving_scores_them(stream) -> None:
    """The logits kept for calibration are the serving model's (text alone, no user, item or
    category) of the weights before the batch, though the batch's reviews carry all three."""
    from model.features import user_context
    from model.scoring import NeuralServingModel
    from state.catalog import Catalog
    from state.user import UserState

    trainer = Trainer(TINY, seed=0)
    trainer.learn_many(stream.examples[:64])
    before = NeuralServingModel(trainer.export(), Catalog(3600.0), interest_half_life_s=3600.0)
    shopper = UserState()
    shopper.apply_click("i5", "view", 100.0, "c", 3600.0)
    context = user_context(shopper, 100.0, TINY, 3600.0)
    texts = [f"the zipper broke {i}" if i % 3 else f"great fit, love it {i}" for i in range(TINY.batch_size)]
    reviews = [Example(context, "i9", "c2", text=t, positive=i % 2) for i, t in enumerate(texts)]
    held = len(trainer._held)
    trainer.learn_many(reviews)
    kept = np.array([logit for logit, _ in list(trainer._held)[held:]])
    np.testing.assert_allclose(kept, before.sentiment_logits(texts), atol=1e-5)
