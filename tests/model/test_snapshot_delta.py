from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from model_fixtures import TINY, Stream

from model.config import initial_weights
from model.errors import SnapshotError
from model.snapshot import MAGIC, Snapshot, stored_weights
from model.snapshot_delta import DELTA_MAGIC, SnapshotEncoder, apply_delta, encode_delta
from model.training import Trainer


def _assert_same_bits(a: Snapshot, b: Snapshot) -> None:
    assert a.version == b.version and a.config == b.config
    assert a.counters == b.counters and a.metrics == b.metrics and a.extra == b.extra and a.created == b.created
    assert set(a.serving_weights()) == set(b.serving_weights())
    for name, value in a.serving_weights().items():
        other = b.weights[name]
        assert value.dtype == other.dtype == np.float32 and value.shape == other.shape, name
        assert value.tobytes() == other.tobytes(), name


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_deltas_of_a_training_stream_decode_to_the_full_snapshots_bit_for_bit(stream: Stream, dtype: str) -> None:
    trainer = Trainer(TINY, seed=0)
    encoder = SnapshotEncoder(dtype, full_every=4, full_interval_s=1e9)
    base: Snapshot | None = None
    kinds = []
    for step in range(9):
        trainer.learn_many(stream.examples[step * 64 : (step + 1) * 64])
        snap = trainer.export(metrics={"loss": float(step)}, extra={"trained_until": 100.0 + step})
        data, base_version = encoder.encode(snap)
        full = Snapshot.from_bytes(snap.to_bytes(dtype=dtype))
        if base_version is None:
            served = base = Snapshot.from_bytes(data)
        else:
            assert base is not None and base_version == base.version
            served = apply_delta(base, data)
            assert len(data) < len(full.to_bytes())
        kinds.append(base_version)
        _assert_same_bits(served, full)
    assert kinds == [None, 1, 1, 1, None, 5, 5, 5, None]


def _weights(seed: int = 1) -> dict[str, np.ndarray]:
    weights = initial_weights(TINY, seed=seed)
    weights["item_table"][[3, 7, 11]] = 0.25
    return weights


def test_a_delta_carries_only_the_changed_rows_and_tensors() -> None:
    weights = _weights()
    base = Snapshot(1, TINY, weights)
    changed = {k: v.copy() for k, v in weights.items()}
    changed["item_table"][7] += 1.0
    changed["item_table"][20] = 0.5  # a row that was zero
    changed["recommend/bias"] = changed["recommend/bias"] + 1.0
    new = Snapshot(2, TINY, changed, counters={"steps": 2})
    data = encode_delta(new, stored_weights(weights, "float16"), 1, "float16")
    header_len = struct.unpack_from("<IQ", data, len(DELTA_MAGIC))[1]
    header = json.loads(data[len(DELTA_MAGIC) + 12 : len(DELTA_MAGIC) + 12 + header_len])
    assert header["base"] == 1 and header["version"] == 2
    assert {t["name"]: t.get("rows", {}).get("count") for t in header["tensors"]} == {
        "item_table": 2,
        "recommend/bias": None,
    }
    served = apply_delta(Snapshot.from_bytes(base.to_bytes(dtype="float16")), data)
    _assert_same_bits(served, Snapshot.from_bytes(new.to_bytes(dtype="float16")))


def test_a_tensor_beyond_float16_travels_as_float32_in_the_delta_too() -> None:
    weights = _weights()
    base = Snapshot(1, TINY, weights)
    changed = {k: v.copy() for k, v in weights.items()}
    changed["item_table"][5] = 1e6  # beyond float16: the full snapshot keeps this tensor float32
    changed["item_table"][9] += 1e-3
    new = Snapshot(2, TINY, changed)
    data = encode_delta(new, stored_weights(weights, "float16"), 1, "float16")
    served = apply_delta(Snapshot.from_bytes(base.to_bytes(dtype="float16")), data)
    _assert_same_bits(served, Snapshot.from_bytes(new.to_bytes(dtype="float16")))


