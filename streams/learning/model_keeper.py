"""The model a worker serves, and the rules for replacing it.

A worker starts from the newest snapshot it has on disk, or the warm start shipped in the package,
then takes every newer snapshot the trainer publishes. A snapshot is refused, and the current model
kept, when its signature or bytes fail verification (``streams.learning.snapshot_topic``,
``model.snapshot``), when its version is more than ``max_step`` ahead of the served one (so that
even a signed runaway version cannot make every later snapshot stale), or when it scores a probe
with a non-finite or out-of-range value. Each refusal is counted by reason and logged the first
time its reason occurs. A snapshot that was taken but then makes the online hit rate collapse is
rolled back to the one before it, and newer snapshots are refused for a cool-down so that a
diverging trainer cannot flap the served model.

Between full snapshots the trainer publishes deltas against the last full one
(:mod:`model.snapshot_delta`). The keeper holds the newest full snapshot it has verified (even
one older than the served model, as when a restarted worker reads the topic from its start) and
applies a delta only to the snapshot of exactly the version it names; without it, the delta is
refused (``no_base``) and the worker waits for the next full snapshot. Full snapshots are written
to disk (their bytes as received): a restart resumes from the newest of them, then the topic's
newest full snapshot and delta bring it up to date. Beside them the accepted deltas are stored as
received (:mod:`model.snapshot_versions`), so that an older version an experiment pins can be
loaded again (:meth:`ModelKeeper.stored`, :meth:`ModelKeeper.serving`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from model.candidate_features import CANDIDATE_FEATURES
from model.covisitation import CovisIndex
from model.errors import SnapshotError
from model.scoring import NeuralServingModel, latest_or_warm_start, serving_from_snapshot
from model.snapshot import Snapshot, SnapshotStore
from model.snapshot_delta import apply_delta
from model.snapshot_versions import SnapshotVersions
from state.catalog import Catalog
from state.user import UserState
from streams.learning.snapshot_topic import SnapshotAssembler
from streams.settings import Settings

log = logging.getLogger(__name__)


class SnapshotOutcome(StrEnum):
    """What the keeper did with a snapshot, reported to its ``on_event`` callback."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    ROLLED_BACK = "rolled_back"


#: Recent clicks the baseline hit rate is computed over.
BASELINE_TRIALS = 5000
PROBE_TEXTS = ("great quality, love it", "broke after a day, terrible", "质量很好, 非常满意", "太差了, 退货")


def decode(data: bytes, base: Snapshot | None = None) -> Snapshot | SnapshotError:
    """A published snapshot (with ``base``: a delta applied to it) verified and decoded, or why it
    cannot be. This is the costly part of taking a snapshot (about 17 ms for 7 MB: the float16
    tensors widened, every value checked), and hashing and numpy's conversions release the GIL,
    so a worker runs it in a thread and its event loop goes on serving meanwhile."""
    try:
        return Snapshot.from_bytes(data) if base is None else apply_delta(base, data)
    except SnapshotError as exc:
        return exc


async def take_record(
    keeper: ModelKeeper, assembler: SnapshotAssembler, key: bytes | None, value: bytes | None
) -> None:
    """One record of a snapshot topic: assembled, its publication (a full snapshot, or a delta on
    one the keeper holds) decoded in a thread and considered; every refusal counted by reason."""
    published = assembler.add(key, value)
    for problem in assembler.rejected:
        keeper.refuse(problem.reason, f"snapshot topic: {problem}")
    assembler.rejected.clear()
    if published is None:
        return
    base = None
    if published.base is not None:
        base = keeper.base_for(published.base, published.version)
        if base is None:
            return
    snapshot = await asyncio.to_thread(decode, published.data, base)
    keeper.consider(snapshot, published.version, None if base is None else (base.version, published.data))


@dataclass(frozen=True, slots=True)
class RollbackRule:
    drop: float = 0.5  # roll back when a version's hit rate falls below (1 - drop) x the baseline
    min_trials: int = 300  # clicks a version must be judged on first
    cooldown_s: float = 60.0  # how long newer snapshots are refused after a rollback


class _Rate:
    """Hits over the most recent ``window`` trials."""

    def __init__(self, window: int = BASELINE_TRIALS) -> None:
        self.recent: deque[bool] = deque(maxlen=window)
        self.hits = 0

    def add(self, hit: bool) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.hits -= int(self.recent[0])
        self.recent.append(hit)
        self.hits += int(hit)

    @property
    def trials(self) -> int:
        return len(self.recent)

    @property
    def value(self) -> float:
        return self.hits / self.trials if self.trials else 0.0


