"""A co-visitation index written to a checkpoint and loaded again: the same scores, followers,
neighbours and counts, and the same behaviour under further clicks (rows cut, items dropped,
interactions pending); a damaged or foreign file refused with the reason and an empty index."""

from __future__ import annotations

import copy
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from model.covisitation import CovisIndex
from model.covisitation_checkpoint import CovisCheckpoint, decode, encode
from state.catalog import DenseIds
from state.user import UserState

HALF_LIFE = 3600.0


def _walk(index: CovisIndex, users: list[UserState], rng: random.Random, items: list[str], clicks: int) -> None:
    """Skewed clicks of ``users`` (strong pairs, repeats, a new shopper's first click now and then,
    purchases paired with earlier items)."""
    for t in range(clicks):
        if rng.random() < 0.05:
            users.append(UserState())
        user = rng.choice(users)
        item = items[min(int(rng.paretovariate(0.8)) - 1, len(items) - 1)] if rng.random() < 0.5 else rng.choice(items)
        if rng.random() < 0.1:
            index.pair(item, [rng.choice(items) for _ in range(rng.randrange(4))])
        index.observe(user, item)
        user.apply_click(item, "view", 1000.0 + t, "c", HALF_LIFE)


def _assert_same(a: CovisIndex, b: CovisIndex, users: list[UserState], items: list[str]) -> None:
    for user in users:
        for sources, per_source in ((10, 30), (3, 2)):
            got, want = a.scores(user, sources, per_source), b.scores(user, sources, per_source)
            assert list(got.items()) == list(want.items())
        assert list(a.following(user, 5).items()) == list(b.following(user, 5).items())
    assert a.interactions(items) == b.interactions(items)
    for item in items:
        assert list(a.neighbours(item).items()) == list(b.neighbours(item).items())
    assert len(a) == len(b)


@pytest.mark.parametrize(("seed", "max_items", "max_neighbors"), [(1, 200_000, 50), (2, 40, 3), (3, 5, 1)])
def test_a_loaded_index_answers_and_grows_as_the_saved_one(
    tmp_path: Path, seed: int, max_items: int, max_neighbors: int
) -> None:
    rng = random.Random(seed)
    items = [f"i{n}" for n in range(120)] + ["never-seen"]
    index = CovisIndex(max_items, max_neighbors)
    users = [UserState() for _ in range(20)]
    _walk(index, users, rng, items[:-1], 2000)
    checkpoint = CovisCheckpoint(tmp_path / "views.ckpt")
    checkpoint.save(index.export())
    # Another process assigns other dense ids: the catalog already knows some items, in another order.
    ids = DenseIds(["unrelated", *reversed(items[:50])])
    loaded = checkpoint.load(CovisIndex(max_items, max_neighbors, ids=ids))
    assert loaded.ids is ids and len(loaded) > 0
    _assert_same(index, loaded, users, items)
    # The same further clicks leave both equal: the lists that order dropping and the rows' order came along.
    for target in (index, loaded):
        copies = copy.deepcopy(users)
        _walk(target, copies, random.Random(seed + 100), items[:-1], 1000)
    _assert_same(index, loaded, copies, items)


def test_an_empty_index_round_trips(tmp_path: Path) -> None:
    """A worker that saw no click (everything dead-lettered) writes an empty index at stop."""
    checkpoint = CovisCheckpoint(tmp_path / "views.ckpt")
    checkpoint.save(CovisIndex().export())
    loaded = checkpoint.load(CovisIndex(ids=DenseIds(["a"])))
    assert len(loaded) == 0 and loaded.interactions(["a"]) == [0]
    loaded.observe(UserState(), "a")
    assert loaded.interactions(["a"]) == [1]


def test_pending_first_clicks_are_saved(tmp_path: Path) -> None:
    index = CovisIndex(10, 2)
    for n in range(5):  # first clicks of new shoppers: no kernel call, the interactions wait
        index.observe(UserState(), f"i{n % 3}")
    saved = index.export()
    assert saved.arrays["pending"].size == 5
    loaded = CovisIndex.restore(decode(encode(saved)))
    assert loaded.interactions(["i0", "i1", "i2"]) == index.interactions(["i0", "i1", "i2"]) == [2, 2, 1]


def _saved(tmp_path: Path) -> CovisCheckpoint:
    index = CovisIndex(50, 4)
    _walk(index, [UserState() for _ in range(5)], random.Random(9), [f"i{n}" for n in range(30)], 300)
    checkpoint = CovisCheckpoint(tmp_path / "views.ckpt")
    checkpoint.save(index.export())
    return checkpoint


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "checksum mismatch"),
        (lambda b: b[:60], "checksum mismatch"),
        (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "checksum mismatch"),
        (lambda b: b"XX" + b[2:], "wrong magic"),
        (lambda b: b"", "too short"),
    ],
    ids=["truncated", "header-only", "one-bit", "magic", "empty"],
)
def test_a_damaged_checkpoint_is_refused_with_an_empty_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object, reason: str
) -> None:
    checkpoint = _saved(tmp_path)
    checkpoint.path.write_bytes(damage(checkpoint.path.read_bytes()))  # type: ignore[operator]
    ids = DenseIds(["a"])
    empty = CovisIndex(50, 4, ids=ids)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(empty) is empty
    assert len(empty) == 0 and ids.names == ["a"]
    assert any(reason in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


def test_a_checkpoint_of_other_bounds_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checkpoint = _saved(tmp_path)
    empty = CovisIndex(60, 4)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(empty) is empty
    assert "max_items, max_neighbors, window = (50, 4, 5), not (60, 4, 5)" in caplog.text


def test_a_missing_checkpoint_gives_the_empty_index(tmp_path: Path) -> None:
    empty = CovisIndex()
    assert CovisCheckpoint(tmp_path / "none.ckpt").load(empty) is empty


@pytest.mark.parametrize(
    ("array", "value", "reason"),
    [("entry_ids", 10_000, "entry_ids holds values outside"), ("slot", 99_999, "slot holds values outside")],
)
def test_inconsistent_arrays_are_refused_before_any_id_is_assigned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, array: str, value: int, reason: str
) -> None:
    """A file with a valid checksum whose arrays do not fit together (another version's writer,
    a bug) would let a kernel read outside an array: refused."""
    checkpoint = _saved(tmp_path)
    saved = decode(checkpoint.path.read_bytes())
    saved.arrays[array].flat[0] = value
    checkpoint.save(saved)
    ids = DenseIds()
    empty = CovisIndex(50, 4, ids=ids)
    with caplog.at_level(logging.WARNING):
        assert checkpoint.load(empty) is empty
    assert reason in caplog.text and ids.names == []


def test_saving_replaces_the_file_whole(tmp_path: Path) -> None:
    checkpoint = _saved(tmp_path)
    first = checkpoint.path.read_bytes()
    index = CovisIndex(50, 4)
    index.observe(UserState(), "x")
    size = checkpoint.save(index.export())
    assert checkpoint.path.read_bytes() != first and checkpoint.path.stat().st_size == size
    assert [p.name for p in tmp_path.iterdir()] == ["views.ckpt"]
    assert np.array_equal(decode(checkpoint.path.read_bytes()).arrays["pending"], [0])
