"""The TensorFlow trainer in a child process, so that the worker's event loop never waits for it.

Only the worker that owns the training topic's single partition starts one, on its first batch of
examples; the other workers never import TensorFlow. The child learns in micro-batches, exports a
snapshot at most every ``snapshot_interval_s`` when it has learned something new (a full one now
and then, deltas against it in between: :class:`~model.snapshot_delta.SnapshotEncoder`), and
reports its progress and losses. When more examples arrive than it can learn from, the newest batches wait in
a bounded queue and the excess is dropped (counted): training follows the stream, it does not
fall ever further behind it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from model.examples import packed_count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerReport:
    """What the child tells the worker: after each step, and with each snapshot."""

    trained_until: float  # newest event time learned from
    examples: int  # examples learned in this step (0 with a snapshot)
    step_s: float
    losses: dict[str, float]
    labels: dict[str, int]  # examples per task in this step
    snapshot: bytes | None = None
    version: int = 0
    base: int | None = None  # the full snapshot that ``snapshot`` is a delta against (None: full)
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0  # micro-batches of this step whose loss or gradient was not finite


def _child(
    inbox: Any,
    outbox: Any,
    resume: bytes | None,
    interval_s: float,
    full_every: int,
    full_interval_s: float,
    seed: int,
    parent: int,
    threads: int,
    nice: int,
    sentiment_negative_recall: float,
    variant: dict[str, Any],
) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A trainer on every core (TensorFlow's default) takes CPU from the worker's event loop, and on
    # one thread it learns no slower with micro-batches this small. Niceness trades serving for
    # older snapshots, so it is a setting, off by default (docs/benchmarks.md).
    os.nice(nice)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from model.config import TASKS, ModelConfig
    from model.errors import ExampleDecodeError
    from model.examples import unpack_examples
    from model.snapshot import Snapshot
    from model.snapshot_delta import SnapshotEncoder
    from model.trainer_variants import variant_config
    from model.training import Trainer

    start = Snapshot.from_bytes(resume) if resume else None
    # The shop's recall floor, not the one the snapshot was trained with, sets the threshold the
    # trainer chooses at each export.
    config = (start.config if start else ModelConfig()).with_(sentiment_negative_recall=sentiment_negative_recall)
    config = variant_config(config, variant)  # a variant's own training settings (none: the main trainer)
    if start is not None:
        start = dataclasses.replace(start, config=config)
    trainer = Trainer(config, seed=seed, resume=start)
    batch_size = trainer.config.batch_size
    pending: list[Any] = []
    newest = trained_until = 0.0
    last_export, learned_since_export = time.monotonic(), 0
    losses: dict[str, float] = {}
    # float16 halves what every worker fetches, assembles and checks; serving reads float32 either
    # way. Deltas carry only the rows changed since the last full snapshot.
    encoder = SnapshotEncoder("float16", full_every, full_interval_s)
    # Reports nobody will read (the worker asked to stop, or is gone) must not hold the exit: the
    # queue's feeder thread would wait for them to fit into a pipe that no one empties (a trainer
    # outlived its SIGKILLed worker by 40 minutes here).
    outbox.cancel_join_thread()
    while os.getppid() == parent:  # an orphan (the worker was killed) stops
        wait = max(0.02, interval_s - (time.monotonic() - last_export))
        try:
            message = inbox.get(timeout=min(wait, 1.0))
        except queue.Empty:
            message = None
        if message == "stop":
            return
        if message is not None:
            batch, ts, min_version = message
            for raw in batch:
                with contextlib.suppress(ExampleDecodeError):  # a foreign record: nothing to learn
                    pending += unpack_examples(raw)
            newest = max(newest, ts)
            trainer.version = max(trainer.version, min_version)
        if pending and (len(pending) >= batch_size or message is None):
            before = dict(trainer.counters)
            began = time.perf_counter()
            losses = trainer.learn_many(pending)
            labels = {t: trainer.counters[f"labels/{t}"] - before.get(f"labels/{t}", 0) for t in TASKS}
            skipped = trainer.counters["skipped_steps"] - before["skipped_steps"]
            outbox.put(
                TrainerReport(newest, len(pending), time.perf_counter() - began, losses, labels, skipped=skipped)
            )
            learned_since_export += len(pending)
            trained_until = newest
            pending = []
        if learned_since_export and time.monotonic() - last_export >= interval_s:
            snap = trainer.export(metrics=losses, extra={"trained_until": trained_until})
            data, base = encoder.encode(snap)
            outbox.put(TrainerReport(trained_until, 0, 0.0, losses, {}, data, snap.version, base))
            last_export, learned_since_export = time.monotonic(), 0


class TrainerProcess:
    def __init__(
        self,
        resume: bytes | None,
        snapshot_interval_s: float,
        *,
        full_every: int = 1,
        full_interval_s: float = 30.0,
        threads: int = 1,
        nice: int = 0,
        backlog: int = 8,
        sentiment_negative_recall: float = 0.0,
        variant: dict[str, Any] | None = None,
    ) -> None:
        """``variant``: the training settings a trainer variant changes (:mod:`model.trainer_variants`)."""
        ctx = mp.get_context("spawn")  # never fork a process that runs threads
        self._inbox = ctx.Queue(maxsize=backlog)
        self._outbox = ctx.Queue()
        self._proc = ctx.Process(
            target=_child,
            args=(
                self._inbox,
                self._outbox,
                resume,
                snapshot_interval_s,
                full_every,
                full_interval_s,
                0,
                os.getpid(),
                threads,
                nice,
                sentiment_negative_recall,
                variant or {},
            ),
            daemon=True,
            name="shopguide-trainer",
        )
        self._proc.start()
        self.dropped = 0

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def submit(self, examples: list[bytes], newest_ts: float, min_version: int) -> bool:
        """Queue packed examples (:func:`~model.examples.pack_examples` records) for training;
        False (and their examples counted) when the trainer is too far behind."""
        try:
            self._inbox.put_nowait((examples, newest_ts, min_version))
            return True
        except queue.Full:
            self.dropped += sum(map(packed_count, examples))
            return False

    def reports(self) -> list[TrainerReport]:
        out = []
        while True:
            try:
                out.append(self._outbox.get_nowait())
            except queue.Empty:
                return out

    def stop(self, timeout_s: float = 1.0) -> None:
        """Ask, then kill: the child keeps nothing worth waiting for (what it learnt since its last
        snapshot is lost either way), and a worker's SIGTERM must finish within seconds even while
        the child is still importing TensorFlow."""
        with contextlib.suppress(queue.Full):
            self._inbox.put_nowait("stop")
        self._proc.join(timeout_s)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        # Examples still in the pipe have no reader now: without this, exiting would wait for them.
        self._inbox.cancel_join_thread()
