"""The cycle collector as a worker runs it: rarer young collections, and what lives as long as the
worker (modules, model, catalog, co-visitation index) kept out of its full collections."""

from __future__ import annotations

import gc

#: Container allocations between two young-generation collections (Python's default: 700).
_GC_YOUNG_THRESHOLD = 20_000


def fewer_collections() -> tuple[int, int, int]:
    """A click allocates a few thousand short-lived containers, nearly all freed by reference
    counting: at Python's default threshold the cycle collector ran every few hundred of them and
    took a noticeable share of a click's CPU. The few cycles are collected a little later. Returns
    the thresholds it replaced (the in-process click bench restores them)."""
    old = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, *old[1:])
    return old


def freeze_loaded() -> None:
    """Collect once, then move every object alive to the collector's permanent generation
    (``gc.freeze``), once the worker has loaded what it serves with and before it serves: a full
    collection then walks the objects created since (resident users' states, caches), not the
    hundreds of thousands that live as long as the process. Frozen objects are still freed by
    reference counting; a cycle among them that later becomes garbage is not collected, hence
    once per process (the agents that wait for the views each ask), not at every model swap."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
