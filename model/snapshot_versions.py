"""Older model versions a worker can load again from its data directory.

A worker stores the full snapshots it accepts (:class:`model.snapshot.SnapshotStore`, the newest
``keep``) and, beside them, the deltas it accepts as the bytes it received (a few hundred
kilobytes each, :mod:`model.snapshot_delta`). A delta is cumulative against its full snapshot, so
any version the worker served since the oldest kept full snapshot is that full snapshot alone or
that full snapshot and one delta: :meth:`SnapshotVersions.load` decodes it with the same checks as
when it arrived (checksum, offsets, shapes, finite values). Deltas whose base is no longer stored
are deleted. What an experiment pins can be kept past the newest ``keep``
(:meth:`SnapshotVersions.protect`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from model.atomic_file import write_atomically
from model.errors import SnapshotError
from model.snapshot import Snapshot, SnapshotStore
from model.snapshot_delta import apply_delta

_DELTA_FILE = re.compile(r"^delta-(\d{12})-on-(\d{12})\.sgd$")


class SnapshotVersions:
    """The versions stored in ``store``'s directory: its full snapshots and the deltas beside them."""

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store

    def delta_path(self, version: int, base: int) -> Path:
        return self.store.directory / f"delta-{version:012d}-on-{base:012d}.sgd"

    def deltas(self) -> dict[int, int]:
        """Each stored delta's version and the version of its base."""
        found = (_DELTA_FILE.match(p.name) for p in self.store.directory.iterdir())
        return {int(m.group(1)): int(m.group(2)) for m in found if m}

    def versions(self) -> list[int]:
        """Every version :meth:`load` can find."""
        fulls = set(self.store.versions())
        return sorted(fulls | {v for v, base in self.deltas().items() if base in fulls})

    def save_delta(self, version: int, base: int, data: bytes) -> None:
        """Store a delta's bytes as received (its base must be stored to load it again)."""
        write_atomically(self.delta_path(version, base), data)
        self.prune()

    def save_full(self, snapshot: Snapshot) -> None:
        """Store a full snapshot as :meth:`SnapshotStore.save` does, then the deltas whose base it
        replaced."""
        self.store.save(snapshot)
        self.prune()

    def protect(self, versions: Collection[int] | None) -> None:
        """Keep what loading ``versions`` needs (their full snapshot, or a delta's base) past the
        store's newest ``keep``; what was protected before and is not now may go at the next save.
        None: not known yet, nothing is deleted until they are."""
        if versions is None:
            self.store.protected = None
            return
        deltas = self.deltas()
        self.store.protected = frozenset(deltas.get(v, v) for v in versions)

    def prune(self) -> None:
        """Delete the deltas whose base is no longer stored."""
        fulls = set(self.store.versions())
        for version, base in self.deltas().items():
            if base not in fulls:
                self.delta_path(version, base).unlink(missing_ok=True)

    def load(self, version: int) -> Snapshot:
        """Version ``version`` decoded and verified; :class:`SnapshotError` when it is not stored
        or does not verify."""
        fulls = self.store.versions()
        base = self.deltas().get(version)
        if version not in fulls and (base is None or base not in fulls):
            span = f"{fulls[0]}..{max(self.versions())}" if fulls else "none"
            raise SnapshotError(f"version {version} is not stored in {self.store.directory} (stored: {span})")
        try:  # a file may be pruned meanwhile
            if version in fulls:
                return self.store.load(version)
            assert base is not None
            return apply_delta(self.store.load(base), self.delta_path(version, base).read_bytes())
        except OSError as exc:
            raise SnapshotError(f"version {version}: {exc}") from None
