"""Faust's Kafka transport, with the corrections the engine depends on (the evidence for each is
in docs/decisions/001-transport-corrections.md):

* **Fetch wait** from ``SHOPGUIDE_FETCH_WAIT_MS`` instead of Faust's fixed 1.5 s: a broker that
  answers a fetch only when its wait expires would add the whole wait to every event's latency.
* **No records from before a seek**: a fetch that overlapped a seek is dropped and the consumer
  seeks back to the committed offsets, so no offset is ever counted as acknowledged unprocessed.
* **No records past a hole**: :class:`Continuity` checks each partition's first fetched record and
  Faust's read offset against the offset the partition owes, and seeks back when they differ.
* **Outputs by the batch**: :meth:`App.publish` appends a batch's outputs to aiokafka's
  accumulator directly instead of Faust's one-at-a-time ``send_soon`` buffer, and
  :class:`BatchTable` sends table changelog records with the batch's outputs.
* **A livelock check that cannot crash the worker**: partitions just sought have no position yet
  and are skipped until they do.
* **A seek that a rebalance overtakes** is abandoned: the rebalance's recovery seeks every
  partition it assigns.
* **Logs that restarted** (a broker that lost its topics) are read from their beginning, and what
  Faust remembered of them is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers import aiokafka as driver

log = logging.getLogger(__name__)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the value privately and reads it when the consumer starts.
        consumer._fetch_max_wait_ms = self.app.conf.fetch_wait_ms
        return consumer

    def verify_event_path(self, now: float, tp: Any) -> None:
        if not has_position(self._ensure_consumer(), tp):
            return None
        return super().verify_event_path(now, tp)


def has_position(consumer: Any, tp: Any) -> bool:
    """Whether aiokafka knows where ``tp`` is read from (not right after a seek or reset)."""
    assignment = consumer._fetcher._subscriptions.subscription.assignment
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition)) if assignment else None
    return state is not None and state.has_valid_position


#: How long after topics were created again a rebalance still reads them from their beginning.
RESTARTED_LOG_WINDOW_S = 60.0
#: How long the lag's refresh waits for the broker's end offsets before it uses the last fetch's.
END_OFFSETS_WAIT_S = 1.0


class _Consumer(driver.Consumer):
    _seeks = 0  # incremented around every seek to the committed offsets
    _restarted: dict[str, float]  # topic -> when it was created again (monotonic)
    _continuity: Continuity
    _resume_logged: dict[str, dict[int, int | None]] | None = None
    _refetches: dict[Any, int]  # partition -> how often it was fetched again (refetch)
    _fetched_with: dict[Any, int]  # _refetches when the records being handed on were fetched
    _listing: asyncio.Future[Any] | None = None  # the end offsets asked of the broker, until answered

    def __post_init__(self) -> None:
        super().__post_init__()
        self._restarted = {}
        self._continuity = Continuity()
        self._refetches = {}
        self._fetched_with = {}

    async def restart_topics(self, topics: set[str]) -> None:
        """These topics were created again, empty: read them from their beginning, now and at the
        rebalances of the next minute (the group rejoins a restarted broker around this time)."""
        now = time.monotonic()
        self._restarted = {t: at for t, at in self._restarted.items() if now - at < RESTARTED_LOG_WINDOW_S}
        self._restarted.update(dict.fromkeys(topics, now))
        await self.perform_seek()

    def blocked_inputs(self) -> dict[str, list[str]]:
        """Assigned input partitions whose records cannot reach the agents, by why: ``paused``
        (Faust pauses them for a rebalance and resumes them after its recovery), ``buffered``
        (left out of the fetch until their stream's buffer drains), ``inactive`` (left out of the
        fetch for no reason Faust keeps), ``no_position`` (aiokafka does not know where to read).
        Empty on a healthy worker that is not behind."""
        consumer = self._thread._ensure_consumer()
        active = self._active_partitions or set()
        found: dict[str, list[str]] = {}
        for tp in sorted(self.assignment()):
            if not self.app.topics.acks_enabled_for(tp.topic):
                continue
            name = f"{tp.topic}[{tp.partition}]"
            if tp in self._paused_partitions:
                found.setdefault("paused", []).append(name)
            elif tp in self._buffered_partitions:
                found.setdefault("buffered", []).append(name)
            elif tp not in active:
                found.setdefault("inactive", []).append(name)
            if not has_position(consumer, tp):
                found.setdefault("no_position", []).append(name)
        if not self.flow_active:
            found["flow"] = ["stopped"]
        return found

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        """Each partition's end as the broker says it now (a partition left out of the fetch
        keeps its last fetch's, however old), or the last fetch's if the broker does not answer
        within a second. One question at a time: an unanswered one, which holds one of the
        consumer thread's two workers, is waited for again rather than asked anew."""
        ends = {tp: self.highwater(tp) for tp in tps}
        if self._listing is None or self._listing.done():
            self._listing = asyncio.ensure_future(self._thread.highwaters(*tps))
            self._listing.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            listed = await asyncio.wait_for(asyncio.shield(self._listing), END_OFFSETS_WAIT_S)
        except (TimeoutError, KafkaError, ConsumerNotStarted) as exc:  # refreshed again soon
            log.debug("end offsets not listed (%r): the last fetch's are used", exc)
            return ends
        return {tp: max(end if end is not None else -1, listed.get(tp, -1)) for tp, end in ends.items()}

    async def skipped_inputs(self, owed: dict[Any, int]) -> dict[Any, int]:
        """Of ``owed`` (partition -> the next offset its agents are owed, with records waiting
        from there), the partitions whose fetch position is past that offset: records fetched and
        never delivered, which no later fetch returns. Only meaningful for partitions of which the
        agents hold no record (stalled ones)."""
        consumer = self._thread._ensure_consumer()
        skipped: dict[Any, int] = {}
        for tp, offset in owed.items():
            if has_position(consumer, tp):
                position = await self._thread.position(tp)
                if position is not None and position > offset:
                    skipped[tp] = offset
        return skipped

    async def refetch(self, offsets: dict[Any, int]) -> None:
        """Fetch these partitions again from these offsets. Their records already fetched and not
        yet handed on are dropped: past the lowered read offset, Faust would record the offsets
        between as a gap, which it counts as acknowledged."""
        self._continuity.rewind(offsets)
        for tp in offsets:
            self._refetches[tp] = self._refetches.get(tp, 0) + 1
        with _unless_rebalanced():
            await self._thread.seek_wait(offsets)

    async def revive(self, offsets: dict[Any, int]) -> None:
        """Fetch these stalled partitions again from these offsets (the next each owes its
        agents), put back into the fetch whatever took them out of it: a pause a rebalance never
        resumed, or a full stream buffer whose drain was never signalled."""
        self.resume_partitions(set(offsets))
        self._buffered_partitions.difference_update(offsets)
        await self.refetch(offsets)

    def resumed_at(self, tp: Any) -> int | None:
        """The offset this worker took ``tp`` up from, or has committed since (None: unknown)."""
        return self._committed_offset.get(tp)

    def _forget(self, tp: Any) -> None:
        for offsets in (self._gap, self._acked, self._acked_index, self._read_offset, self._committed_offset):
            offsets.pop(tp, None)

    def _new_offset(self, tp: Any) -> int | None:
        # Faust commits the first run of acknowledged offsets unless it starts more than one past
        # the committed offset: a one-offset hole right at it is committed past (docs/reliability.md).
        return bounded_commit(super()._new_offset(tp), cast(App, self.app).commit_bound(tp))

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        self._seeks += 1
        try:
            with _unless_rebalanced():
                await self._seek_committed()
        finally:
            self._seeks += 1

    async def _seek_committed(self) -> None:
        await super().perform_seek()
        # aiokafka seeks only partitions whose committed offset is above 0 and leaves the
        # others wherever fetching got to, past records already dropped by the rebalance.
        now = time.monotonic()
        for tp in self.assignment():
            if tp.topic in self._restarted and now - self._restarted[tp.topic] < RESTARTED_LOG_WINDOW_S:
                self._forget(tp)
        fresh = [
            tp
            for tp in self.assignment()
            if self.app.topics.acks_enabled_for(tp.topic) and not self._read_offset.get(tp)
        ]
        if fresh:
            await self._thread.seek_to_beginning(*(driver.ensure_aiokafka_TP(tp) for tp in fresh))
        inputs = sorted(tp for tp in self.assignment() if self.app.topics.acks_enabled_for(tp.topic))
        owed = {tp: self.resumed_at(tp) for tp in inputs if tp not in fresh}
        self._continuity.resume({tp: offset for tp, offset in owed.items() if offset is not None})
        for resumed in cast(App, self.app).on_inputs_resumed:
            resumed({tp: owed.get(tp) for tp in inputs})
        # Where each input partition resumes (None: its beginning): what a worker inherits.
        resume: dict[str, dict[int, int | None]] = {}
        for tp in inputs:
            resume.setdefault(tp.topic, {})[tp.partition] = owed.get(tp)
        if resume != self._resume_logged:  # a rebalance seeks twice: say it once
            self._resume_logged = resume
            log.info("input partitions resume at %s", resume)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109 - Faust signature
        seeks = self._seeks
        records = await super()._getmany(active_partitions, timeout)
        self._fetched_with = dict(self._refetches)
        if self._seeks != seeks:
            await self.perform_seek()
            return {}
        return await self._contiguous(records)

    async def getmany(self, timeout: float) -> Any:  # noqa: ASYNC109 - Faust signature
        """Faust's, stopped at a seek: records fetched before it must not reach the agents after
        it (nor move the read offsets past what the seek asks for)."""
        seeks = self._seeks
        async for tp, message in super().getmany(timeout):
            if self._seeks != seeks:
                break
            if self._refetches.get(tp) != self._fetched_with.get(tp):
                continue  # fetched before the partition was fetched again
            yield tp, message

    async def _contiguous(self, records: Any) -> Any:
        guarded = self.app.topics.acks_enabled_for
        # Faust drops records below a partition's read offset. Only a delivery that straddled a
        # seek leaves it past the offset the partition owes; it would drop the records owed.
        for tp, owed in self._continuity.owed(records, guarded).items():
            read = self._read_offset.get(tp)
            if read is not None and read > owed:
                log.warning("%s[%d]: read offset %d past the %d owed; lowered", tp.topic, tp.partition, read, owed)
                self._read_offset[tp] = owed
        skipped = self._continuity.check(records, guarded)
        if not skipped:
            return records
        log.warning(
            "fetched records past offsets never delivered, fetching again from %s",
            {
                f"{tp.topic}[{tp.partition}]": {"owed": offset, "fetched": records[tp][0].offset}
                for tp, offset in skipped.items()
            },
        )
        with _unless_rebalanced():
            await self._thread.seek_wait(skipped)
        return {tp: batch for tp, batch in records.items() if tp not in skipped}


