"""The trainer variants' models in a worker, followed only while an experiment in force names them.

Each variant's snapshots come on a topic of its own (``shopguide trainer --variant``,
:mod:`streams.learning.variant_trainer`). While the experiment in force has an arm
``trainer:<variant>`` of a variant the deployment declares, the worker follows that topic from
its start with a :class:`~streams.learning.model_keeper.ModelKeeper` of its own (the same
signature, integrity, layout and probe checks as for the main model; full snapshots and deltas
stored under ``variants/<variant>`` in the data directory, so that a restart serves the newest
again at once), with the worker's catalog and co-visitation indexes and the variant's weights. The
arm is served by the variant's model once the worker has one (taken from the topic, or stored
before), by the current model until then (counted as a fallback). When no experiment in force
names the variant any more, its follower stops and its model is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from model.scoring import NeuralServingModel
from model.snapshot import SnapshotStore
from state.catalog import Catalog
from streams.kafka.followers import Follower
from streams.learning.model_keeper import ModelKeeper, RollbackRule, SnapshotOutcome, take_record
from streams.learning.snapshot_topic import PROGRESS_KEY, SnapshotAssembler
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


@dataclass
class _Variant:
    keeper: ModelKeeper | None = None  # None while it is being built
    ready: bool = False  # it holds a snapshot of the variant (not the warm start)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class VariantModels:
    """The followed variants' models by name (``variants(name)``: None while there is none)."""

    def __init__(self, settings: Settings, catalog: Catalog, current: Callable[[], NeuralServingModel]) -> None:
        self._settings = settings
        self._catalog = catalog
        self._current = current
        self._topics = Topics(settings)
        self._declared = set(settings.variant_table())
        self._followed: dict[str, _Variant] = {}
        self._warned: set[str] = set()

    def __call__(self, name: str) -> NeuralServingModel | None:
        variant = self._followed.get(name)
        if variant is None or variant.keeper is None or not variant.ready:
            return None
        return variant.keeper.current

    def versions(self) -> dict[str, int | None]:
        """Each followed variant's version served (None: none yet)."""
        return {name: v.keeper.version if v.keeper and v.ready else None for name, v in self._followed.items()}

    def follow(self, names: Collection[str]) -> None:
        """Follow exactly the declared variants among ``names`` (those the experiment in force names)."""
        for name in set(names) - self._declared - self._warned:
            self._warned.add(name)
            log.warning("trainer variant %r is not in SHOPGUIDE_TRAINER_VARIANTS: the current model serves it", name)
        wanted = set(names) & self._declared
        for name in [n for n in self._followed if n not in wanted]:
            self._stop(self._followed.pop(name))
            log.info("trainer variant %s no longer followed", name)
        for name in wanted - set(self._followed):
            variant = self._followed[name] = _Variant()
            variant.tasks.append(asyncio.get_running_loop().create_task(self._follow(name, variant)))

    async def close(self) -> None:
        tasks = [t for v in self._followed.values() for t in v.tasks]
        for variant in self._followed.values():
            self._stop(variant)
        self._followed.clear()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _stop(variant: _Variant) -> None:
        for task in variant.tasks:
            task.cancel()
        if variant.keeper is not None:
            variant.keeper.close()

    async def _follow(self, name: str, variant: _Variant) -> None:
        try:
            await self._run(name, variant)
        except Exception:  # a task's failure would go unseen: the arm stays on the current model
            log.exception("trainer variant %s cannot be followed; the current model serves its arm", name)

    async def _run(self, name: str, variant: _Variant) -> None:
        s = self._settings
        directory = s.data_dir / "variants" / name
        stored = await asyncio.to_thread(lambda: SnapshotStore(directory).versions())
        current = self._current()

        def on_event(outcome: SnapshotOutcome, reason: str) -> None:
            if outcome is SnapshotOutcome.ACCEPTED:
                variant.ready = True

        # Building it decodes a snapshot (the stored one or the warm start): off the event loop.
        variant.keeper = keeper = await asyncio.to_thread(
            ModelKeeper,
            self._catalog,
            s.interest_half_life_s,
            directory,
            s.snapshots_kept,
            RollbackRule(),
            on_event=on_event,
            max_step=s.snapshot_max_step,
            new_share=s.new_share,
            explore_slots=s.explore_slots,
            index=current.index,
            purchases=current.purchases,
        )
        variant.ready = keeper.version in stored  # a snapshot of the variant, not the warm start
        assembler = SnapshotAssembler(s.snapshot_key_bytes)

        async def take(key: bytes | None, value: bytes | None) -> None:
            if key != PROGRESS_KEY:
                await take_record(keeper, assembler, key, value)

        log.info("following trainer variant %s from version %d", name, keeper.version)
        await Follower(s, self._topics.variant_snapshots(name), take, f"snapshots-{name}").run()
