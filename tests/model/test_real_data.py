"""Checks on the real data sets in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import TINY

from model import data
from model.evaluate import ModelRecommender, baseline_recommenders, prequential, replay_catalog
from model.training import Trainer

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not data.default_path("taobao").exists(),
                       reason=f"real data sets not found in {data.data_dir()}"),
]


def test_taobao_prefix_replay_runs_and_learns() -> None:
    events = [e for e in data.read_taobao(data.default_path("taobao"))
              if isinstance(e, data.Interaction)][:3000]
    catalog, clock = replay_catalog(6 * 3600.0)
    model = ModelRecommender(Trainer(TINY, seed=0), catalog, interest_half_life_s=3 * 3600.0,
                             train_every=128)
    result = prequential(events, [model, *baseline_recommenders(catalog, 6 * 3600.0)], catalog,
                         clock, is_positive=lambda e: True, interest_half_life_s=3 * 3600.0,
                         popularity_half_life_s=6 * 3600.0)
    assert result.n == 3000
    assert all(np.isfinite(v) for losses in model.losses.values() for v in losses)
    assert model.trainer.counters["skipped_steps"] == 0


def test_reader_rejects_the_truncated_last_line() -> None:
    rows = list(data.read_taobao(data.default_path("taobao")))
    assert isinstance(rows[-1], data.Rejected)
