"""The ``shopguide guide`` process: its parts wired together, started and stopped in order.

Start: topics (when ``SHOPGUIDE_CREATE_TOPICS``), the knowledge index and the knowledge gaps (each a
RocksDB in the data dir), a producer, the Kafka readers (knowledge intake, recommendations,
questions) and the HTTP server. SIGTERM or SIGINT stops the HTTP server first (open page streams
end, browsers reconnect to the next guide), then the readers, the producer, the index and the gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.events import Click
from streams.kafka.followers import Follower
from streams.service.desk import AnswerDesk
from streams.service.drafting import NegativeReviewWatch
from streams.service.feeds import FeedHub
from streams.service.gaps import KnowledgeGaps
from streams.service.guide_metrics import GuideMetrics
from streams.service.intake import KnowledgeIntake, OffsetStore
from streams.service.knowledge_thread import KnowledgeThread
from streams.service.question_topic import QuestionTopic
from streams.service.routes import build_app
from streams.service.sessions import SessionSigner, session_key
from streams.service.shelf import Shelf
from streams.settings import Settings
from streams.topics import Topics, create_topics

log = logging.getLogger(__name__)


class GuideService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.metrics = GuideMetrics()
        self.shelf = Shelf()
        self.hub = FeedHub()
        self.signer = SessionSigner(session_key(settings), settings.guide_session_ttl_s)
        data = settings.data_dir
        self.gaps = KnowledgeGaps(data / "gaps")
        self.knowledge = KnowledgeThread(settings, data / "knowledge")
        self.offsets = OffsetStore(data / "knowledge-offsets.json")
        self.desk = AnswerDesk(self.knowledge, self.shelf, self.gaps, self.metrics, self.send_click)
        self.intake = KnowledgeIntake(
            settings,
            self.knowledge,
            self.offsets,
            self.shelf,
            self.hub,
            NegativeReviewWatch(),
            self.metrics,
            self.publish_draft,
        )
        self.recommendations = Follower(settings, self.topics.recommendations, self._recommendation, "guide-recs")
        self.questions = QuestionTopic(settings, self.desk, self.send, self.metrics)
        self.closing = asyncio.Event()
        self.failed = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    @property
    def ready(self) -> bool:
        return self.intake.caught_up.is_set() and self.recommendations.caught_up.is_set()

    def _recommendation(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            return
        rec = json.loads(value)
        self.hub.publish(str(rec["user_id"]), rec)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(topic, value, key=key)

    async def send_click(self, click: Click) -> None:
        await self.send(self.topics.clicks, click.user_id.encode("utf-8"), click.to_json())

    async def publish_draft(self, item_id: str, draft: dict[str, Any]) -> None:
        value = json.dumps(draft, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        await self.send(self.topics.review_replies, item_id.encode("utf-8"), value)

    async def _start_producer(self) -> None:
        s = self.settings
        deadline = time.monotonic() + 60
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap_servers,
                acks="all",
                enable_idempotence=False,
                linger_ms=1,
                client_id=f"{s.app_id}-guide",
                **s.kafka_client_options(asyncio=True),
            )
            try:
                await producer.start()
            except KafkaError:
                await producer.stop()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            self._producer = producer
            return

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if s.create_topics:
            await asyncio.to_thread(create_topics, s)
        if not self.knowledge.path.exists():
            self.offsets.clear()  # offsets without their index would skip what it never held
        restored = await self.knowledge.open()
        self.metrics.encoder_available.set(1 if self.knowledge.encoder_available else 0)
        if not self.knowledge.encoder_available:
            log.warning("guide: the sentence encoder is not available; answering from BM25 alone")
        log.info("guide: knowledge index %s (%s)", self.knowledge.path, "restored" if restored else "new")
        await self._start_producer()
        for body in (self.intake.run, self.recommendations.run, self.questions.run, self._refresh_gauges):
            task = asyncio.create_task(body(), name=body.__qualname__)
            task.add_done_callback(self._task_ended)
            self._tasks.append(task)
        self._runner = web.AppRunner(build_app(self), shutdown_timeout=2.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, s.guide_bind, s.guide_port).start()
        log.info("guide: serving on http://%s:%d", s.guide_bind, s.guide_port)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A reader that ends before the guide stops is a bug: say so, and stop the guide (its
        supervisor restarts it) rather than serve stale answers."""
        if not self.closing.is_set() and not task.cancelled():
            log.error("guide: %s ended: %r; stopping", task.get_name(), task.exception())
            self.failed.set()

    async def _refresh_gauges(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            stats = await self.knowledge.stats()
            self.metrics.sentences.set(float(stats.get("sentences", 0)))
            self.metrics.streams.set(self.hub.streams)

    async def stop(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._producer is not None:
            await self._producer.stop()
        await self.knowledge.close()
        self.gaps.close()


async def _serve(settings: Settings) -> int:
    service = GuideService(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        stopping = asyncio.create_task(stop.wait())
        failing = asyncio.create_task(service.failed.wait())
        await asyncio.wait((stopping, failing), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()
        log.info("guide: stopping")
    finally:
        await service.stop()
    return 1 if service.failed.is_set() else 0


def run_guide(settings: Settings) -> int:
    return asyncio.run(_serve(settings))
