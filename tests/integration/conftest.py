"""Integration fixtures: one embedded broker per test session, real worker processes, and unique
topic names and consumer groups per test module so that modules cannot see each other's events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port
from streams.cluster import WorkerProcess, get_json
from streams.producer import EventProducer
from streams.settings import Settings
from streams.testing import TopicReader
from streams.topics import Topics, create_topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


def fresh_settings(broker: EmbeddedBroker, data_root: Path, **changes: object) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings.from_env({}).with_(
        broker=broker.address,
        topic_prefix=f"t{run}.",
        app_id=f"shopguide-test-{run}",
        data_dir=data_root / "worker",
        web_port=free_port(),
        **changes,
    )


class Cluster:
    """A worker (or several) on fresh topics, with readers of every output topic."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        create_topics(settings)
        self.workers: list[WorkerProcess] = []
        self.producer = EventProducer(settings)
        self.recommendations = TopicReader(settings, self.topics.recommendations)
        self.sentiment = TopicReader(settings, self.topics.sentiment)
        self.deadletter = TopicReader(settings, self.topics.deadletter)

    def start_worker(self, **changes: object) -> WorkerProcess:
        settings = self.settings.with_(**changes) if changes else self.settings
        worker = WorkerProcess(settings).start()
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def wait_catalog(self, items: int, timeout_s: float = 20.0) -> None:
        """Until every worker's item view holds at least ``items`` items (catalog records reach it
        through the item table's changelog, a few milliseconds after they are produced)."""
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            while get_json(worker.url + "/healthz")[1]["catalog_items"] < items:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"catalog below {items} items after {timeout_s} s")
                time.sleep(0.05)

    def send(self, kind: str, key: str | None, payload: bytes) -> None:
        self.producer.send(getattr(self.topics, kind), key.encode() if key else None, payload)
        self.producer.flush()

    def close(self) -> None:
        # Workers before the broker: a worker whose broker is gone can hang on SIGTERM.
        for worker in self.workers:
            worker.stop()
        for reader in (self.recommendations, self.sentiment, self.deadletter):
            reader.close()
        self.producer.close()


@pytest.fixture(scope="module")
def cluster(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(fresh_settings(broker, tmp_path_factory.mktemp("cluster")))
    c.start_worker()
    yield c
    c.close()