def bounded_commit(offset: int | None, bound: int | None) -> int | None:
    """The offset to commit: Faust's choice, never past ``bound`` (a hole's first offset)."""
    if offset is None or bound is None:
        return offset
    return min(offset, bound)


@contextlib.contextmanager
def _unless_rebalanced() -> Iterator[None]:
    """Abandon a seek that a rebalance overtook (see the module's docstring): the rebalance's
    recovery seeks every partition it assigns once more."""
    try:
        yield
    except IllegalStateError as exc:
        log.info("the assignment changed during a seek (%s): the rebalance's recovery seeks again", exc)


class Continuity:
    """Which input partitions' fetched records start past the next offset the partition owes
    (its committed offset after a seek, then one past its last record). Such records would
    reach the agents with a hole before them, and Faust counts a hole as acknowledged and
    commits past it: the events in it lost. Seeking such a partition back fetches them again. A
    gap the broker returns twice from the same offset is real (a transaction marker, a compacted
    or deleted record) and let through."""

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}
        self._gap_seen: dict[Any, tuple[int, int]] = {}

    def resume(self, offsets: dict[Any, int]) -> None:
        """After a seek: the offset each partition's next record must have (partitions left
        out, read from their beginning, start wherever their log does)."""
        self._next = dict(offsets)

    def rewind(self, offsets: dict[Any, int]) -> None:
        """These partitions are fetched again from these offsets."""
        self._next.update(offsets)

    def owed(self, records: Any, guarded: Callable[[str], bool]) -> dict[Any, int]:
        """The offset each guarded partition of ``records`` owes next, where known."""
        return {tp: self._next[tp] for tp in records if tp in self._next and guarded(tp.topic)}

    def check(self, records: Any, guarded: Callable[[str], bool]) -> dict[Any, int]:
        """The partitions of ``records`` (partition -> records in offset order) to fetch again,
        with the offset to fetch from; the others are accounted as delivered."""
        skipped: dict[Any, int] = {}
        for tp, batch in records.items():
            if not batch or not guarded(tp.topic):
                continue
            owed, first = self._next.get(tp), batch[0].offset
            if owed is not None and first > owed and self._gap_seen.get(tp) != (owed, first):
                self._gap_seen[tp] = (owed, first)
                skipped[tp] = owed
                continue
            self._next[tp] = batch[-1].offset + 1
        return skipped


