from __future__ import annotations

import json
import struct
from dataclasses import replace

import numpy as np
import pytest
from model_fixtures import TINY

from model.config import initial_weights
from model.errors import SnapshotError
from model.snapshot import MAGIC, Snapshot, SnapshotStore


def _snapshot(version: int = 1) -> Snapshot:
    weights = initial_weights(TINY, seed=version)
    weights["item_table"][[3, 7]] = 0.5  # a sparse table: stored as its non-zero rows
    return Snapshot(version, TINY, weights, counters={"steps": 3}, metrics={"loss": 0.5})


def test_round_trip_is_exact() -> None:
    snap = _snapshot()
    back = Snapshot.from_bytes(snap.to_bytes())
    assert back.version == 1 and back.config == TINY and back.counters == {"steps": 3}
    for name, value in snap.weights.items():
        np.testing.assert_array_equal(back.weights[name], value)


def test_float16_round_trip_is_close_and_smaller() -> None:
    snap = _snapshot()
    small = snap.to_bytes(dtype="float16")
    assert len(small) < 0.7 * len(snap.to_bytes())
    back = Snapshot.from_bytes(small)
    for name, value in snap.weights.items():
        np.testing.assert_allclose(back.weights[name], value, atol=2e-3)


def test_bfloat16_round_trip_is_close_and_smaller() -> None:
    snap = _snapshot()
    small = snap.to_bytes(dtype="bfloat16")
    assert len(small) < 0.7 * len(snap.to_bytes())
    back = Snapshot.from_bytes(small)
    for name, value in snap.weights.items():
        assert back.weights[name].dtype == np.float32
        np.testing.assert_allclose(back.weights[name], value, rtol=2**-8, atol=1e-30)


def test_float16_keeps_a_tensor_beyond_its_range_in_float32() -> None:
    snap = _snapshot()
    weights = dict(snap.weights)
    weights["recommend/bias"] = np.array([1e6], np.float32)
    back = Snapshot.from_bytes(replace(snap, weights=weights).to_bytes(dtype="float16"))
    assert back.weights["recommend/bias"][0] == 1e6


def test_a_decoded_snapshot_keeps_its_bytes_and_is_read_only() -> None:
    """A worker stores what it received without re-encoding it: same bytes, same weights."""
    data = _snapshot().to_bytes(dtype="bfloat16")
    snap = Snapshot.from_bytes(data)
    assert snap.to_bytes() is data
    assert Snapshot.from_bytes(snap.to_bytes(dtype="float32")).weights.keys() == snap.weights.keys()
    assert len(snap.to_bytes(dtype="float32")) > len(data)  # explicit arguments re-encode
    with pytest.raises(ValueError):
        snap.weights["item_table"][0, 0] = 1.0
    newer = replace(snap, version=2)  # a changed snapshot is encoded afresh
    assert Snapshot.from_bytes(newer.to_bytes()).version == 2


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_non_finite_weights_are_rejected_in_every_dtype(dtype: str) -> None:
    snap = _snapshot()
    weights = dict(snap.weights)
    table = weights["text_table"].copy()
    table[5, 1] = np.inf
    weights["text_table"] = table
    with pytest.raises(SnapshotError, match="NaN or infinite"):
        Snapshot.from_bytes(replace(snap, weights=weights).to_bytes(dtype=dtype))


@pytest.mark.parametrize("where", [0, 40, -100, -1])
def test_corrupt_byte_is_rejected(where: int) -> None:
    data = bytearray(_snapshot().to_bytes())
    data[where] ^= 0xFF
    with pytest.raises(SnapshotError):
        Snapshot.from_bytes(bytes(data))


def test_truncated_is_rejected() -> None:
    data = _snapshot().to_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(SnapshotError):
            Snapshot.from_bytes(data[:cut])


def _reseal(body: bytes) -> bytes:
    import hashlib

    return body + hashlib.sha256(body).digest()


def test_wrong_shape_is_rejected_even_with_a_valid_checksum() -> None:
    snap = _snapshot()
    weights = dict(snap.weights)
    weights["recommend/user/kernel"] = np.zeros((3, 3), np.float32)
    with pytest.raises(SnapshotError, match="shape"):
        Snapshot.from_bytes(replace(snap, weights=weights).to_bytes())
    weights.pop("recommend/user/kernel")
    with pytest.raises(SnapshotError, match="missing"):
        Snapshot.from_bytes(replace(snap, weights=weights).to_bytes())


