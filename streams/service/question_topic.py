"""Questions over Kafka: ``shopguide.questions`` in (key user_id), ``shopguide.answers`` out.

The guides share the topic through the consumer group ``<SHOPGUIDE_APP_ID>-guide``. Offsets are
committed after the batch's answers (and dead letters) are acknowledged: at least once, and an
answer names its question's ``event_id`` so that the shop's backend can drop a repeat. A question
that breaks the contract goes to the dead-letter topic with its reason and never stops the reader.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from streams.errors import InvalidEvent
from streams.events import parse_question
from streams.kafka.followers import reconnecting
from streams.messages import dead_letter
from streams.service.desk import AnswerDesk
from streams.service.guide_metrics import GuideMetrics
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

Send = Callable[[str, bytes | None, bytes], Awaitable[None]]


class QuestionTopic:
    def __init__(self, settings: Settings, desk: AnswerDesk, send: Send, metrics: GuideMetrics) -> None:
        self._settings = settings
        self._topics = Topics(settings)
        self._desk = desk
        self._send = send
        self._metrics = metrics

    async def run(self) -> None:
        await reconnecting("guide questions", self._consume)

    async def _consume(self) -> None:
        s = self._settings
        consumer = AIOKafkaConsumer(
            self._topics.questions,
            bootstrap_servers=s.bootstrap_servers,
            group_id=f"{s.app_id}-guide",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_wait_ms,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.heartbeat_s * 1000),
            client_id=f"{s.app_id}-guide-questions",
            **s.kafka_client_options(asyncio=True),
        )
        try:
            await consumer.start()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, records in batches.items():
                    for record in records:
                        await self._handle(tp.partition, record.offset, record.value)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _handle(self, partition: int, offset: int, payload: bytes | None) -> None:
        t = self._topics
        try:
            question = parse_question(payload, need_event_id=True)
        except InvalidEvent as exc:
            await self._dead_letter(partition, offset, payload, exc.reason, str(exc))
            return
        try:
            answer = await self._desk.answer(question, "kafka")
        except Exception as exc:  # a bug must not stop the reader: the question is kept, with the error
            log.exception("guide: cannot answer question %s", question.event_id)
            await self._dead_letter(partition, offset, payload, "internal", f"{type(exc).__name__}: {exc}"[:500])
            return
        value = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        await self._send(t.answers, question.user_id.encode("utf-8"), value)

    async def _dead_letter(self, partition: int, offset: int, payload: bytes | None, reason: str, error: str) -> None:
        self._metrics.invalid.labels("kafka", reason).inc()
        letter = dead_letter(
            source_topic=self._topics.questions,
            partition=partition,
            offset=offset,
            reason=reason,
            error=error,
            payload=payload,
            ts=time.time(),
            payload_max=self._settings.deadletter_payload_bytes,
        )
        await self._send(self._topics.deadletter, None, letter)