def _delta() -> tuple[Snapshot, bytes]:
    weights = _weights()
    base = Snapshot.from_bytes(Snapshot(4, TINY, weights).to_bytes(dtype="float16"))
    changed = {k: v.copy() for k, v in weights.items()}
    changed["item_table"][3] -= 0.5
    return base, encode_delta(Snapshot(6, TINY, changed), stored_weights(weights, "float16"), 4, "float16")


def test_a_delta_applies_only_on_the_base_it_names() -> None:
    base, data = _delta()
    assert apply_delta(base, data).version == 6
    other = Snapshot.from_bytes(Snapshot(5, TINY, _weights()).to_bytes(dtype="float16"))
    with pytest.raises(SnapshotError, match="names base 4, not 5"):
        apply_delta(other, data)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[:-40] + bytes(8) + d[-32:], "checksum"),
        (lambda d: d[: len(d) // 2], "checksum|too short"),
        (lambda d: MAGIC + d[len(DELTA_MAGIC) :], "not a snapshot delta"),
        (lambda d: b"", "not a snapshot delta"),
    ],
)
def test_a_damaged_delta_is_refused(mangle: object, reason: str) -> None:
    base, data = _delta()
    with pytest.raises(SnapshotError, match=reason):
        apply_delta(base, mangle(data))  # type: ignore[operator]


def test_a_delta_is_not_a_snapshot_nor_a_snapshot_a_delta() -> None:
    base, data = _delta()
    with pytest.raises(SnapshotError, match="not a shopguide snapshot"):
        Snapshot.from_bytes(data)
    with pytest.raises(SnapshotError, match="not a snapshot delta"):
        apply_delta(base, base.to_bytes())


def test_the_encoder_publishes_a_full_snapshot_every_n_versions_or_m_seconds() -> None:
    now = [0.0]
    encoder = SnapshotEncoder("float16", full_every=3, full_interval_s=10.0, clock=lambda: now[0])
    weights = _weights()
    kinds = []
    for version in range(1, 9):
        now[0] = {6: 12.0}.get(version, now[0])  # version 6 comes 12 s after the full version 4
        weights["item_table"][version] += 0.5
        kinds.append(encoder.encode(Snapshot(version, TINY, weights))[1])
    assert kinds == [None, 1, 1, None, 4, None, 6, 6]
    only_full = SnapshotEncoder("float16", full_every=1, full_interval_s=10.0)
    assert [only_full.encode(Snapshot(v, TINY, weights))[1] for v in (1, 2, 3)] == [None, None, None]


def test_the_encoder_publishes_a_full_snapshot_when_the_delta_would_not_be_smaller() -> None:
    encoder = SnapshotEncoder("float16", full_every=100, full_interval_s=1e9)
    weights = _weights()
    assert encoder.encode(Snapshot(1, TINY, weights))[1] is None
    moved = {k: v + 1.0 for k, v in weights.items()}  # every row of every tensor changed
    data, base = encoder.encode(Snapshot(2, TINY, moved))
    assert base is None and data.startswith(MAGIC)
    assert encoder.encode(Snapshot(3, TINY, {k: v.copy() for k, v in moved.items()}))[1] == 2


def test_a_delta_carries_its_own_calibrated_config_but_not_other_tensors() -> None:
    weights = _weights()
    base = Snapshot.from_bytes(Snapshot(1, TINY, weights).to_bytes(dtype="float16"))
    calibrated = TINY.with_(sentiment_calibration=(1.5, -0.25), sentiment_threshold=0.4)
    new = Snapshot(2, calibrated, weights)
    served = apply_delta(base, encode_delta(new, stored_weights(weights, "float16"), 1, "float16"))
    _assert_same_bits(served, Snapshot.from_bytes(new.to_bytes(dtype="float16")))
    wider = TINY.with_(dim=TINY.dim + 4)
    other = Snapshot(2, wider, initial_weights(wider, seed=1))
    data = encode_delta(other, stored_weights(other.weights, "float16"), 1, "float16")
    with pytest.raises(SnapshotError, match="implies other tensors"):
        apply_delta(base, data)
