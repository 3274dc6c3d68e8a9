"""Test doubles for the model, for this project's tests and for users writing their own: a model
small enough that building and scoring it takes milliseconds, and untrained snapshots of it."""

from __future__ import annotations

from model.config import ModelConfig, initial_weights
from model.snapshot import Snapshot


def tiny_config() -> ModelConfig:
    return ModelConfig(
        item_buckets=1 << 8, category_buckets=1 << 6, text_buckets=1 << 8, dim=8, text_dim=4,
        hidden=8, tower=8, experts=2, history=6, interests=4, text_features=16, batch_size=32,
    )


def untrained_snapshot(version: int, seed: int = 0, config: ModelConfig | None = None) -> Snapshot:
    config = config or tiny_config()
    return Snapshot(
        version=version, config=config, weights=initial_weights(config, seed),
        extra={"trained_until": 100.0 + version},
    )
