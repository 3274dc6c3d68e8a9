"""Integration fixtures: one embedded broker per test session, real worker processes, and unique
topic names and consumer groups per test module so that modules cannot see each other's events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.testing.harness import Cluster, fresh_settings
from streams.tools.broker import EmbeddedBroker, free_port


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture(scope="module")
def cluster(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Every click answered on its own, also when a loaded machine holds the worker up (clicks that
    # waited in Kafka would share one recommendation, and a test counts one per click).
    c = Cluster(fresh_settings(broker, tmp_path_factory.mktemp("cluster"), coalesce_after_ms=1e9))
    c.start_worker()
    yield c
    c.close()


@pytest.fixture(scope="module")
def two_workers(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two workers sharing the partitions of fresh topics."""
    root = tmp_path_factory.mktemp("two")
    c = Cluster(fresh_settings(broker, root))
    try:
        c.start_worker()
        c.start_worker(web_port=free_port(), data_dir=root / "second")
        yield c
    finally:
        c.close()
