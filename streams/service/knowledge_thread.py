"""The knowledge library on its own thread: every call to the ``KnowledgeBase`` runs there, in order.

The library is not thread-safe and embedding takes milliseconds, so it is driven from one
single-thread executor and never from the event loop: the HTTP routes, the Kafka intake and the
question consumer all await the same queue of calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def as_dict(value: Any) -> dict[str, Any]:
    """A library result's ``to_json()`` as a dict, whether it returns bytes, text or a dict."""
    out = value.to_json()
    if isinstance(out, bytes | str):
        out = json.loads(out)
    return dict(out)


class KnowledgeThread:
    def __init__(self, settings: Settings, path: Path) -> None:
        self._settings = settings
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="knowledge")
        self._kb: Any = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def open(self) -> bool:
        """Open (or create) the index; True when it existed, i.e. was restored rather than started empty."""
        from guide.knowledge import KnowledgeBase, single_threaded_blas

        single_threaded_blas()
        existed = self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        s = self._settings
        self._kb = await self._run(
            KnowledgeBase.open,
            str(self.path),
            max_sentences_per_item=s.guide_max_sentences,
            policy_path=s.guide_policy or None,
            use_encoder=s.guide_encoder,
        )
        return existed

    @property
    def encoder_available(self) -> bool:
        return bool(self._kb is not None and self._kb.encoder_available)

    async def ask(self, text: str, item_id: str | None, lang: str | None) -> dict[str, Any]:
        return as_dict(await self._run(self._kb.ask, text, item_id=item_id, lang=lang))

    async def add_items(self, items: list[dict[str, Any]]) -> list[tuple[int, str]]:
        return list(await self._run(self._kb.add_items, items))

    async def add_reviews(self, reviews: list[dict[str, Any]]) -> int:
        return int(await self._run(self._kb.add_reviews, reviews))

    async def set_sentiment(self, item_id: str, review_event_id: str, label: str, score: float) -> None:
        await self._run(self._kb.set_sentiment, item_id, review_event_id, label, score)

    async def draft_reply(self, review: dict[str, Any], label: str | None) -> dict[str, Any] | None:
        draft = await self._run(self._kb.draft_reply, review, label)
        return None if draft is None else as_dict(draft)

    async def stats(self) -> dict[str, Any]:
        return dict(await self._run(self._kb.stats))

    async def close(self) -> None:
        if self._kb is not None:
            await self._run(self._kb.close)
            self._kb = None
        self._executor.shutdown(wait=True)
