"""The offline commands end to end on small generated files: they run and write the JSON shape
other tools read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import REVIEWS

from streams.tools.cli import main


def test_evaluate_recommend_json(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for t in range(400):
        item = int(rng.integers(40))
        action = ("pv", "pv", "pv", "cart", "fav", "buy")[int(rng.integers(6))]
        rows.append(f"{rng.integers(25)},{item},{item % 5},{action},{1511661600 + t}")
    path = tmp_path / "stream.csv"
    path.write_text("\n".join(rows) + "\n301780,543546,4181361,pv,15\n")
    out = tmp_path / "rec.json"
    plot = tmp_path / "rec.png"
    assert (
        main(
            [
                "evaluate",
                "recommend",
                "--format",
                "taobao",
                "--path",
                str(path),
                "--json",
                str(out),
                "--train-every",
                "64",
                "--window",
                "100",
                "--plot",
                str(plot),
                "--compare-shares",
                "0,1",
            ]
        )
        == 0
    )
    payload = json.loads(out.read_text())
    assert payload["task"] == "recommend" and payload["n"] == 400
    assert set(payload["results"]) == {
        "model",
        "model_new_share_0",
        "model_new_share_1",
        "popularity",
        "popularity_unseen",
        "recency_popularity",
        "covisitation",
        "covisitation_unseen",
        "cooccurrence",
        "repeat",
    }
    for figures in payload["results"].values():
        assert 0.0 <= figures["ndcg@10"] <= figures["hit_rate@10"] <= 1.0
        assert figures["cold_n"] + figures["warm_n"] == payload["n"]
        assert 0.0 < figures["coverage"] <= 1.0
    model = payload["results"]["model"]
    assert model["hit_rate@10"] <= model["pool_recall"] <= 1.0
    # Every positive in the pool was offered by a source; the history offers only repeats.
    sources = ("history", "covisitation", "category_popular", "popular")
    alone = sum(model[f"pool_only_{s}"] for s in sources)
    assert alone <= model["pool_recall"] <= sum(model[f"pool_recall_{s}"] for s in sources)
    assert model["discovery_pool_recall_history"] == 0.0 < model["pool_recall_history"]
    # The model as published (a share of 0.3 new items) and its ranking with other shares.
    assert payload["new_share"] == 0.3
    views = [payload["results"][f"model_new_share_{s}"] for s in (0, 1)]
    assert views[0]["warm_n"] == model["warm_n"] and views[0]["hit_rate@10"] != views[1]["hit_rate@10"]
    best = [payload["best_baseline"], *(v["best_baseline"] for v in payload["segments"].values())]
    assert not any(name.startswith("model") for name in best)  # views of the model are no baselines
    assert set(payload["segments"]) == {"all", "cold", "warm", "returning", "new_session", "discovery"}
    assert plot.stat().st_size > 1000


def test_evaluate_sentiment_json(tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    lines = ["cat,label,review"] + [f"shop{i % 2},{label},{text}" for i, (text, _, label) in enumerate(REVIEWS * 12)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "sent.json"
    args = ["evaluate", "sentiment", "--path", str(path), "--json", str(out), "--epochs", "1", "--folds", "2"]
    assert main([*args, "--negative-recall", "0.9"]) == 0
    payload = json.loads(out.read_text())
    assert payload["task"] == "sentiment" and payload["n"] == len(REVIEWS) * 12 // 5 + 1
    assert payload["config"]["sentiment_negative_recall"] == 0.9 and payload["folds"] == 2
    methods = ("model", "model_validation_calibrated", "model_uncalibrated", "tfidf_logreg", "tfidf_logreg_balanced")
    assert set(payload["results"]) == set(methods) and set(payload["macro_f1"]) == set(methods)
    for method in methods:
        figures = payload["results"][method]
        for key in ("macro_f1", "accuracy", "negative_recall", "positive_precision", "ece"):
            assert 0.0 <= figures[key] <= 1.0
        assert figures["negative_n"] + figures["positive_n"] == payload["n"]
    # Published: the calibration of the out-of-fold scores; beside it, the validation share's.
    for method in ("model", "model_validation_calibrated"):
        model = payload["results"][method]
        assert 0.0 < model["threshold"] < 1.0 and len(model["calibration"]) == 2


def test_train_refuses_an_out_directory_holding_a_run_before_training(tmp_path) -> None:
    from model.config import ModelConfig, initial_weights
    from model.snapshot import Snapshot, SnapshotStore

    config = ModelConfig(item_buckets=64, category_buckets=16, text_buckets=64)
    SnapshotStore(tmp_path).save(Snapshot(version=1, config=config, weights=initial_weights(config, 0)))
    # No data directory needed: it must stop before reading any (a run takes minutes).
    with pytest.raises(SystemExit, match="already holds"):
        main(["train", "--out", str(tmp_path)])
