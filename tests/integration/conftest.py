"""Integration fixtures: one embedded broker per test session, real worker processes, and unique
topic names and consumer groups per test module so that modules cannot see each other's events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.testing.harness import Cluster, fresh_settings
from streams.tools.broker import EmbeddedBroker, free_port
from streams.tools.cluster import WorkerProcess

FAULT_HOOK = Path(__file__).parent / "fault_hook"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture
def start_with_fault(monkeypatch: pytest.MonkeyPatch) -> Callable[[Cluster, str, str], WorkerProcess]:
    """Start a worker of a cluster with one test-only fault of ``fault_hook/sitecustomize.py``,
    given as its environment variable and value; the worker's children run without it."""

    def start(cluster: Cluster, variable: str, value: str) -> WorkerProcess:
        monkeypatch.setenv("PYTHONPATH", str(FAULT_HOOK))
        monkeypatch.setenv(variable, value)
        try:
            return cluster.start_worker()
        finally:
            monkeypatch.delenv(variable)

    return start


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
