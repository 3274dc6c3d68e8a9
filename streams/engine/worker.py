"""``shopguide worker``: one engine worker process."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from pathlib import Path

import faust
from threadpoolctl import threadpool_limits

from model import kernels
from streams.engine.app import Engine
from streams.engine.collector import fewer_collections
from streams.kafka.embedded import resolve_broker_kind
from streams.settings import Settings
from streams.topics import create_topics, heal_changelogs

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_TRIM_THRESHOLD_BYTES = 64 << 20
_MMAP_THRESHOLD_BYTES = 1 << 20  # above per-batch temporaries, below the embedding tables


def _fix_malloc_thresholds() -> None:
    """A worker swaps in a new model every second or so: tens of MB of weight arrays allocated and
    freed. glibc raises its mmap threshold each time such a block is freed, after which those arrays
    come from the heap, whose freed memory it keeps, and the RSS rises in steps. Fixed thresholds
    keep them in their own mappings, returned on free; the trim threshold is fixed too, or the heap
    is trimmed and grown again around every batch (docs/reliability.md, the flood test)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
        ok &= libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc
        return
    if not ok:
        log.warning("mallopt refused: the RSS may grow in steps as models are swapped")


def _one_blas_thread() -> None:
    """The worker's matrix products are small, one event loop's worth per batch. OpenBLAS splits
    the larger ones (the interest head over the 5,000 categories of a 100,000-item catalog) over
    every core, and its helper thread spins between them, taking the CPU the trainer and the
    broker need."""
    threadpool_limits(limits=1)


def _redact_logs(secrets: list[str]) -> None:
    """Every log record of this process with the secrets replaced by ``***``, whichever library
    logs it (a connection error quoting a URL, a repr of credentials): a record factory sees them
    all, before any handler or filter."""
    if not secrets:
        return
    make = logging.getLogRecordFactory()

    def redacting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call is the handler's to report, not a crash here
            return record
        if any(s in message for s in secrets):
            for s in secrets:
                message = message.replace(s, "***")
            record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(redacting)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; Faust's worker stops agents, commits and closes tables."""
    settings.check_worker()
    _redact_logs(settings.secret_values())
    _fix_malloc_thresholds()
    fewer_collections()
    _one_blas_thread()
    if settings.create_topics:
        created, _ = create_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
    settings = resolve_broker_kind(settings)
    if settings.broker_kind == "embedded":
        heal_changelogs(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Before the consumer group is joined: no event waits for the compiler.
    kernels.warm(Path(settings.kernel_cache_dir or settings.data_dir / "numba-cache"))
    engine = Engine(settings)
    worker = faust.Worker(engine.app, loglevel=settings.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()
