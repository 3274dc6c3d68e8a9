"""A worker's co-visitation indexes on disk: loaded at start, written periodically and at stop.

The serving model's two indexes (what shoppers viewed together, ``views.ckpt``; what they bought
together, ``purchases.ckpt``) are copied on the event loop (a compact copy of the rows in use) and
written by a thread, one write at a time, so that a checkpoint costs the click path a copy, not a
disk write. See docs/decisions/008-covisitation-state.md for why a checkpoint per worker and not
every worker following every co-visit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from model.covisitation import CovisIndex
from model.covisitation_checkpoint import CovisCheckpoint
from state.catalog import DenseIds

log = logging.getLogger(__name__)


class CovisitationFiles:
    """The checkpoints of a worker's viewed-together and bought-together indexes in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.views = CovisCheckpoint(directory / "views.ckpt")
        self.purchases = CovisCheckpoint(directory / "purchases.ckpt")
        self._lock = asyncio.Lock()

    def load(self, item_ids: DenseIds) -> tuple[CovisIndex, CovisIndex]:
        """The saved indexes, both over the catalog's ``item_ids`` (retrieval and the reasons' one
        compiled lookup read them by the catalog's dense ids), each empty when its file is missing
        or refused."""
        return self.views.load(CovisIndex(ids=item_ids)), self.purchases.load(CovisIndex(ids=item_ids))

    async def save(self, index: CovisIndex, purchases: CovisIndex) -> None:
        """Copy both indexes now and write them in a thread. A write that fails (a full disk) is
        logged and leaves the previous file: the indexes are still served from memory."""
        async with self._lock:
            t0 = time.perf_counter()
            views, bought = index.export(), purchases.export()
            copied = time.perf_counter() - t0
            try:
                sizes = await asyncio.to_thread(lambda: (self.views.save(views), self.purchases.save(bought)))
            except OSError as exc:
                log.warning("co-visitation: checkpoint not written (%r); the previous one stays", exc)
                return
            written = time.perf_counter() - t0 - copied
        log.info(
            "co-visitation: checkpoint of %d and %d items, %d and %d bytes (copied in %.1f ms on the loop, "
            "written in %.1f ms)",
            len(views.names),
            len(bought.names),
            *sizes,
            copied * 1000,
            written * 1000,
        )
