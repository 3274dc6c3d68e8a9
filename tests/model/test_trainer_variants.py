"""Trainer variants declared in a setting: what they may change, checked at start."""

from __future__ import annotations

import asyncio
import json

import pytest

from model.config import ModelConfig
from model.trainer_variants import parse_variants, variant_config
from streams.errors import SettingsError
from streams.learning.variant_trainer import run_variant_trainer
from streams.settings import Settings
from streams.topics import Topics

FAST = {"fast": {"learning_rate": 0.004, "item_learning_rate": 0.4, "task_weights": {"recommend": 2.0, "rating": 1.0}}}


def test_a_variant_changes_only_its_training_settings() -> None:
    variants = parse_variants(json.dumps(FAST))
    config = variant_config(ModelConfig(), variants["fast"])
    assert (config.learning_rate, config.item_learning_rate) == (0.004, 0.4)
    assert config.task_weights == {"recommend": 2.0, "interest": 0.5, "sentiment": 1.0, "rating": 1.0}
    assert config.with_(**{f: getattr(ModelConfig(), f) for f in variants["fast"]}) == ModelConfig()
    assert parse_variants("") == {} and parse_variants("  ") == {}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not JSON"),
        ('["fast"]', "expected an object"),
        ('{"Fast!": {}}', "variant name 'Fast!'"),
        ('{"fast": 1}', "variant fast: expected an object"),
        ('{"fast": {"dim": 64}}', "['dim'] cannot change"),
        ('{"fast": {"learning_rate": 0}}', "learning_rate must be a positive number"),
        ('{"fast": {"wide_learning_rate": true}}', "wide_learning_rate must be a positive number"),
        ('{"fast": {"task_weights": {"nap": 1.0}}}', "unknown tasks"),
        ('{"fast": {"task_weights": {"recommend": -1.0}}}', "task weights must be >= 0"),
    ],
)
def test_a_broken_variant_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_variants(text)
    assert says in str(caught.value)
    with pytest.raises(SettingsError, match="SHOPGUIDE_TRAINER_VARIANTS"):
        Settings.from_env({"SHOPGUIDE_TRAINER_VARIANTS": text})


def test_each_declared_variant_has_a_compacted_snapshot_topic() -> None:
    settings = Settings.from_env({"SHOPGUIDE_TRAINER_VARIANTS": json.dumps({**FAST, "slow": {}})})
    topics = Topics(settings)
    specs = {s.name: s for s in topics.specs()}
    for name in ("fast", "slow"):
        spec = specs[topics.variant_snapshots(name)]
        assert spec.name == f"{topics.snapshots}.{name}" and spec.partitions == 1
        assert spec.config == {"cleanup.policy": "compact"}
    assert len(specs) == len(Topics(Settings()).specs()) + 2


def test_the_trainer_command_refuses_an_undeclared_variant_or_no_key() -> None:
    declared = Settings.from_env({"SHOPGUIDE_TRAINER_VARIANTS": json.dumps(FAST)})
    with pytest.raises(SettingsError, match=r"'slow' is not in SHOPGUIDE_TRAINER_VARIANTS \(declared: fast\)"):
        asyncio.run(run_variant_trainer(declared, "slow"))
    with pytest.raises(SettingsError, match="SHOPGUIDE_SNAPSHOT_KEY"):
        asyncio.run(run_variant_trainer(declared, "fast"))
