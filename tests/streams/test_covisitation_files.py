"""A worker's co-visitation files: both indexes saved and loaded over the catalog's ids, and a write
that fails logged with the previous checkpoint kept, never raised into the worker's timer."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path

import pytest

from model.covisitation import CovisIndex
from state.catalog import DenseIds
from state.user import UserState
from streams.engine.covisitation_files import CovisitationFiles


def _indexes() -> tuple[CovisIndex, CovisIndex, UserState]:
    index, purchases, user = CovisIndex(), CovisIndex(), UserState()
    for n, item in enumerate(("a", "b", "c", "a")):
        index.observe(user, item)
        if item != "a":
            purchases.pair(item, ["a"])
        user.apply_click(item, "view", 1000.0 + n, "c", 3600.0)
    return index, purchases, user


def test_both_indexes_come_back_over_the_catalogs_ids(tmp_path: Path) -> None:
    index, purchases, user = _indexes()
    asyncio.run(CovisitationFiles(tmp_path).save(index, purchases))
    catalog_ids = DenseIds(["z", "c"])
    views, bought = CovisitationFiles(tmp_path).load(catalog_ids)
    assert views.ids is catalog_ids and views.scores(user, 10, 30) == index.scores(user, 10, 30) != {}
    assert bought.ids is catalog_ids and bought.neighbours("a") == purchases.neighbours("a") == {"b": 1.0, "c": 1.0}


def test_a_failed_write_is_logged_and_keeps_the_previous_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, purchases, _ = _indexes()
    files = CovisitationFiles(tmp_path)
    asyncio.run(files.save(index, purchases))
    before = files.views.path.read_bytes()
    index.observe(UserState(), "d")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)  # the new file cannot be made durable
    with caplog.at_level(logging.WARNING):
        asyncio.run(files.save(index, purchases))
    assert "checkpoint not written" in caplog.text
    assert files.views.path.read_bytes() == before