def test_tampered_header_is_rejected() -> None:
    data = _snapshot().to_bytes()
    body = data[:-32]
    _, header_len = struct.unpack_from("<IQ", body, len(MAGIC))
    start = len(MAGIC) + 12
    header = json.loads(body[start : start + header_len])
    header["tensors"][0]["offset"] = 10**9
    new_header = json.dumps(header).encode()
    forged = body[: len(MAGIC)] + struct.pack("<IQ", 1, len(new_header)) + new_header
    forged += body[start + header_len :]
    with pytest.raises(SnapshotError, match="outside"):
        Snapshot.from_bytes(_reseal(forged))
    with pytest.raises(SnapshotError, match="checksum"):
        Snapshot.from_bytes(forged + data[-32:])


def test_non_finite_weights_are_rejected() -> None:
    snap = _snapshot()
    weights = dict(snap.weights)
    weights["recommend/bias"] = np.array([np.nan], np.float32)
    with pytest.raises(SnapshotError, match="NaN"):
        Snapshot.from_bytes(replace(snap, weights=weights).to_bytes())


def test_store_keeps_last_n_is_monotonic_and_rolls_back(tmp_path) -> None:
    store = SnapshotStore(tmp_path, keep=3)
    for v in range(1, 6):
        store.save(_snapshot(v))
    assert store.versions() == [3, 4, 5]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(SnapshotError, match="not newer"):
        store.save(_snapshot(4))
    rolled = store.rollback(3)
    assert rolled.version == 6 and rolled.extra["rolled_back_from"] == 3
    assert store.latest().version == 6
    np.testing.assert_array_equal(store.latest().weights["item_table"], _snapshot(3).weights["item_table"])


def test_store_skips_a_corrupt_newest_file(tmp_path) -> None:
    store = SnapshotStore(tmp_path, keep=5)
    store.save(_snapshot(1))
    store.save(_snapshot(2))
    store.path(2).write_bytes(store.path(2).read_bytes()[:100])
    assert store.latest().version == 1
    with pytest.raises(SnapshotError):
        store.load(2)


def _forge(header_change, tensors_change=None) -> bytes:
    """A snapshot whose header was rewritten and whose checksum was made to match again."""
    data = _snapshot().to_bytes()
    body = data[:-32]
    _, header_len = struct.unpack_from("<IQ", body, len(MAGIC))
    start = len(MAGIC) + 12
    header = json.loads(body[start : start + header_len])
    header_change(header)
    new_header = json.dumps(header).encode()
    forged = body[: len(MAGIC)] + struct.pack("<IQ", 1, len(new_header)) + new_header + body[start + header_len :]
    return _reseal(forged)


def test_a_small_snapshot_declaring_huge_tables_is_refused_before_allocating() -> None:
    """A config with 2**23-row tables implies hundreds of MB of weights; the bytes are a few KB."""
    import tracemalloc

    def huge(header: dict) -> None:
        header["config"]["item_buckets"] = header["config"]["text_buckets"] = 2**23

    data = _forge(huge)
    assert len(data) < 100_000
    tracemalloc.start()
    with pytest.raises(SnapshotError, match="MB of weights"):
        Snapshot.from_bytes(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_an_optimizer_tensor_declaring_a_huge_shape_is_refused() -> None:
    def huge(header: dict) -> None:
        header["tensors"].append(
            {
                "name": "optimizer/x",
                "shape": [2**40, 2**20],
                "dtype": "float32",
                "offset": 0,
                "nbytes": 0,
                "rows": {"offset": 0, "count": 0},
            }
        )

    with pytest.raises(SnapshotError, match="MB of weights"):
        Snapshot.from_bytes(_forge(huge))


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.update(version=2**64 - 1),
        lambda h: h.update(version="7"),
        lambda h: h.update(version=1.5),
        lambda h: h.update(created="yesterday"),
        lambda h: h.update(counters=[1, 2]),
        lambda h: h.update(metrics={"loss": "low"}),
        lambda h: h.update(extra=[]),
        lambda h: h.update(tensors={"a": 1}),
        lambda h: h.update(tensors=[1, 2]),
        lambda h: h["tensors"][0].update(shape="big"),
        lambda h: h["tensors"][0].update(shape=[-1, 3]),
        lambda h: h["tensors"][0].update(dtype="float64"),
        lambda h: h["tensors"][0].update(rows=[1]),
        lambda h: h["tensors"][0].pop("name"),
        lambda h: h["config"].update(dim="wide"),
        lambda h: h.update(config=None),
    ],
)
def test_every_malformed_header_is_a_snapshot_error(change) -> None:
    with pytest.raises(SnapshotError):
        Snapshot.from_bytes(_forge(change))


def test_random_header_bytes_only_ever_raise_snapshot_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
    def check(header: bytes) -> None:
        forged = MAGIC + struct.pack("<IQ", 1, len(header)) + header
        with pytest.raises(SnapshotError):
            Snapshot.from_bytes(_reseal(forged))

    check()
