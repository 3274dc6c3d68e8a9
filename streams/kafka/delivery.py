"""Getting a batch's outputs to the broker: at least once, and past a record it refuses for good.

:meth:`Delivery.deliver` waits until the broker has acknowledged every record of a batch (its
outputs and its table changelog records), sending again what it refused: a broker that has just
lost and recreated its topics refuses some for a moment, and an acked event would otherwise have
lost its outputs. A record refused with an error that retrying cannot cure (too large, not
authorized, an invalid topic: :data:`REFUSALS_FOR_GOOD`) would stall its partition forever: after
``REFUSED_ATTEMPTS`` such refusals it goes to the dead-letter topic with the reason instead, and
the batch moves on. If the dead letter is refused for good too, the record is counted as lost and
:attr:`Delivery.lost` makes the worker report itself unhealthy (``/readyz``).

A table's changelog records reach the broker in the order the agents wrote them, whichever agent
wrote them: batches are queued to the producer one whole batch at a time, in the order they were
processed, and a record sent again after a failure is dropped once a newer record of the same
key has been queued (it carries the newer whole value). Otherwise two agents writing one user (clicks
and reviews) could leave an older state last in the changelog, and a standby taking over would
recover it.

:meth:`Delivery.send` is the fire-and-forget path, for what the next message supersedes anyway.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)

from streams import messages
from streams.kafka.transport import publish
from streams.metrics import Metrics
from streams.processors.base import Outgoing

log = logging.getLogger(__name__)

#: How often a record is refused for good before it is dead-lettered.
REFUSED_ATTEMPTS = 3
#: The longest wait between two attempts.
MAX_BACKOFF_S = 5.0


class Changelog(Protocol):
    """A table whose changelog records :class:`Delivery` sends: :class:`streams.kafka.transport.BatchTable`."""

    def changelog_sent(self, partition: int, offset: int) -> None: ...


class Publisher(Protocol):
    """What records are sent with: :meth:`streams.kafka.transport.App.publish`."""

    async def publish(
        self, records: Sequence[tuple[str, int | None, bytes | None, bytes | None]]
    ) -> list[asyncio.Future[Any]]: ...


#: What the broker (or the client, for its own size limit) answers a record it will never take. Not
#: every error Kafka marks not retriable: a timeout (``KafkaTimeoutError``) is one, and it only
#: means the broker was away; such a record is sent again until it is taken.
REFUSALS_FOR_GOOD: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    PolicyViolationError,
    CorruptRecordException,
    UnsupportedForMessageFormatError,
)


def refused_for_good(exc: BaseException) -> bool:
    """Whether sending the same record again cannot succeed."""
    return isinstance(exc, REFUSALS_FOR_GOOD)


class Delivery:
    """Sends the engine's records on the app's producer; ``changelogs`` are the tables whose
    changelog offsets are recorded once acknowledged."""

    def __init__(
        self,
        app: Publisher,
        metrics: Metrics,
        changelogs: Mapping[str, Changelog],
        deadletter_topic: str,
        payload_max: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._changelogs = changelogs
        self._deadletter = deadletter_topic
        self._payload_max = payload_max
        self._clock = clock
        #: How many records were lost: refused for good, and their dead letters refused too.
        self.lost = 0
        #: While :meth:`deliver` waits for acknowledgements: since when (monotonic) and for how many.
        self.waiting: tuple[float, int] | None = None
        #: Held while a batch's records are queued to the producer, so that batches of different
        #: agents are queued whole and in the order they were processed (FIFO: asyncio's lock
        #: lets no newcomer pass a waiter).
        self._queueing = asyncio.Lock()
        #: Per (topic, partition, key) with changelog records not yet acknowledged: the newest
        #: queued, and how many are open.
        self._open: dict[tuple[str, int | None, bytes | None], tuple[Outgoing, int]] = {}

    async def send(self, out: Sequence[Outgoing], producer: Any = None) -> None:
        """Send without waiting for the broker (item activity counts and the trainer's reports:
        the next flush or snapshot supersedes a lost one), on ``producer`` or the app's. Straight
        to aiokafka's accumulator, as :meth:`deliver` does: through ``Topic.send_soon`` every
        message would cross Faust's one-at-a-time producer buffer, whose backlog also pauses the
        delivery of input events."""
        records = [(o.topic, o.partition, o.key, o.value) for o in out]
        futures = await (self._app.publish(records) if producer is None else publish(producer, records))
        for o, future in zip(out, futures, strict=True):
            future.add_done_callback(functools.partial(self._sent, o.topic))

    def _sent(self, topic: str, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            log.warning("a message to %s was not sent: %r", topic, None if future.cancelled() else future.exception())
            return
        self._metrics.published.labels(topic).inc()

    async def deliver(self, out: Sequence[Outgoing]) -> None:
        """Send and wait until the broker has acknowledged every record (or a record refused for
        good was dead-lettered in its place)."""
        delay = 0.1
        pending = [(o, 0) for o in out]  # with how often the broker refused it for good so far
        async with self._queueing:
            for o in out:
                self._opened(o)
            futures = await self._app.publish([(o.topic, o.partition, o.key, o.value) for o in out])
        try:
            while True:
                pending = await self._acknowledged(pending, futures)
                if not pending:
                    return
                await asyncio.sleep(delay)
                delay = min(2 * delay, MAX_BACKOFF_S)
                async with self._queueing:
                    # A newer record of the key, queued since, carries the newer value.
                    pending = [(o, n) for o, n in pending if not self._superseded(o)]
                    futures = await self._app.publish([(o.topic, o.partition, o.key, o.value) for o, _ in pending])
        except BaseException:  # cancelled: the batch is abandoned, its records no longer open
            for o, _ in pending:
                self._closed(o)
            raise

    async def _acknowledged(
        self, pending: list[tuple[Outgoing, int]], futures: list[asyncio.Future[Any]]
    ) -> list[tuple[Outgoing, int]]:
        """Waits for the broker's answers to ``pending``: what is to be sent again (dead letters
        in place of records refused for good ``REFUSED_ATTEMPTS`` times)."""
        # Faust commits an event's offset once it is acked (when the agent's body returns) but
        # never waits for what its processing sent. Every effect of a batch, its table
        # changelog records included, is in ``out``: waiting for all of them here makes an
        # acked event's effects durable before its offset can be committed.
        self.waiting = (time.monotonic(), len(futures))
        try:
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self.waiting = None
        failed: list[tuple[Outgoing, int]] = []
        poisoned: list[tuple[Outgoing, BaseException]] = []
        error: BaseException | None = None
        sent: Counter[str] = Counter()
        for (o, refusals), r in zip(pending, results, strict=True):
            if isinstance(r, BaseException):
                error, refusals = r, refusals + refused_for_good(r)
                if refusals >= REFUSED_ATTEMPTS:
                    poisoned.append((o, r))
                else:
                    failed.append((o, refusals))
                continue
            sent[o.topic] += 1
            table = self._changelogs.get(o.topic)
            if table is not None:
                table.changelog_sent(r.partition, r.offset)
                self._closed(o)
        for topic, n in sent.items():
            self._metrics.published.labels(topic).inc(n)
        failed += [(letter, 0) for letter in self._dead_letters(poisoned)]
        if failed:
            log.warning(
                "the broker refused %d of %d messages (%r): sending them again",
                len(failed),
                len(pending),
                error,
            )
            self._metrics.resent.inc(len(failed))
        return failed

    def _opened(self, o: Outgoing) -> None:
        if o.topic in self._changelogs:
            key = (o.topic, o.partition, o.key)
            self._open[key] = (o, self._open.get(key, (o, 0))[1] + 1)

    def _closed(self, o: Outgoing) -> None:
        key = (o.topic, o.partition, o.key)
        if key in self._open:
            newest, n = self._open[key]
            if n > 1:
                self._open[key] = (newest, n - 1)
            else:
                del self._open[key]

    def _superseded(self, o: Outgoing) -> bool:
        """Whether ``o`` is a changelog record a newer one of its key was queued after (closed then)."""
        if o.topic not in self._changelogs or self._open[(o.topic, o.partition, o.key)][0] is o:
            return False
        self._closed(o)
        return True

    def _dead_letters(self, poisoned: list[tuple[Outgoing, BaseException]]) -> list[Outgoing]:
        """Dead letters in place of records the broker refuses for good. A dead letter refused
        for good is lost: counted, and the worker reports it."""
        letters = []
        for o, exc in poisoned:
            self._closed(o)
            size = len(o.value or b"")
            if o.topic == self._deadletter:
                log.error("the broker refuses a %d-byte dead letter for good (%r): it is lost", size, exc)
                self.lost += 1
                self._metrics.lost.inc()
                continue
            log.error("the broker refuses a %d-byte message to %s for good (%r): dead-lettered", size, o.topic, exc)
            self._metrics.deadletters.labels("refused").inc()
            value = messages.dead_letter(
                source_topic=o.topic,
                partition=-1 if o.partition is None else o.partition,
                offset=-1,
                reason="refused",
                error=f"the broker refused this output for good: {exc!r}"[:500],
                payload=o.value,
                payload_max=self._payload_max,
                ts=self._clock(),
            )
            letters.append(Outgoing(self._deadletter, None, value))
        return letters
