"""Sentiment scores that mean what they say, and the decision rule that labels them.

The sentiment head learns with class weights (``ModelConfig.sentiment_class_weights``), so its raw
probability over-states the rare class. Platt scaling (a one-feature logistic regression on the
logit) fitted on reviews the weights did not learn from turns it back into P(positive); the
decision threshold is then chosen on the same reviews for the best macro-F1, so the label does not
default to the majority class; a shop may require it to find a share of the negative reviews
(``ModelConfig.sentiment_negative_recall``). Offline training fits both on its validation share;
the online trainer on the reviews it scored before learning from them (test-then-train). Pure
numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.config import ModelConfig

#: Thresholds considered: multiples of 0.01 in [0.01, 0.99], nearest 0.5 first (kept on ties).
_CANDIDATES = np.array(sorted(np.round(np.arange(1, 100) / 100, 2), key=lambda t: abs(t - 0.5)))
#: Fewest reviews of each class a calibration is fitted on; with fewer, the previous one stays.
MIN_PER_CLASS = 20


@dataclass(frozen=True)
class SentimentCalibration:
    slope: float
    intercept: float
    threshold: float

    def scores(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * np.asarray(logits, np.float64) + self.intercept)

    def applied_to(self, config: ModelConfig) -> ModelConfig:
        """``config`` scoring and labelling reviews with this calibration."""
        return config.with_(sentiment_calibration=(self.slope, self.intercept), sentiment_threshold=self.threshold)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 of the negative (0) and positive (1) classes; a class never predicted right has F1 0."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    wrong = int(np.sum(predicted != labels))  # with two classes, each class's fp + fn
    f1s = []
    for cls in (0, 1):
        tp = int(np.sum((predicted == cls) & (labels == cls)))
        f1s.append(2 * tp / (2 * tp + wrong) if tp else 0.0)
    return float(np.mean(f1s))


def negative_recall(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Share of the negative (0) reviews predicted negative; 0 when there are none."""
    negatives = np.asarray(labels) == 0
    return float(np.mean(np.asarray(predicted)[negatives] == 0)) if negatives.any() else 0.0


def decision_threshold(labels: np.ndarray, probabilities: np.ndarray, negative_recall_floor: float = 0.0) -> float:
    """The threshold (a multiple of 0.01 in [0.01, 0.99]) with the best macro-F1 when
    ``probabilities >= threshold`` is "positive", among those that find at least
    ``negative_recall_floor`` of the negative reviews, the one nearest 0.5 among equals. When none
    does, the lowest threshold reaching the highest negative recall any reaches. Choose it on
    held-out reviews, never on those it is then measured on."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    best, best_f1 = None, -1.0
    fallback, fallback_recall = 0.5, -1.0
    for t in _CANDIDATES:
        predicted = (probabilities >= t).astype(int)
        recall = negative_recall(labels, predicted)
        if recall > fallback_recall or (recall == fallback_recall and t < fallback):
            fallback, fallback_recall = float(t), recall
        if recall >= negative_recall_floor:
            f1 = macro_f1(labels, predicted)
            if f1 > best_f1:
                best, best_f1 = float(t), f1
    return fallback if best is None else best


def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """``(slope, intercept)`` minimising the log loss of ``sigmoid(slope * logit + intercept)``
    against Platt's smoothed targets ((n+ + 1) / (n+ + 2) and 1 / (n- + 2): no class is ever
    certain), by Newton's method with step halving (every step lowers the loss, also on the
    huge logits of an over-confident head, where the plain Newton step overshoots)."""
    x = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    target = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    design = np.stack([x, np.ones_like(x)], axis=1)

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    w = np.array([1.0, 0.0])
    current = loss(w)
    for _ in range(iterations):
        p = sigmoid(design @ w)
        grad = design.T @ (p - target)
        hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * len(x) * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2
        if scale <= 1e-6:
            break
        w = w - scale * step
        previous, current = current, loss(w)
        if previous - current < 1e-12 * max(1.0, abs(current)):
            break
    return float(w[0]), float(w[1])


def fit_calibration(
    logits: np.ndarray, labels: np.ndarray, negative_recall_floor: float = 0.0
) -> SentimentCalibration | None:
    """Platt scaling and the :func:`decision_threshold` on its scores, from held-out ``logits`` and
    their ``labels`` (1 positive); None with fewer than :data:`MIN_PER_CLASS` reviews of either
    class."""
    labels = np.asarray(labels)
    positives = int(np.sum(labels == 1))
    if min(positives, len(labels) - positives) < MIN_PER_CLASS:
        return None
    slope, intercept = fit_platt(logits, labels)
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        return None
    scores = SentimentCalibration(slope, intercept, 0.5).scores(logits)
    return SentimentCalibration(slope, intercept, decision_threshold(labels, scores, negative_recall_floor))
