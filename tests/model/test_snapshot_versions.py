"""Older versions loaded again from a worker's stored full snapshots and deltas."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.doubles import untrained_snapshot
from model.errors import SnapshotError
from model.snapshot import Snapshot, SnapshotStore, stored_weights
from model.snapshot_delta import encode_delta
from model.snapshot_versions import SnapshotVersions


def _trained(version: int) -> Snapshot:
    """Version ``version``: the untrained weights with rows 1..version of the item table moved."""
    start = untrained_snapshot(1)
    weights = {name: w.copy() for name, w in start.weights.items()}
    weights["item_table"][1 : version + 1] += 0.25
    return Snapshot(version=version, config=start.config, weights=weights)


def _full(version: int) -> Snapshot:
    return Snapshot.from_bytes(_trained(version).to_bytes(dtype="float16"))


def _delta(version: int, base: int) -> bytes:
    return encode_delta(_trained(version), stored_weights(_trained(base).weights, "float16"), base, "float16")


def _same(a: Snapshot, b: Snapshot) -> bool:
    return a.version == b.version and all(a.weights[n].tobytes() == w.tobytes() for n, w in b.weights.items())


def _versions(tmp_path: Path, keep: int) -> SnapshotVersions:
    """Full snapshots 10, 20, 30 (of which ``keep`` are kept) each with deltas 1 and 2 after it."""
    versions = SnapshotVersions(SnapshotStore(tmp_path, keep=keep))
    for base in (10, 20, 30):
        versions.save_full(_full(base))
        for version in (base + 1, base + 2):
            versions.save_delta(version, base, _delta(version, base))
    return versions


def test_every_version_since_the_oldest_kept_full_snapshot_loads_bit_for_bit(tmp_path: Path) -> None:
    versions = _versions(tmp_path, keep=2)
    assert versions.versions() == [20, 21, 22, 30, 31, 32]  # the deltas on 10 went with it
    assert sorted(versions.deltas()) == [21, 22, 31, 32]
    for version in versions.versions():
        assert _same(versions.load(version), _full(version))


@pytest.mark.parametrize("version", [11, 25, 33])
def test_a_version_not_stored_is_refused_with_what_is(tmp_path: Path, version: int) -> None:
    with pytest.raises(SnapshotError, match=rf"version {version} is not stored in .* \(stored: 20\.\.32\)"):
        _versions(tmp_path, keep=2).load(version)


def test_a_damaged_delta_on_disk_is_refused_as_on_the_topic(tmp_path: Path) -> None:
    versions = _versions(tmp_path, keep=2)
    path = versions.delta_path(31, 30)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        versions.load(31)


def test_protected_versions_outlive_the_newest_kept(tmp_path: Path) -> None:
    versions = SnapshotVersions(SnapshotStore(tmp_path, keep=1))
    versions.save_full(_full(10))
    versions.save_delta(11, 10, _delta(11, 10))
    versions.protect([11])  # a delta: its base is what must stay
    for base in (20, 30):
        versions.save_full(_full(base))
    assert versions.versions() == [10, 11, 30]
    assert _same(versions.load(11), _full(11))
    versions.protect([])  # no longer pinned: gone at the next save
    versions.save_full(_full(40))
    assert versions.versions() == [40]
    assert not any(p.name.startswith("delta-") for p in tmp_path.iterdir())


def test_nothing_is_deleted_while_the_protected_versions_are_not_known(tmp_path: Path) -> None:
    """A worker at its start, before it has read which versions its experiments pin."""
    versions = SnapshotVersions(SnapshotStore(tmp_path, keep=1))
    versions.protect(None)
    versions.save_full(_full(10))
    versions.save_delta(11, 10, _delta(11, 10))
    versions.save_full(_full(20))
    assert versions.versions() == [10, 11, 20]
    versions.protect([])
    versions.save_full(_full(30))
    assert versions.versions() == [30]
