"""Sentiment calibration and its decision threshold on synthetic logits with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from model.calibration import (
    MIN_PER_CLASS,
    decision_threshold,
    fit_calibration,
    fit_platt,
    macro_f1,
    negative_recall,
    sigmoid,
)
from model.config import ModelConfig
from model.errors import ConfigError
from model.offline.evaluate import classification_figures, expected_calibration_error


def _reviews(n: int, seed: int, negatives: float) -> tuple[np.ndarray, np.ndarray]:
    """True log-odds of ``n`` reviews with about ``negatives`` of them negative, and labels drawn
    from them."""
    rng = np.random.default_rng(seed)
    log_odds = rng.normal(np.log((1 - negatives) / negatives), 2.0, n)
    return log_odds, (rng.random(n) < sigmoid(log_odds)).astype(int)


def test_macro_f1_threshold_is_chosen_from_the_scores_it_is_given() -> None:
    """Negatives scored 0.6-0.7, positives 0.8-0.9: 0.5 calls all positive, the chosen threshold
    separates them (the lowest of the equally perfect ones nearest 0.5)."""
    labels = np.array([0, 0, 1, 1, 1, 1])
    scores = np.array([0.6, 0.7, 0.8, 0.85, 0.9, 0.9])
    threshold = decision_threshold(labels, scores)
    assert threshold == pytest.approx(0.71)
    assert classification_figures(labels, scores, threshold)["macro_f1"] == 1.0
    assert classification_figures(labels, scores)["negative_recall"] == 0.0
    # Scores already separated at 0.5: 0.5 stays.
    assert decision_threshold(labels, np.array([0.1, 0.2, 0.8, 0.8, 0.9, 0.9])) == 0.5


def test_a_negative_recall_floor_trades_macro_f1_for_found_negatives() -> None:
    """Four negatives, one scored among the positives: the best macro-F1 (0.41-0.75, 0.5 kept)
    misses it; a floor of 1.0 raises the threshold just past it (0.86), at a lower macro-F1."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    scores = np.array([0.2, 0.3, 0.4, 0.85, 0.75, 0.8, 0.9, 0.9, 0.95, 0.95])
    free = decision_threshold(labels, scores)
    assert free == 0.5
    assert negative_recall(labels, (scores >= free).astype(int)) == 0.75
    floored = decision_threshold(labels, scores, negative_recall_floor=1.0)
    assert floored == pytest.approx(0.86)
    assert negative_recall(labels, (scores >= floored).astype(int)) == 1.0
    assert macro_f1(labels, (scores >= floored).astype(int)) < macro_f1(labels, (scores >= free).astype(int))
    # A floor already met by the best macro-F1 changes nothing.
    assert decision_threshold(labels, scores, negative_recall_floor=0.75) == free


def test_an_unreachable_floor_takes_the_lowest_threshold_with_the_highest_recall() -> None:
    """A negative scored 1.0 is never found below the top candidate; the others all are from 0.41
    on, so no threshold reaches recall 1 and the lowest reaching 0.75 is kept."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    scores = np.array([0.2, 0.3, 0.4, 1.0, 0.8, 0.9, 0.9])
    assert decision_threshold(labels, scores, negative_recall_floor=1.0) == pytest.approx(0.41)


def test_macro_f1_is_the_mean_of_both_classes_f1() -> None:
    labels = np.array([1, 1, 1, 0])
    assert macro_f1(labels, np.array([1, 1, 1, 1])) == pytest.approx((0 + 6 / 7) / 2)
    assert macro_f1(labels, labels) == 1.0


def test_platt_scaling_recovers_a_known_distortion() -> None:
    """Logits that over-state the negatives (what class weights do) as ``(log_odds + 3) / 2``:
    the fit inverts it, slope 2 and intercept -3."""
    log_odds, labels = _reviews(40_000, 0, negatives=0.1)
    slope, intercept = fit_platt((log_odds + 3.0) / 2.0, labels)
    assert slope == pytest.approx(2.0, abs=0.08) and intercept == pytest.approx(-3.0, abs=0.12)


def test_a_fitted_calibration_is_calibrated_on_new_reviews_and_finds_the_rare_class() -> None:
    log_odds, labels = _reviews(4000, 1, negatives=0.05)
    distorted = 0.4 * log_odds - 1.5
    fitted = fit_calibration(distorted, labels)
    assert fitted is not None
    test_odds, test_labels = _reviews(20_000, 2, negatives=0.05)
    test_logits = 0.4 * test_odds - 1.5
    raw = sigmoid(test_logits)
    assert expected_calibration_error(test_labels, raw) > 0.15
    scores = fitted.scores(test_logits)
    assert expected_calibration_error(test_labels, scores) < 0.02
    figures = classification_figures(test_labels, scores, fitted.threshold)
    assert figures["macro_f1"] > classification_figures(test_labels, scores)["macro_f1"]


def test_too_few_reviews_of_a_class_fit_nothing() -> None:
    labels = np.array([0] * (MIN_PER_CLASS - 1) + [1] * 500)
    assert fit_calibration(np.linspace(-3, 3, len(labels)), labels) is None
    labels[:MIN_PER_CLASS] = 0
    assert fit_calibration(np.linspace(-3, 3, len(labels)), labels) is not None


def test_the_calibration_travels_in_the_config_and_old_configs_keep_today_s_rule() -> None:
    log_odds, labels = _reviews(2000, 3, negatives=0.2)
    fitted = fit_calibration(log_odds, labels)
    assert fitted is not None
    config = fitted.applied_to(ModelConfig())
    again = ModelConfig.from_dict(config.to_dict())
    assert again == config
    assert again.sentiment_calibration == (fitted.slope, fitted.intercept)
    assert again.sentiment_threshold == fitted.threshold
    old = {k: v for k, v in ModelConfig().to_dict().items() if not k.startswith("sentiment_")}
    assert ModelConfig.from_dict(old).sentiment_calibration == (1.0, 0.0)
    assert ModelConfig.from_dict(old).sentiment_threshold == 0.5


@pytest.mark.parametrize(
    "change",
    [
        {"sentiment_threshold": 1.0},
        {"sentiment_threshold": "0.5"},
        {"sentiment_calibration": (1.0, float("nan"))},
        {"sentiment_calibration": (1.0,)},
        {"sentiment_calibration": ("a", 0.0)},
        {"sentiment_negative_recall": 1.5},
        {"sentiment_negative_recall": float("nan")},
    ],
)
def test_a_malformed_calibration_is_a_config_error(change: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ModelConfig().with_(**change)
