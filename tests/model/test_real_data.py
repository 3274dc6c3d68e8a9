"""Checks on the real data sets in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import TINY

from model.offline import datasets as data
from model.offline.evaluate import ModelRecommender, baseline_recommenders, prequential, replay_catalog
from model.snapshot import Snapshot
from model.training import Trainer

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(
        not data.default_path("taobao").exists(), reason=f"real data sets not found in {data.data_dir()}"
    ),
]


def test_taobao_prefix_replay_runs_and_learns() -> None:
    """The first 3,000 events: every figure of every segment is computed, and the model never hits
    more than its candidate pool holds."""
    events = [e for e in data.read_taobao(data.default_path("taobao")) if isinstance(e, data.Interaction)][:3000]
    catalog, clock = replay_catalog(6 * 3600.0)
    model = ModelRecommender(Trainer(TINY, seed=0), catalog, interest_half_life_s=3 * 3600.0, train_every=128)
    result = prequential(
        events,
        [model, *baseline_recommenders(catalog, 6 * 3600.0)],
        catalog,
        clock,
        is_positive=lambda e: True,
        interest_half_life_s=3 * 3600.0,
        popularity_half_life_s=6 * 3600.0,
    )
    assert result.n == 3000
    figures = result.results()
    for f in figures.values():
        assert f["cold_n"] + f["warm_n"] == 3000 and 0 < f["discovery_n"] < 3000
        assert 0.0 < f["coverage"] <= 1.0
    for segment in ("", "cold_", "returning_", "discovery_"):  # the pool is the ceiling of the ranking
        assert figures["model"][f"{segment}hit_rate@10"] <= figures["model"][f"{segment}pool_recall"]
    assert all(np.isfinite(v) for losses in model.losses.values() for v in losses)
    assert model.trainer.counters["skipped_steps"] == 0


def test_reader_rejects_the_truncated_last_line() -> None:
    rows = list(data.read_taobao(data.default_path("taobao")))
    assert isinstance(rows[-1], data.Rejected)


def test_train_writes_a_checkpoint_a_warm_start_and_their_held_out_sentiment(tmp_path) -> None:
    """``shopguide train`` on the first rows of every data set: the checkpoint and the warm start
    it writes load, and both are scored on the review sets' held-out 20%."""
    from streams.tools.cli import main

    out, warm, report = tmp_path / "ckpt", tmp_path / "warm.sgs", tmp_path / "train.json"
    assert (
        main(
            [
                "train",
                "--out",
                str(out),
                "--warm-start",
                str(warm),
                "--json",
                str(report),
                "--limit",
                "600",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    payload = json.loads(report.read_text())
    assert Snapshot.from_bytes(warm.read_bytes()).version == payload["version"]
    assert payload["warm_start"]["bytes"] == warm.stat().st_size
    assert set(payload["held_out_sentiment"]) == {
        f"{name}/{kind}" for name in ("reviews-zh", "reviews-en") for kind in ("checkpoint", "warm_start")
    }
    for figures in payload["held_out_sentiment"].values():
        assert 0.0 <= figures["macro_f1"] <= 1.0 and 0.0 <= figures["accuracy"] <= 1.0
