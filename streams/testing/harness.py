"""Helpers for tests and benchmarks that talk to a real broker: read a topic in the background and
wait for the messages one expects, with a deadline instead of a sleep."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.events import ACTIONS, Click, Item, Review
from streams.settings import Settings
from streams.tools.broker import EmbeddedBroker, free_port
from streams.tools.cluster import GuideProcess, WorkerProcess, get_json, get_text
from streams.tools.producer import EventProducer
from streams.tools.tail import messages
from streams.topics import Topics, create_topics


@dataclass(frozen=True, slots=True)
class Received:
    partition: int
    offset: int
    key: bytes | None
    value: Any  # parsed JSON, or the raw bytes when the value is not JSON
    received: float  # time.time() when this process read it


class TopicReader:
    """Collects every message of a topic, from its beginning, in a background thread."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._settings = settings
        self._items: list[Received] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"reader-{topic}")
        self._thread.start()

    def _run(self) -> None:
        for partition, offset, key, value in messages(self._settings, self.topic, True, None, self._stop):
            try:
                parsed: Any = json.loads(value or b"")
            except ValueError:
                parsed = value
            with self._lock:
                self._items.append(Received(partition, offset, key, parsed, time.time()))
                self._lock.notify_all()

    @property
    def items(self) -> list[Received]:
        with self._lock:
            return list(self._items)

    def wait_for(self, predicate: Callable[[Any], bool], count: int = 1, timeout_s: float = 30.0) -> list[Any]:
        """The values matching ``predicate`` once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = [r.value for r in self._items if predicate(r.value)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.topic}: {len(found)} of {count} expected messages after {timeout_s} s")
                self._lock.wait(min(left, 0.5))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


#: The compiled kernels' cache of every worker tests start: one compile, not one per data dir.
KERNEL_CACHE_DIR = Path(tempfile.gettempdir()) / "shopguide-test-kernels"


def fresh_settings(broker: EmbeddedBroker, data_root: Path, **changes: object) -> Settings:
    """Settings for a throwaway engine: its own topics, consumer group, data dir, port and secrets,
    and no practical rate limit on its API (a test that checks the limit sets its own)."""
    run = uuid.uuid4().hex[:8]
    base = Settings.from_env({}).with_generated_secrets()  # the workers' and the trainer's, for this run
    changes = {"api_rate": 1e6, "api_burst": 1_000_000, **changes}
    return base.with_(
        broker=broker.address,
        topic_prefix=f"t{run}.",
        app_id=f"shopguide-test-{run}",
        data_dir=data_root / "worker",
        kernel_cache_dir=str(KERNEL_CACHE_DIR),
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
        self.guides: list[GuideProcess] = []
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

    def start_guide(self, data_dir: Path, **changes: object) -> GuideProcess:
        """A ``shopguide guide`` on these topics, with its own data dir and port, demo login on."""
        settings = self.settings.with_(
            data_dir=data_dir, guide_port=free_port(), guide_demo_login=True, guide_secret="test-" + "k" * 27, **changes
        )
        guide = GuideProcess(settings).start()
        self.guides.append(guide)
        guide.wait_ready()
        return guide

    def add_items(self, prefix: str, categories: tuple[str, ...], count: int = 40) -> None:
        """``count`` in-stock items ``<prefix>-<n>``, the n-th in ``categories[n % len]``, on every
        worker's item view before this returns."""
        for n in range(count):
            item = Item(f"{prefix}-{n}", categories[n % len(categories)], f"thing {n}", in_stock=True, ts=time.time())
            self.producer.send(self.topics.items, item.item_id.encode(), item.to_json())
        self.producer.flush()
        self.wait_catalog(count)

    def wait_catalog(self, items: int, timeout_s: float = 20.0) -> None:
        """Until every worker's item view holds at least ``items`` items (catalog records reach it
        through the item table's changelog, a few milliseconds after they are produced)."""
        deadline = time.monotonic() + timeout_s
        for worker in self.workers:
            while get_json(worker.url + "/readyz")[1]["catalog_items"] < items:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"catalog below {items} items after {timeout_s} s")
                time.sleep(0.05)

    def send(self, kind: str, key: str | None, payload: bytes) -> None:
        self.producer.send(getattr(self.topics, kind), key.encode() if key else None, payload)
        self.producer.flush()

    def close(self) -> None:
        """Guides stopped, workers killed (their tests are over: a clean stop, tested where it
        matters, would take seconds each), then the readers and the producer. A worker is killed
        with its process group, its trainer included: an orphaned trainer may run on for minutes."""
        for guide in self.guides:
            guide.stop()
        for worker in self.workers:
            if worker.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.proc.pid, signal.SIGKILL)  # its own group (start_new_session)
            worker.kill()
        for reader in (self.recommendations, self.sentiment, self.deadletter):
            reader.close()
        self.producer.close()


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """The first truthy value of ``predicate``, polled; AssertionError naming ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.3)


def counts_of(url: str, user: str) -> dict[str, int] | None:
    status, body = get_json(f"{url}/users/{user}")
    return body["counts"] if status == 200 else None


def wait_until_exact(
    url: str, expected: dict[str, Counter[str]], stall_s: float
) -> dict[str, tuple[dict[str, int] | None, dict[str, int]]]:
    """Users whose counts differ from ``expected`` once they match, or once nothing has changed
    for ``stall_s`` (a shared, loaded machine may be slow; a stuck or lossy worker stops moving)."""
    last_seen: object = None
    last_change = time.monotonic()
    while True:
        wrong: dict[str, tuple[dict[str, int] | None, dict[str, int]]] = {}
        for user, want in expected.items():
            got = counts_of(url, user)
            if got is None or any(got[a] != want[a] for a in ACTIONS):
                wrong[user] = (got, dict(want))
        if not wrong:
            return wrong
        if wrong != last_seen:
            last_seen, last_change = wrong, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            return wrong
        time.sleep(1.0)


def progress_report(url: str, topic: str) -> str:
    """What a worker says about its progress on ``topic``: its health, its consumer lag and its
    event counters. Printed beside wrong counts, it tells a worker that stopped moving (lag left,
    or no partition assigned) from one that consumed everything and lost events (no lag)."""
    try:
        status, health = get_json(f"{url}/readyz")
        text = get_text(f"{url}/metrics")
    except OSError as exc:
        return f"worker unreachable: {exc!r}"
    quoted = f'topic="{topic}"'
    lines = [
        line
        for line in text.splitlines()
        if quoted in line and line.startswith(("shopguide_consumer_lag", "shopguide_events_total"))
    ]
    return f"readyz {status} {health}; " + "; ".join(lines or ["no lag or event metric: no partition assigned"])


class ClickStream(threading.Thread):
    """A thread sending random clicks of ``{prefix}-user-N`` (ids ``{prefix}-N``) at ``rate`` a
    second; ``expected`` counts what was sent, per user and action, to compare with the engine's.
    With ``review_every`` n, every n-th event is a review instead, counted in ``reviews`` (per
    user) and ``item_reviews`` (per item)."""

    def __init__(
        self, cluster: Cluster, prefix: str, events: int, users: int, rate: float, review_every: int = 0
    ) -> None:
        super().__init__(daemon=True, name=f"clicks-{prefix}")
        self.cluster, self.prefix, self.events, self.rate = cluster, prefix, events, rate
        self.review_every = review_every
        self.expected: dict[str, Counter[str]] = {f"{prefix}-user-{u}": Counter() for u in range(users)}
        self.reviews: Counter[str] = Counter()
        self.item_reviews: Counter[str] = Counter()
        self.click_ids: set[str] = set()
        self.review_ids: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        rng = random.Random(self.prefix)
        users = sorted(self.expected)
        start = time.monotonic()
        for n in range(self.events):
            user = rng.choice(users)
            action = rng.choices(("view", "click", "cart", "fav", "buy"), weights=(60, 25, 6, 5, 4))[0]
            event_id, item = f"{self.prefix}-{n}", f"{self.prefix}-item-{rng.randrange(200)}"
            if self.review_every and n % self.review_every == self.review_every - 1:
                text = rng.choice(("good, works well", "broken on arrival", "fine"))
                review = Review(event_id, user, item, text, time.time(), rng.randint(1, 5))
                self.cluster.producer.send(self.cluster.topics.reviews, user.encode(), review.to_json())
                self.reviews[user] += 1
                self.item_reviews[item] += 1
                self.review_ids.add(event_id)
            else:
                click = Click(event_id, user, item, action, time.time(), "c")
                self.cluster.producer.send(self.cluster.topics.clicks, user.encode(), click.to_json())
                self.expected[user][action] += 1
                self.click_ids.add(event_id)
            time.sleep(max(0.0, start + (n + 1) / self.rate - time.monotonic()))
        self.cluster.producer.flush()
        self.done.set()
