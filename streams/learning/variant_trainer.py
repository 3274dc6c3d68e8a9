"""A trainer variant's process (``shopguide trainer --variant NAME``).

It learns from the same training topic as the main trainer, in a consumer group of its own
(``<app id>-trainer-<variant>``, decision 004), with the training settings the variant changes
(:mod:`model.trainer_variants`), and publishes signed snapshots (full ones and deltas) as the main
trainer does, on the variant's own compacted topic (``<prefix>snapshots.<variant>``), which the
workers follow while an experiment in force names the variant. It resumes from the newest full
snapshot on that topic (the shipped warm start when there is none), and its versions always pass
the newest one published there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from model.scoring import load_warm_start
from model.snapshot import Snapshot
from streams.engine.training_host import TRAINER_POLL_S, TrainingHost
from streams.errors import SettingsError
from streams.kafka.followers import Follower
from streams.kafka.training_feed import TrainingFeed
from streams.kafka.transport import publish
from streams.learning.model_keeper import decode
from streams.learning.snapshot_topic import SnapshotAssembler
from streams.metrics import Metrics
from streams.processors.base import Outgoing
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


class _Resume:
    """The newest full snapshot published on the variant's topic, and the newest version."""

    def __init__(self, key: bytes) -> None:
        self.assembler = SnapshotAssembler(key)
        self.snapshot = load_warm_start()

    async def take(self, key: bytes | None, value: bytes | None) -> None:
        published = self.assembler.add(key, value)
        for problem in self.assembler.rejected:
            log.warning("variant snapshot topic: %s", problem)
        self.assembler.rejected.clear()
        if published is None or published.base is not None:
            return
        snapshot = await asyncio.to_thread(decode, published.data)
        if isinstance(snapshot, Snapshot) and snapshot.version > self.snapshot.version:
            self.snapshot = snapshot

    @property
    def newest(self) -> int:
        return max(self.snapshot.version, self.assembler.newest)


async def _send(out: Sequence[Outgoing], producer: AIOKafkaProducer | None) -> None:
    if producer is None:
        log.warning("the snapshot producer is not started: %d records of the trainer are dropped", len(out))
        return
    await publish(producer, [(o.topic, o.partition, o.key, o.value) for o in out])


async def run_variant_trainer(settings: Settings, variant: str) -> None:
    """Train variant ``variant`` until cancelled (the trainer child stopped on the way out)."""
    variants = settings.variant_table()
    if variant not in variants:
        declared = ", ".join(sorted(variants)) or "none"
        raise SettingsError(f"trainer variant {variant!r} is not in SHOPGUIDE_TRAINER_VARIANTS (declared: {declared})")
    if not settings.snapshot_key:
        raise SettingsError(
            "a trainer variant needs SHOPGUIDE_SNAPSHOT_KEY (or SHOPGUIDE_SNAPSHOT_KEY_FILE) to sign with"
        )
    topics = Topics(settings)
    topic = topics.variant_snapshots(variant)
    resume = _Resume(settings.snapshot_key_bytes)
    follower = Follower(settings, topic, resume.take, f"snapshots-{variant}")
    metrics = Metrics()
    host = TrainingHost(
        settings.with_(train=True),
        metrics,
        _send,
        start=lambda: resume.snapshot,
        newest=lambda: resume.newest,
        topic=topic,
        variant=variants[variant],
    )

    def elected() -> None:
        host.ensure_trainer()

    feed = TrainingFeed(
        settings,
        topics.training,
        submit=host.submit,
        on_elected=elected,
        on_deposed=host.stop_trainer,
        on_delay=metrics.train_feed_delay.set,
        group=f"trainer-{variant}",
    )
    tasks = [asyncio.create_task(follower.run())]
    try:
        await follower.caught_up.wait()  # resume from the newest published, not the warm start
        log.info("trainer variant %s resumes from version %d", variant, resume.snapshot.version)
        tasks.append(asyncio.create_task(feed.run()))
        while True:
            await asyncio.sleep(TRAINER_POLL_S)
            await host.publish()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        host.stop_trainer()
        await host.close_sender()
