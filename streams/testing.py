"""Helpers for tests and benchmarks that talk to a real broker: read a topic in the background and
wait for the messages one expects, with a deadline instead of a sleep."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.settings import Settings
from streams.tail import messages


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

    def wait_for(
        self, predicate: Callable[[Any], bool], count: int = 1, timeout_s: float = 30.0
    ) -> list[Any]:
        """The values matching ``predicate`` once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = [r.value for r in self._items if predicate(r.value)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self.topic}: {len(found)} of {count} expected messages after {timeout_s} s"
                    )
                self._lock.wait(min(left, 0.5))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
