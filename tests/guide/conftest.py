"""Fixtures of the guide's tests: the real encoder from the installed wheel, never the network."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from guide.knowledge import KnowledgeBase

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def kb() -> Iterator[KnowledgeBase]:
    """An empty in-memory knowledge base with the encoder."""
    base = KnowledgeBase.open(None)
    yield base
    base.close()


@pytest.fixture(scope="module")
def demo_kb() -> Iterator[KnowledgeBase]:
    """The gold demo catalog and its reviews, shared by a module's read-only tests."""
    from guide.evaluation import demo_knowledge_base

    base = demo_knowledge_base()
    yield base
    base.close()


def review(event_id: str, item_id: str, text: str, ts: float = 1_795_800_000.0, **extra: object) -> dict[str, object]:
    return {"event_id": event_id, "user_id": "u-1", "item_id": item_id, "text": text, "ts": ts, **extra}
