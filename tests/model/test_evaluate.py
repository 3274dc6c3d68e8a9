"""The evaluation's figures on small hand-made cases: segments, NDCG, discovery, pool recall,
coverage, per-class precision/recall and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.offline.baselines import TfidfLogReg
from model.offline.datasets import Interaction, LabeledReview
from model.offline.evaluate import (
    MethodScore,
    Tally,
    baseline_recommenders,
    classification_figures,
    expected_calibration_error,
    ndcg_gain,
    oversampled,
    prequential,
    replay_catalog,
    segments_of,
)
from state.user import UserState


def _user(clicks: list[tuple[str, float]]) -> UserState:
    user = UserState()
    for item, ts in clicks:
        user.apply_click(item, "view", ts, "c", 3600.0)
    return user


def test_ndcg_gain_of_a_single_relevant_item() -> None:
    assert ndcg_gain(0) == 1.0
    assert ndcg_gain(1) == pytest.approx(1 / math.log2(3))
    assert ndcg_gain(9) == pytest.approx(1 / math.log2(11))
    assert ndcg_gain(None) == 0.0


def test_segments_cold_warm_returning_new_session_and_discovery() -> None:
    assert segments_of(UserState(), set(), "a", 100.0) == ["cold", "discovery"]
    four = _user([("a", 0.0), ("b", 1.0), ("c", 2.0), ("d", 3.0)])
    assert segments_of(four, {"a", "b", "c", "d"}, "a", 10.0) == ["cold", "returning"]
    five = _user([("a", 0.0), ("b", 1.0), ("c", 2.0), ("d", 3.0), ("e", 4.0)])
    assert segments_of(five, {"a", "b", "c", "d", "e"}, "z", 10.0) == ["warm", "returning", "discovery"]
    # 30 minutes after the previous event: a new session; 29:59 is not.
    assert segments_of(five, {"e"}, "e", 4.0 + 1800.0) == ["warm", "returning", "new_session"]
    assert "new_session" not in segments_of(five, {"e"}, "e", 4.0 + 1799.0)
    # "touched" is the whole history, not only the recent items the state keeps.
    assert "discovery" not in segments_of(five, {"old"}, "old", 10.0)


def test_method_score_per_segment_pool_recall_and_coverage() -> None:
    score = MethodScore()
    score.add(0, ["warm", "returning"], ["a", "b"], in_pool=True)  # hit at rank 0
    score.add(None, ["cold", "discovery"], ["b", "c"], in_pool=False)  # miss, not even in the pool
    score.add(2, ["cold", "discovery"], ["c", "d", "e"], in_pool=True)  # hit at rank 2
    f = score.figures(catalog_items=10)
    assert f["hit_rate@10"] == pytest.approx(2 / 3)
    assert f["ndcg@10"] == pytest.approx((1 + 0.5) / 3)  # 1/log2(4) = 0.5
    assert (f["warm_hit_rate@10"], f["warm_ndcg@10"], f["warm_n"]) == (1.0, 1.0, 1)
    assert (f["cold_hit_rate@10"], f["cold_ndcg@10"], f["cold_n"]) == (0.5, 0.25, 2)
    assert (f["discovery_hit_rate@10"], f["discovery_n"]) == (0.5, 2)
    assert (f["returning_hit_rate@10"], f["returning_n"]) == (1.0, 1)
    assert (f["new_session_hit_rate@10"], f["new_session_n"]) == (0.0, 0)
    assert f["pool_recall"] == pytest.approx(2 / 3)
    assert f["discovery_pool_recall"] == 0.5 and f["warm_pool_recall"] == 1.0
    assert "new_session_pool_recall" not in f  # no positive there
    assert f["coverage"] == 0.5  # a, b, c, d, e of 10 items


def test_pool_recall_by_source_counts_each_source_and_those_alone() -> None:
    score = MethodScore()
    score.add(0, ["warm"], ["a"], in_pool=True, sources=["history", "covisitation"])
    score.add(None, ["warm"], ["b"], in_pool=True, sources=["covisitation"])
    score.add(None, ["cold"], ["c"], in_pool=True, sources=["popular"])
    score.add(None, ["cold"], ["d"], in_pool=False)
    f = score.figures(catalog_items=10)
    assert f["pool_recall"] == 0.75
    assert (f["pool_recall_covisitation"], f["pool_only_covisitation"]) == (0.5, 0.25)
    assert (f["pool_recall_history"], f["pool_only_history"]) == (0.25, 0.0)
    assert (f["pool_recall_popular"], f["pool_only_popular"]) == (0.25, 0.25)
    assert (f["pool_recall_category_popular"], f["pool_only_category_popular"]) == (0.0, 0.0)
    assert (f["warm_pool_recall_covisitation"], f["cold_pool_only_popular"]) == (1.0, 0.5)


def test_a_method_without_a_pool_reports_no_pool_recall() -> None:
    score = MethodScore()
    score.add(None, ["cold"], ["a"])
    assert not any("pool" in key for key in score.figures(5))
    assert score.tallies["cold"] == Tally(hits=0, gain=0.0, n=1)


def test_prequential_discovery_counts_only_items_new_to_the_user() -> None:
    """u1 views a, b, a, c: the second "a" is a repeat, every other positive is a discovery; the
    repeat baseline can only ever hit repeats, so its discovery hit rate is 0."""
    events = [Interaction("u1", item, "c", "view", 1000.0 + t) for t, item in enumerate("abac")]
    catalog, clock = replay_catalog(3600.0)
    methods = [m for m in baseline_recommenders(catalog, 3600.0) if m.name == "repeat"]
    result = prequential(
        events,
        methods,
        catalog,
        clock,
        is_positive=lambda e: True,
        interest_half_life_s=3600.0,
        popularity_half_life_s=3600.0,
    )
    f = result.results()["repeat"]
    assert f["discovery_n"] == 3 and f["discovery_hit_rate@10"] == 0.0
    assert f["hit_rate@10"] == 0.25  # the repeat of "a", at rank 1 (after "b")
    assert f["ndcg@10"] == pytest.approx(0.25 / math.log2(3))
    assert f["coverage"] == 2 / 3  # a and b were ever shown, of a, b, c


def test_expected_calibration_error() -> None:
    labels = np.array([1, 1, 0, 0])
    assert expected_calibration_error(labels, np.array([1.0, 1.0, 0.0, 0.0])) == 0.0
    # One bin [0.7, 0.8): mean score 0.75, positives 1/2 -> 0.25.
    assert expected_calibration_error(labels, np.array([0.75, 0.75, 0.75, 0.75])) == pytest.approx(0.25)
    # Two bins of two: [0.9, 1.0] holds 1, 1 scored 0.9 (gap 0.1); [0.2, 0.3) holds 0, 0 scored 0.2 (gap 0.2).
    assert expected_calibration_error(labels, np.array([0.9, 0.9, 0.2, 0.2])) == pytest.approx(0.15)


def test_classification_figures_per_class_when_negatives_are_rare() -> None:
    """Calling every review positive: 90% accuracy, but negative recall 0 and macro-F1 below 0.5."""
    labels = np.array([1] * 9 + [0])
    f = classification_figures(labels, np.full(10, 0.9))
    assert next(iter(f)) == "macro_f1"
    assert f["accuracy"] == pytest.approx(0.9)
    assert f["negative_recall"] == 0.0 and f["negative_precision"] == 0.0 and f["negative_n"] == 1
    assert f["positive_recall"] == 1.0 and f["positive_precision"] == pytest.approx(0.9)
    assert f["macro_f1"] == pytest.approx((0 + 2 * 9 / (2 * 9 + 1)) / 2)
    assert f["ece"] == pytest.approx(0.0)  # 90% positives scored 0.9: calibrated, yet useless


def test_balanced_baseline_finds_the_rare_class_the_plain_one_misses() -> None:
    texts = [f"fine nice item {i}" for i in range(95)] + [f"nice item broken {i}" for i in range(5)]
    labels = [1] * 95 + [0] * 5
    plain = TfidfLogReg().fit(texts, labels)
    balanced = TfidfLogReg(balanced=True).fit(texts, labels)
    assert (plain.name, balanced.name) == ("tfidf_logreg", "tfidf_logreg_balanced")
    broken = ["nice item broken again"]
    assert plain.predict_proba(broken)[0] > 0.5 > balanced.predict_proba(broken)[0]


def test_oversampled_repeats_the_rarer_class_to_about_the_others_count() -> None:
    rows = [LabeledReview(f"good {i}", 1, None, "c", "i") for i in range(10)]
    rows += [LabeledReview("bad", 0, None, "c", "i"), LabeledReview("awful", 0, None, "c", "i")]
    out = oversampled(rows)
    assert sum(r.label == 1 for r in out) == 10 and sum(r.label == 0 for r in out) == 10  # 2 x 10 / 2
    assert {r.text for r in out} == {r.text for r in rows}
    assert oversampled(rows[:3]) == rows[:3]  # one class only: unchanged
