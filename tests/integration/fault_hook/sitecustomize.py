"""Test-only faults, loaded by a worker started with this directory on ``PYTHONPATH``, each set by
an environment variable on the records of one input partition on their way from the stream to
the agent:

* ``DROP_RECORDS=topic:partition:first:last``: the records in that offset range are dropped on
  their first way, unacknowledged (as records dropped between the fetch and the agent are).
* ``UNFETCH_AFTER=topic:partition:offset``: once the record at that offset has passed, the
  partition is left out of the fetch as a full stream buffer leaves it, and the buffer's drain is
  never signalled (the partition stalls while the others flow).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

# Popped: not for the worker's children (its trainer).
_DROP = os.environ.pop("DROP_RECORDS", None)
_UNFETCH = os.environ.pop("UNFETCH_AFTER", None)
_log = logging.getLogger("fault_hook")


def _dropper(spec: str) -> Callable[[Any, Any], bool]:
    topic, partition, first, last = spec.rsplit(":", 3)
    dropped: set[int] = set()

    def drops(message: Any, _consumer: Any) -> bool:
        offset = message.offset
        if message.topic != topic or message.partition != int(partition) or offset in dropped:
            return False
        if not int(first) <= offset <= int(last):
            return False
        dropped.add(offset)
        _log.warning("test fault: %s[%s]@%d dropped before the agent", topic, partition, offset)
        return True

    return drops


def _unfetcher(spec: str) -> Callable[[Any, Any], bool]:
    topic, partition, after = spec.rsplit(":", 2)
    done = False

    def unfetches(message: Any, consumer: Any) -> bool:
        nonlocal done
        if done or message.topic != topic or message.partition != int(partition) or message.offset < int(after):
            return False
        done = True
        tp = message.tp
        consumer._get_active_partitions().discard(tp)
        consumer._buffered_partitions.add(tp)
        _log.warning("test fault: %s[%s] left out of the fetch after offset %d", topic, partition, message.offset)
        return False

    return unfetches


_FAULTS = [make(spec) for make, spec in ((_dropper, _DROP), (_unfetcher, _UNFETCH)) if spec]

if _FAULTS:
    from streams.engine import app as _engine_app

    _batches = _engine_app.acked_batches

    class _Manual:
        def __init__(self, manual: Any, consumer: Any) -> None:
            self._manual = manual
            self._consumer = consumer

        async def events(self) -> AsyncIterator[Any]:
            async for event in self._manual.events():
                if not any([fault(event.message, self._consumer) for fault in _FAULTS]):
                    yield event

        async def ack(self, event: Any) -> bool:
            return bool(await self._manual.ack(event))

    class _Stream:
        def __init__(self, stream: Any) -> None:
            self._stream = stream

        def noack(self) -> _Manual:
            return _Manual(self._stream.noack(), self._stream.app.consumer)

    def _faulty_batches(stream: Any, *args: Any, **kwargs: Any) -> Any:
        return _batches(_Stream(stream), *args, **kwargs)

    _engine_app.acked_batches = _faulty_batches  # type: ignore[assignment]
