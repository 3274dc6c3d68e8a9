"""The compiled kernels of co-visitation (``model.covisitation``), retrieval (``model.retrieval``),
the reasons (``model.reasons``), the business filter (``model.candidates``) and the merchandising
rules (``model.rules``), and their one warm-up.

numba compiles them into a cache directory; :func:`warm` compiles them or loads them from there,
which a worker does before it joins its consumer group so that no event waits for a compiler.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Kernels:
    """The compiled kernels, once :func:`warm` has run."""

    observe: Any = None
    scores: Any = None
    following: Any = None
    sources_of: Any = None
    held_by: Any = None
    reasons: Any = None
    codes: Any = None
    retrieve: Any = None
    retrieve_many: Any = None
    candidates: Any = None
    rows: Any = None
    eligible: Any = None
    admit: Any = None
    factors: Any = None
    find: Any = None


def compiled() -> type[Kernels]:
    """The kernels, compiled (or loaded) first if they are not yet."""
    if Kernels.retrieve is None:
        warm()
    return Kernels


def warm(cache_dir: Path | None = None) -> float:
    """Compile the kernels, or load them from numba's cache in ``cache_dir`` (default: numba's
    own choice, beside the modules or in the user's cache directory); the seconds it took."""
    if Kernels.retrieve is not None:
        return 0.0
    import numba  # only when the kernels are wanted: its import takes a second

    from model import candidates, covisitation, reasons, retrieval, rules

    t0 = time.perf_counter()
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        numba.config.CACHE_DIR = str(cache_dir)  # type: ignore[attr-defined] # read by the dispatchers below
    log.info("kernels: compiling, or loading them from the cache in %s", cache_dir or "numba's default")
    njit = numba.njit(cache=True)
    # Callees first: a kernel calls the module globals they replace as compiled functions.
    for module, names in (
        (covisitation, ("_link_last", "_unlink", "_accumulate", "_scores", "_following", "_sources_of", "_held_by")),
        (
            retrieval,
            (
                *("_mark", "_take", "_rank_of", "_gathered", "_pooled", "_stable_rank", "_first", "_found"),
                *("_sources", "_rows", "_retrieve"),
            ),
        ),
        (reasons, ("_codes",)),
    ):
        for name in names:
            if not isinstance(getattr(module, name), numba.core.registry.CPUDispatcher):
                setattr(module, name, njit(getattr(module, name)))
    Kernels.observe = njit(covisitation._observe)
    Kernels.scores, Kernels.following = covisitation._scores, covisitation._following
    Kernels.sources_of, Kernels.held_by = covisitation._sources_of, covisitation._held_by
    Kernels.reasons, Kernels.codes = njit(reasons._reasons), reasons._codes
    Kernels.retrieve = retrieval._retrieve
    Kernels.candidates, Kernels.rows = njit(retrieval._candidates), njit(retrieval._kept_rows)
    Kernels.retrieve_many = njit(retrieval._retrieve_many)
    Kernels.eligible = njit(retrieval._eligible)
    for name in ("_before", "_sift"):
        if not isinstance(getattr(candidates, name), numba.core.registry.CPUDispatcher):
            setattr(candidates, name, njit(getattr(candidates, name)))
    Kernels.admit = njit(candidates._admit)
    Kernels.factors, Kernels.find = njit(rules._factors), njit(rules._find)
    retrieval.warm_up()
    reasons.warm_up()
    candidates.warm_up()
    rules.warm_up()
    spent = time.perf_counter() - t0
    log.info("kernels: ready in %.1f s", spent)
    return spent