class BatchTable(faust.Table):  # type: ignore[type-arg]
    """A table whose changelog records wait in :attr:`unsent` for :meth:`take_changelog`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unsent: dict[tuple[int, bytes], bytes | None] = {}
        #: Called when the table's partitions move or are recovered: whatever was derived from
        #: its values (decoded states kept in memory) may be out of date.
        self.on_moved: list[Callable[[], None]] = []

    async def on_rebalance(
        self, assigned: set[Any], revoked: set[Any], newly_assigned: set[Any], generation_id: int = 0
    ) -> None:
        for moved in self.on_moved:
            moved()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, active_tps: set[Any], standby_tps: set[Any]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        for moved in self.on_moved:
            moved()

    def on_key_set(self, key: Any, value: Any) -> None:
        # Faust's own sends the record at once and reads the partition from its future.
        partition = self.partition_for_key(key)
        if partition is None:
            raise RuntimeError(f"table {self.name}: a write outside of an event has no partition")
        topic = self.changelog_topic
        k, _ = topic.prepare_key(key, self.key_serializer)
        v, _ = topic.prepare_value(value, self.value_serializer)
        self.unsent[(partition, k)] = v
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        """A delete: a tombstone for the changelog, which takes the key out of every copy."""
        partition = self.partition_for_key(key)
        if partition is None:
            raise RuntimeError(f"table {self.name}: a delete outside of an event has no partition")
        k, _ = self.changelog_topic.prepare_key(key, self.key_serializer)
        self.unsent[(partition, k)] = None
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def take_changelog(self) -> list[tuple[int, bytes, bytes | None]]:
        """The records written since the last call: ``(partition, key, value)``."""
        records = [(partition, key, value) for (partition, key), value in self.unsent.items()]
        self.unsent.clear()
        return records

    def changelog_sent(self, partition: int, offset: int) -> None:
        """What Faust's own send callback does: the store now knows its state is in the changelog
        up to ``offset``, so that recovery after a restart starts from there."""
        self.data.set_persisted_offset(faust.types.TP(self.changelog_topic_name, partition), offset)


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A Faust app whose worker consumer waits at most ``fetch_wait_ms`` for a fetch."""

    def __init__(self, *args: Any, fetch_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conf.fetch_wait_ms = fetch_wait_ms
        #: Called with the offset each assigned input partition is read from next (None: its
        #: log's beginning) whenever the consumer seeks them to it (an assignment's recovery).
        self.on_inputs_resumed: list[Callable[[dict[Any, int | None]], None]] = []
        #: The offset of a partition no commit may pass (None: no bound): a hole's first offset
        #: while it is fetched again.
        self.commit_bound: Callable[[Any], int | None] = lambda tp: None

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    async def publish(
        self, records: Sequence[tuple[str, int | None, bytes | None, bytes | None]]
    ) -> list[asyncio.Future[Any]]:
        """Queue ``(topic, partition, key, value)`` records for sending (partition None: by key);
        each future resolves to the broker's acknowledgement (with the record's offset), or holds
        why it could not be sent (never raises)."""
        return await publish(self.producer._ensure_producer(), records)  # type: ignore[attr-defined]  # aiokafka's, private to Faust


async def publish(
    producer: Any, records: Sequence[tuple[str, int | None, bytes | None, bytes | None]]
) -> list[asyncio.Future[Any]]:
    """:meth:`App.publish` on any aiokafka producer."""
    futures: list[asyncio.Future[Any]] = []
    for topic, partition, key, value in records:
        try:
            futures.append(await producer.send(topic, value, key=key, partition=partition))
        except Exception as exc:  # noqa: BLE001 - e.g. a full accumulator while the broker is away
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            futures.append(failed)
    return futures
