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
