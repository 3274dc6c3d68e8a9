"""Test-only fault, loaded by a worker started with this directory on ``PYTHONPATH``: the records
of one input partition in an offset range are dropped on their first way from the stream to the
agent, unacknowledged (as records dropped between the fetch and the agent are). ``DROP_RECORDS``
says which: ``topic:partition:first:last``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

_SPEC = os.environ.pop("DROP_RECORDS", None)  # not for the worker's children (its trainer)

if _SPEC:
    from streams.engine import app as _engine_app

    _topic, _partition, _first, _last = _SPEC.rsplit(":", 3)
    _log = logging.getLogger("drop_hook")
    _dropped: set[int] = set()
    _batches = _engine_app.acked_batches

    def _drops(message: Any) -> bool:
        offset = message.offset
        if message.topic != _topic or message.partition != int(_partition) or offset in _dropped:
            return False
        if not int(_first) <= offset <= int(_last):
            return False
        _dropped.add(offset)
        _log.warning("test fault: %s[%s]@%d dropped before the agent", _topic, _partition, offset)
        return True

    class _Manual:
        def __init__(self, manual: Any) -> None:
            self._manual = manual

        async def events(self) -> AsyncIterator[Any]:
            async for event in self._manual.events():
                if not _drops(event.message):
                    yield event

        async def ack(self, event: Any) -> bool:
            return bool(await self._manual.ack(event))

    class _Stream:
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def noack(self) -> _Manual:
            return _Manual(self._stream.noack())

    def _dropping_batches(stream: Any, *args: Any, **kwargs: Any) -> Any:
        return _batches(_Stream(stream), *args, **kwargs)

    _engine_app.acked_batches = _dropping_batches  # type: ignore[assignment]
