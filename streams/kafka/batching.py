"""Batches of stream events that are acknowledged only after they were processed.

Faust's ``Stream.take_events`` acknowledges a batch in a ``finally`` block: also when the agent's
work on it raised, so that events whose effects never became durable could be committed. Here one
task reads events from a manual-ack stream into a bounded queue, the agent takes up to
``max_events`` of them (waiting at most ``within_s`` after the first), and each event is acked
only when the agent asks for the next batch, that is after its batch was processed *and* what it
sent was flushed. If the agent fails, nothing of the batch is acked. A full queue stops the
reader, and Faust's flow control then pauses fetching: memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from streams.settings import Settings


def fill_wait(settings: Settings) -> Callable[[Any], float]:
    """How long a batch waits to fill, from its first event: ``batch_wait_ms``, or
    ``batch_wait_behind_ms`` once that event waited longer than ``coalesce_after_ms`` in Kafka.
    Behind its input, a worker fills its batches: fewer, larger steps cost less per event."""
    within, catching_up = settings.batch_wait_ms / 1000.0, settings.batch_wait_behind_ms / 1000.0
    behind = settings.coalesce_after_ms / 1000.0

    def wait_for_more(first: Any) -> float:
        return catching_up if time.time() - first.message.timestamp > behind else within

    return wait_for_more


async def acked_batches(
    stream: Any, max_events: int, within_s: float | Callable[[Any], float]
) -> AsyncIterator[list[Any]]:
    """Yield lists of events; each list is acked when the consumer of this generator asks for the
    next one (or stops). ``within_s`` may depend on the batch's first event (a worker that runs
    behind gains nothing from a short wait, and pays per batch)."""
    wait_for_more = within_s if callable(within_s) else (lambda _event: within_s)
    manual = stream.noack()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2 * max_events)

    async def read() -> None:
        async for event in manual.events():
            await queue.put(event)

    reader = asyncio.ensure_future(read())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                reader.result()  # the stream ended or failed: re-raise its error
                return
            batch = [getter.result()]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_for_more(batch[0])
            while len(batch) < max_events:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            yield batch
            for event in batch:
                await manual.ack(event)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
