"""Which events become training examples, and how they travel to the trainer.

Examples are built from the user's state *before* the event (no peeking at the future) with the
serving model's own features and retrieval, so the trainer learns on exactly what serving sees.
They are packed many to a record on the single-partition training topic, so that one click costs
no extra Kafka message, and are sent with the batch's other outputs: durable before the batch is
acknowledged, like everything else the batch produced.
"""

from __future__ import annotations

import msgpack
import numpy as np

from model.examples import ExampleConfig, click_record, pack_examples, review_example
from model.scoring import NeuralServingModel
from model.serving import ServingModel
from state.catalog import Catalog
from state.user import UserState
from streams.events import Click, Review

#: Records on the training topic stay well below every broker's default message limit.
RECORD_BYTES = 256 * 1024


def pack(examples: list[bytes], newest_ts: float) -> bytes:
    return msgpack.packb([newest_ts, examples], use_bin_type=True)


def unpack(data: bytes) -> tuple[list[bytes], float]:
    """Examples and the newest event time of a training record; raises ValueError if foreign."""
    try:
        newest_ts, examples = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a training record: {exc}") from None
    if not isinstance(examples, list) or not all(isinstance(e, bytes) for e in examples):
        raise ValueError("not a training record: no list of examples")
    return examples, float(newest_ts)


class ExampleSink:
    """Examples gathered while a batch is processed (one packed record per event), drained into
    training records."""

    def __init__(self) -> None:
        self._examples: list[bytes] = []
        self._newest = 0.0

    def add(self, examples: bytes, ts: float) -> None:
        self._examples.append(examples)
        self._newest = max(self._newest, ts)

    def __len__(self) -> int:
        return len(self._examples)

    def drain(self) -> list[bytes]:
        records: list[bytes] = []
        current: list[bytes] = []
        size = 0
        for e in self._examples:
            if current and size + len(e) + 5 > RECORD_BYTES:  # 5: msgpack header of a bytes value
                records.append(pack(current, self._newest))
                current, size = [], 0
            current.append(e)
            size += len(e) + 5
        if current:
            records.append(pack(current, self._newest))
        self._examples = []
        return records


class ExampleBuilder:
    """Builds examples with the model being served; a model that does not learn gets none."""

    def __init__(self, catalog: Catalog, interest_half_life_s: float, seed: int = 0) -> None:
        self._catalog = catalog
        self._half_life = interest_half_life_s
        self._rng = np.random.default_rng(seed)
        self._configs: dict[int, ExampleConfig] = {}

    def _config(self, model: NeuralServingModel) -> ExampleConfig:
        key = id(model.config)
        config = self._configs.get(key)
        if config is None:
            config = ExampleConfig(model.config, self._half_life, model.retrieval)
            self._configs = {key: config}
        return config

    def click(self, model: ServingModel, before: UserState, click: Click, category: str) -> bytes | None:
        """The click's examples as one record (:func:`~model.examples.click_record`)."""
        if not isinstance(model, NeuralServingModel):
            return None
        config = self._config(model)
        # A click retrieval missed labels only the interest task: its example reads its row alone.
        alone = config.retrieved_positives_only
        pool = model.pool(before, click.ts, [click.item_id], self._half_life, lazy=True, alone_if_missed=alone)
        return click_record(
            before, click.item_id, click.action, click.ts, category, self._catalog, self._rng, config=config, pool=pool
        )

    def review(self, model: ServingModel, before: UserState, review: Review, category: str) -> bytes | None:
        """A review without a rating labels no task (sentiment comes from the rating): it would
        cost a training record and a trainer step for nothing."""
        if not isinstance(model, NeuralServingModel) or review.rating is None:
            return None
        example = review_example(
            before,
            review.text,
            review.rating,
            None,
            review.item_id,
            category,
            ts=review.ts,
            config=self._config(model),
        )
        return pack_examples([example])
