"""Trainer variants: other training settings for a second trainer, by name.

An experiment's arm may be served by a model a second trainer learns with other settings from the
same training feed (``trainer:<name>``, :mod:`model.experiments`). A variant changes only how the
model learns (learning rates, task weights), never its shapes, so its snapshots fit the catalog,
indexes and serving code of the main model. The variants are a setting
(``SHOPGUIDE_TRAINER_VARIANTS``): a JSON object of names and the fields they change.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from model.config import ModelConfig
from model.errors import ConfigError

#: The training settings a variant may change.
VARIANT_FIELDS = ("learning_rate", "text_learning_rate", "item_learning_rate", "wide_learning_rate", "task_weights")
#: A variant's name: it names a topic and labels metrics.
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_RATES = tuple(f for f in VARIANT_FIELDS if f.endswith("learning_rate"))


def parse_variants(text: str) -> dict[str, dict[str, Any]]:
    """The variants a setting declares (empty: none); ValueError saying what is wrong."""
    if not text.strip():
        return {}
    try:
        variants = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(variants, dict):
        raise ValueError('expected an object: {"name": {"learning_rate": 0.004}}')
    for name, fields in variants.items():
        if not NAME.match(name):
            raise ValueError(f"variant name {name[:40]!r}: lowercase letters, digits, - and _, at most 32")
        if not isinstance(fields, dict):
            raise ValueError(f"variant {name}: expected an object of training settings")
        unknown = set(fields) - set(VARIANT_FIELDS)
        if unknown:
            raise ValueError(f"variant {name}: {sorted(unknown)} cannot change (only {', '.join(VARIANT_FIELDS)})")
        for rate in _RATES:
            value = fields.get(rate, 1.0)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"variant {name}: {rate} must be a positive number, got {value!r}")
        try:
            variant_config(ModelConfig(), fields)
        except (ConfigError, TypeError, ValueError) as exc:
            raise ValueError(f"variant {name}: {exc}") from None
    return variants


def variant_config(config: ModelConfig, fields: dict[str, Any]) -> ModelConfig:
    """``config`` learning as the variant does (the task weights it names replace those of
    ``config``, the others stay)."""
    changes = dict(fields)
    if "task_weights" in changes:
        changes["task_weights"] = {**config.task_weights, **changes["task_weights"]}
    return config.with_(**changes)
