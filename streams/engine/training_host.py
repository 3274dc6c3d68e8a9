"""The trainer's host: the TensorFlow child process while this process holds the training topic,
and the publication of what it reports (metrics, signed snapshots, progress) on a producer of its
own. A worker hosts the main trainer; ``shopguide trainer --variant`` a trainer variant's
(:mod:`streams.learning.variant_trainer`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from model.snapshot import Snapshot
from streams.learning.snapshot_topic import PROGRESS_KEY, snapshot_records
from streams.learning.snapshot_topic import Progress as TrainerProgress
from streams.learning.trainer_process import TrainerProcess
from streams.metrics import Metrics
from streams.processors.base import Outgoing
from streams.settings import Settings

log = logging.getLogger(__name__)

SNAPSHOT_PRODUCER_RETRY_S = 5.0
#: How often the trainer's reports are read and published.
TRAINER_POLL_S = 0.1
#: Sends records without waiting for the broker, on the given producer (None: another one).
Send = Callable[[Sequence[Outgoing], AIOKafkaProducer | None], Awaitable[None]]


class TrainingHost:
    """Starts, feeds and stops the trainer, and publishes its reports. The training feed elects
    this worker (:meth:`ensure_trainer`), hands it examples (:meth:`submit`) and deposes it
    (:meth:`stop_trainer`); a timer calls :meth:`publish`."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        send: Send,
        *,
        start: Callable[[], Snapshot],
        newest: Callable[[], int],
        topic: str,
        variant: dict[str, Any] | None = None,
    ) -> None:
        """``start``: the snapshot a new trainer resumes from; ``newest``: the highest version
        published or served, which the trainer's versions must pass; ``topic``: where its
        snapshots go; ``variant``: the training settings of a trainer variant."""
        self._settings = settings
        self._metrics = metrics
        self._send = send
        self._start = start
        self._newest = newest
        self._variant = variant
        self._snapshots_topic = topic
        self.trainer: TrainerProcess | None = None
        self._snapshot_producer: AIOKafkaProducer | None = None
        self._snapshot_producer_retry = 0.0  # monotonic time of the next try to start it

    def ensure_trainer(self) -> TrainerProcess | None:
        if not self._settings.train:
            return None
        if self.trainer is None or not self.trainer.alive:
            if self.trainer is not None:
                log.error("the trainer process died; starting a new one from the served snapshot")
            s = self._settings
            self.trainer = TrainerProcess(
                self._start().to_bytes(),
                s.snapshot_interval_s,
                full_every=s.snapshot_full_every,
                full_interval_s=s.snapshot_full_interval_s,
                threads=s.trainer_threads,
                nice=s.trainer_nice,
                sentiment_negative_recall=s.sentiment_negative_recall,
                variant=self._variant,
            )
        return self.trainer

    async def publish(self) -> None:
        trainer = self.trainer
        if trainer is None:
            return
        out: list[Outgoing] = []
        for report in trainer.reports():
            if report.examples:
                self._metrics.train_step.observe(report.step_s)
                for task, loss in report.losses.items():
                    self._metrics.train_loss.labels(task).set(loss)
                for task, n in report.labels.items():
                    self._metrics.train_examples.labels(task).inc(n)
                self._metrics.train_skipped.inc(report.skipped)
            if report.snapshot is not None:
                try:
                    key = self._settings.snapshot_key_bytes
                    records = snapshot_records(report.snapshot, report.version, key, report.base)
                except ValueError as exc:  # a timer that raises stops the whole app
                    log.error("the trainer's snapshot is not published: %s", exc)
                    records = []
                out += [Outgoing(self._snapshots_topic, key, value) for key, value in records]
            progress = TrainerProgress(report.trained_until, report.examples, report.version)
            signed = progress.to_bytes(self._settings.snapshot_key_bytes)
            out.append(Outgoing(self._snapshots_topic, PROGRESS_KEY, signed))
        self._metrics.train_dropped.set(trainer.dropped)
        if out:
            await self._send(out, await self._snapshot_sender())

    async def _snapshot_sender(self) -> AIOKafkaProducer | None:
        """The trainer's snapshots travel on a producer (a broker connection) of their own.
        aiokafka sends one request at a time to a broker: on the engine's producer, the
        megabytes of a snapshot would go ahead of the recommendations of the batches processed
        meanwhile (docs/decisions/003-snapshot-producer.md). None while it cannot start
        (the broker is away; tried again every few seconds): the app's producer takes the
        records meanwhile."""
        if self._snapshot_producer is None and time.monotonic() >= self._snapshot_producer_retry:
            s = self._settings
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap_servers,
                acks="all",
                client_id=f"{s.app_id}-{self._snapshots_topic.removeprefix(s.topic_prefix)}",
                **s.kafka_client_options(asyncio=True),
            )
            try:
                await producer.start()
            except Exception as exc:  # noqa: BLE001 - a timer that raises stops the whole app
                log.warning(
                    "the snapshot producer could not start (%r); trying again in %.0f s", exc, SNAPSHOT_PRODUCER_RETRY_S
                )
                self._snapshot_producer_retry = time.monotonic() + SNAPSHOT_PRODUCER_RETRY_S
                with contextlib.suppress(Exception):
                    await producer.stop()
                return None
            self._snapshot_producer = producer
        return self._snapshot_producer

    async def close_sender(self) -> None:
        """Stop it, sending what is queued first, but not for long: behind a broker that is
        gone, the newest snapshot on disk is what a restart resumes from anyway."""
        producer, self._snapshot_producer = self._snapshot_producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), SNAPSHOT_PRODUCER_RETRY_S)
            except Exception as exc:  # noqa: BLE001 - shutting down either way
                log.warning("the snapshot producer did not stop cleanly: %r", exc)

    def submit(self, examples: list[bytes], newest: float) -> None:
        trainer = self.ensure_trainer()
        if trainer is not None:
            trainer.submit(examples, newest, self._newest())

    def stop_trainer(self) -> None:
        self._metrics.train_feed_delay.set(0.0)  # a worker that does not train is behind nothing
        if self.trainer is not None:
            self.trainer.stop()
            self.trainer = None