class ModelKeeper:
    def __init__(
        self,
        catalog: Catalog,
        interest_half_life_s: float,
        directory: Path,
        keep: int,
        rule: RollbackRule,
        on_event: Callable[[SnapshotOutcome, str], None] = lambda outcome, reason: None,
        clock: Callable[[], float] = time.monotonic,
        start: Snapshot | None = None,
        max_step: int = Settings.snapshot_max_step,
        new_share: float = Settings.new_share,
        explore_slots: int = Settings.explore_slots,
        index: CovisIndex | None = None,
        purchases: CovisIndex | None = None,
    ) -> None:
        """``start`` overrides the starting point: the newest snapshot on disk, else the warm start;
        ``index`` and ``purchases``: the co-visitation indexes to serve with (default: empty)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.versions = SnapshotVersions(SnapshotStore(directory, keep=keep))
        self._catalog = catalog
        self._half_life = interest_half_life_s
        self._rule = rule
        self._on_event = on_event
        self._clock = clock
        self.snapshot = start if start is not None else latest_or_warm_start(str(directory))
        self.current: NeuralServingModel = serving_from_snapshot(
            self.snapshot,
            catalog,
            interest_half_life_s=interest_half_life_s,
            new_share=new_share,
            explore_slots=explore_slots,
            index=index,
            purchases=purchases,
        )
        self.swapped_at = time.time()
        self._previous: tuple[Snapshot, NeuralServingModel] | None = None
        self._full: Snapshot | None = None  # the newest verified full snapshot: deltas' base
        self._rate = _Rate()  # the served version's online hit rate
        self._baseline = _Rate()  # recent hits of the versions before it
        self._refuse_until = 0.0
        self._rolled_back: set[int] = set()
        self._max_step = max_step
        self._logged: set[str] = set()  # refusal reasons already logged
        # Writing a snapshot to disk (about 10 ms for 7 MB) must not stall serving either; one
        # thread keeps the writes in version order.
        self._saver = ThreadPoolExecutor(1, thread_name_prefix="snapshot-save")

    @property
    def version(self) -> int:
        return self.current.version

    def offer(self, data: bytes, version: int | None = None) -> str:
        """Consider a published snapshot (announced as ``version``); returns ``accepted`` or why not."""
        return self.consider(decode(data), version)

    def base_for(self, version: int, delta: int) -> Snapshot | None:
        """The snapshot of exactly ``version`` that the delta of version ``delta`` applies to, or
        None: the delta is not newer than the served model (nothing to do), or its base is not
        held (the delta refused and counted: the worker waits for the next full snapshot)."""
        if delta <= self.current.version:
            return None
        held = (self._full, self.snapshot, self._previous[0] if self._previous else None)
        for snapshot in held:
            if snapshot is not None and snapshot.version == version:
                return snapshot
        self.refuse("no_base", f"delta {delta} applies to version {version}, which this worker does not hold")
        return None

    def consider(
        self, snapshot: Snapshot | SnapshotError, version: int | None = None, delta: tuple[int, bytes] | None = None
    ) -> str:
        """:meth:`offer` for a snapshot already :func:`decode`-d. ``delta``: the base version and
        the bytes of the delta it was applied from, stored as received when accepted; None: a full
        snapshot (kept as the base of the deltas after it, and stored)."""
        if isinstance(snapshot, SnapshotError):
            return self.refuse("integrity", str(snapshot))
        if version is not None and snapshot.version != version:
            return self.refuse("integrity", f"snapshot {snapshot.version} was announced as version {version}")
        if delta is None and (self._full is None or snapshot.version > self._full.version):
            self._full = snapshot
        if snapshot.version <= self.current.version:
            return "stale"
        if snapshot.version > self.current.version + self._max_step:
            return self.refuse(
                "version_jump",
                f"snapshot {snapshot.version} is more than {self._max_step} versions ahead of {self.current.version}",
            )
        if snapshot.version in self._rolled_back or self._clock() < self._refuse_until:
            return self.refuse("cooldown", f"snapshot {snapshot.version} arrived during a rollback cool-down")
        if snapshot.config.candidate_features != CANDIDATE_FEATURES:
            return self.refuse(
                "feature_layout", f"snapshot {snapshot.version} was trained on another candidate-feature layout"
            )
        candidate = self.current.with_snapshot(snapshot)
        problem = _probe(candidate)
        if problem:
            return self.refuse("insane", f"snapshot {snapshot.version}: {problem}")
        self._previous = (self.snapshot, self.current)
        self.snapshot, self.current = snapshot, candidate
        for hit in self._rate.recent:  # the outgoing version's record joins the baseline
            self._baseline.add(hit)
        self._rate = _Rate()
        self.swapped_at = time.time()
        if delta is None:
            self._saver.submit(self._save, snapshot)
        else:
            self._saver.submit(self._save_delta, snapshot.version, *delta)
        self._on_event(SnapshotOutcome.ACCEPTED, "")
        return "accepted"

    def flush(self) -> None:
        """Wait until every accepted snapshot is on disk."""
        self._saver.submit(lambda: None).result()

    def close(self) -> None:
        """Stop storing: the writes queued finish in the background."""
        self._saver.shutdown(wait=False)

    def _save(self, snapshot: Snapshot) -> None:
        try:
            self.versions.save_full(snapshot)
        except (OSError, SnapshotError):
            log.exception("could not store snapshot %d; a restart would resume from an older one", snapshot.version)

    def _save_delta(self, version: int, base: int, data: bytes) -> None:
        try:
            self.versions.save_delta(version, base, data)
        except OSError:
            log.exception("could not store the delta of version %d; it cannot be pinned", version)

    def stored(self, version: int) -> Snapshot:
        """Stored version ``version``, decoded and verified (the costly part of loading it: run in
        a thread); :class:`SnapshotError` when it is not stored or does not verify."""
        return self.versions.load(version)

    def serving(self, snapshot: Snapshot) -> NeuralServingModel:
        """A model serving ``snapshot``'s weights with the current catalog and indexes, checked as
        a published snapshot is (its feature layout, a probe); :class:`SnapshotError` if not."""
        if snapshot.config.candidate_features != CANDIDATE_FEATURES:
            raise SnapshotError(f"snapshot {snapshot.version} was trained on another candidate-feature layout")
        model = self.current.with_snapshot(snapshot)
        problem = _probe(model)
        if problem:
            raise SnapshotError(f"snapshot {snapshot.version}: {problem}")
        return model

    def record_hit(self, version: int, hit: bool) -> None:
        """A click was (or was not) among the items version ``version`` recommended before it."""
        if version in self._rolled_back:
            return
        if version != self.current.version:
            self._baseline.add(hit)
            return
        self._rate.add(hit)
        rule = self._rule
        if (
            self._previous is not None
            and self._rate.trials >= rule.min_trials
            and self._baseline.trials >= rule.min_trials
            and self._rate.value < (1.0 - rule.drop) * self._baseline.value
        ):
            self._roll_back(version, self._rate.value)

    def _roll_back(self, version: int, rate: float) -> None:
        assert self._previous is not None
        log.error(
            "model %d: online hit rate %.4f fell below %.0f%% of the baseline %.4f; rolling back to %d",
            version,
            rate,
            100 * (1 - self._rule.drop),
            self._baseline.value,
            self._previous[0].version,
        )
        self._rolled_back.add(version)
        self.snapshot, self.current = self._previous
        self._previous = None
        self._rate = _Rate()
        self._refuse_until = self._clock() + self._rule.cooldown_s
        self.swapped_at = time.time()
        self._on_event(SnapshotOutcome.ROLLED_BACK, "hit_rate")

    def refuse(self, reason: str, detail: str) -> str:
        """Count a refused snapshot (or snapshot record) by ``reason``; log the first of each reason
        (a flood of forged records must not flood the log). Returns ``reason``."""
        if reason not in self._logged:
            self._logged.add(reason)
            log.warning("refused a model snapshot (%s): %s (further ones are only counted)", reason, detail)
        else:
            log.debug("refused a model snapshot (%s): %s", reason, detail)
        self._on_event(SnapshotOutcome.REFUSED, reason)
        return reason


def _probe(model: NeuralServingModel) -> str:
    """Why the model cannot be served, or "" when its outputs on a probe are sane."""
    for p in model.sentiment_many(list(PROBE_TEXTS)):
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            return f"sentiment score {p} on a probe text"
    user = UserState()
    now = time.time()
    for item in model.catalog.popular(3):
        user.apply_click(item, "view", now, model.catalog.category_of(item), 3600.0)
    for rec in model.recommend_many([user, UserState()], now, 10):
        for _, score in rec.items:
            if not (math.isfinite(score) and 0.0 <= score <= 1.0):
                return f"recommendation score {score} on a probe user"
        for _, weight in rec.interests:
            if not math.isfinite(weight):
                return f"interest weight {weight} on a probe user"
    return ""
