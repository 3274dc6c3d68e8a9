"""A processor's :class:`~streams.processors.base.Store` in a dict: what the processors' tests and
the in-process click-path benchmark use instead of a Faust table."""

from __future__ import annotations

from typing import Any


class MemoryStore:
    """Keys to state bytes in memory; ``puts`` counts writes (a duplicate must write again)."""

    def __init__(self, data: dict[str, bytes] | None = None) -> None:
        self.data: dict[str, bytes] = dict(data or {})
        self.puts = 0

    def get(self, key: str, handle: Any) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes, handle: Any) -> None:
        self.data[key] = value
        self.puts += 1

    def delete(self, key: str, handle: Any) -> None:
        self.data.pop(key, None)
