"""Answering one question, whichever way it came (HTTP or ``shopguide.questions``).

Besides the library's answer, a question about an item counts twice: as interest (a ``view`` click
for that shopper and item, so the live recommendations move) and, when it got no quoted evidence
or was handed to a person, as a knowledge gap of that item.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from streams.events import Click, Question
from streams.service.gaps import KnowledgeGaps
from streams.service.guide_metrics import GuideMetrics
from streams.service.knowledge_thread import KnowledgeThread
from streams.service.shelf import Shelf

log = logging.getLogger(__name__)


class AnswerDesk:
    def __init__(
        self,
        knowledge: KnowledgeThread,
        shelf: Shelf,
        gaps: KnowledgeGaps,
        metrics: GuideMetrics,
        send_click: Callable[[Click], Coroutine[Any, Any, None]],
    ) -> None:
        self._knowledge = knowledge
        self._shelf = shelf
        self._gaps = gaps
        self._metrics = metrics
        self._send_click = send_click
        self._sending: set[asyncio.Task[None]] = set()

    def _click_soon(self, click: Click) -> None:
        """Publish the click without holding the answer back for the broker's acknowledgement."""
        task = asyncio.create_task(self._send_click(click))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("guide: a question's view click was not published: %r", task.exception())

    async def answer(self, question: Question, channel: str) -> dict[str, Any]:
        started = time.perf_counter()
        body = await self._knowledge.ask(question.text, question.item_id, question.lang)
        self._metrics.ask_seconds.observe(time.perf_counter() - started)
        handoff = bool(body.get("handoff"))
        outcome = "handoff" if handoff else "answered"
        self._metrics.questions.labels(channel, str(body.get("intent", "other")), outcome).inc()
        now = time.time()
        if question.item_id is not None:
            self._gaps.record(
                question.item_id, question.text, answered=bool(body.get("evidence")), handoff=handoff, ts=now
            )
            category = self._shelf.category_of(question.item_id)
            if category is not None:  # a known item: the question is interest in it
                click = Click(f"ask-{uuid.uuid4().hex}", question.user_id, question.item_id, "view", now, category)
                self._click_soon(click)
        body["user_id"] = question.user_id
        body["item_id"] = question.item_id
        if question.event_id is not None:
            body["question_event_id"] = question.event_id
        return body
