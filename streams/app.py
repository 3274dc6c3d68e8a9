"""The Faust application: configuration, tables, topics, and the wiring of agents to processors.

Agents here are glue: they take batches of events from Faust, hand them to the processors of
``streams.processors`` and send what comes back. Everything is built by :class:`Engine` from one
:class:`~streams.settings.Settings`, so tests and the demo can run several differently configured
workers side by side.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.streams import _current_event

from model.placeholder import PlaceholderModel
from model.serving import ServingModel
from state.catalog import Catalog
from state.item import AlertRule, ItemState
from streams.batching import acked_batches
from streams.followers import Follower
from streams.metrics import Metrics
from streams.monitor import KeyCounts, Progress, refresh_lag
from streams.processors import (
    ActivityCounts,
    ActivityProcessor,
    CatalogProcessor,
    ClickProcessor,
    Incoming,
    ItemReviewProcessor,
    Outgoing,
    ReviewProcessor,
)
from streams.settings import Settings
from streams.topics import Topics
from streams.transport import App
from streams.web import register_views

log = logging.getLogger(__name__)

#: How often lag and table-size gauges are refreshed.
MONITOR_INTERVAL_S = 5.0


class FaustTableStore:
    """A Faust table as a processor's :class:`~streams.processors.Store`.

    Faust picks the RocksDB partition and the changelog partition of a table write from the
    *current event* of the task. Events of a batch come from several partitions, so each access
    first makes its own event current, exactly as Faust does for a stream it iterates itself.
    """

    def __init__(self, table: faust.Table) -> None:
        self._table = table
        self.keys = KeyCounts(self._count_partition)
        self._missing: set[str] = set()  # keys a get found absent: their put creates them

    def get(self, key: str, handle: Any) -> bytes | None:
        _current_event.set(weakref.ref(handle))
        value: bytes | None = self._table.get(key)
        if value is None:
            self._missing.add(key)
        return value

    def put(self, key: str, value: bytes, handle: Any) -> None:
        _current_event.set(weakref.ref(handle))
        if key in self._missing:
            self._missing.discard(key)
            self.keys.created(handle.message.partition)
        self._table[key] = value

    def key_count(self, active: set[int], recovering: bool) -> int:
        self._missing.clear()
        return self.keys.total(active, recovering)

    def _count_partition(self, partition: int) -> int:
        # Faust's RocksDB store keeps one database per partition (``_dbs``, private), with the
        # partition's changelog offset stored under a key of its own.
        store = self._table.data
        db = store._dbs.get(partition)
        if db is None:
            return 0
        return sum(1 for key in db.keys() if key != store.offset_key)  # noqa: SIM118 - Rdict iterates items


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            ssl_context=settings.ssl_context() if settings.security_protocol == "SASL_SSL" else None,
            mechanism=settings.sasl_mechanism,
        )
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


class Engine:
    """One worker's app and the runtime objects its agents share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.metrics = Metrics()
        self.catalog = Catalog(settings.popularity_half_life_s)
        self.model: ServingModel = PlaceholderModel(self.catalog, settings.interest_half_life_s)
        self.activity = ActivityCounts()
        self.progress = Progress()
        self.app = self._make_app()
        self.users = self.app.Table(
            "users", key_type=bytes, value_type=bytes, partitions=settings.partitions
        )
        self.items = self.app.Table(
            "items", key_type=bytes, value_type=bytes, partitions=settings.partitions
        )
        self._handles = {
            name: self.app.topic(
                name, key_serializer="raw", value_serializer="raw", partitions=spec_partitions
            )
            for name, spec_partitions in (
                (spec.name, spec.partitions) for spec in self.topics.specs()
            )
        }
        self.catalog_follower = Follower(
            settings, self.topics.items_changelog, self._apply_item_change, "catalog"
        )
        self.stores = {"users": FaustTableStore(self.users), "items": FaustTableStore(self.items)}
        users, items = self.stores["users"], self.stores["items"]
        n = settings.partitions
        current_model = self.current_model
        self.clicks = ClickProcessor(
            self.topics, n, self.metrics, users, self.catalog, current_model, self.activity,
            top_k=settings.top_k, interest_half_life_s=settings.interest_half_life_s,
        )
        self.reviews = ReviewProcessor(self.topics, n, self.metrics, users, current_model)
        rule = AlertRule(
            settings.alert_window, settings.alert_min_reviews, settings.alert_negative_ratio,
            settings.alert_jump,
        )
        self.item_reviews = ItemReviewProcessor(self.topics, n, self.metrics, items, rule)
        self.catalog_updates = CatalogProcessor(self.topics, n, self.metrics, items)
        self.item_activity = ActivityProcessor(
            self.topics, n, self.metrics, items, settings.popularity_half_life_s
        )
        self._register()

    def current_model(self) -> ServingModel:
        return self.model

    def _make_app(self) -> faust.App:
        s = self.settings
        app = App(
            s.app_id,
            fetch_wait_ms=s.fetch_wait_ms,
            env={},  # only SHOPGUIDE_* variables configure the engine (see streams.settings)
            broker=[f"kafka://{server}" for server in s.bootstrap_servers],
            broker_credentials=_credentials(s),
            store="rocksdb://",
            datadir=str(s.data_dir / "faust"),
            topic_partitions=s.partitions,
            topic_allow_declare=False,
            topic_disable_leader=True,
            broker_session_timeout=s.session_timeout_s,
            broker_rebalance_timeout=s.rebalance_timeout_s,
            broker_heartbeat_interval=s.heartbeat_s,
            broker_commit_interval=s.commit_interval_s,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=s.standby_replicas,
            producer_acks=-1,
            web_port=s.web_port,
            web_bind=s.web_bind,
            canonical_url=f"http://{s.web_host}:{s.web_port}",
            web_enabled=True,
        )
        return app

    def _apply_item_change(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        item_id = key.decode()
        if value is None:
            self.catalog.remove(item_id)
        else:
            self.catalog.upsert(item_id, ItemState.from_bytes(value))

    def send(self, out: Sequence[Outgoing]) -> None:
        for o in out:
            self._handles[o.topic].send_soon(key=o.key, value=o.value)

    async def _run_batches(self, stream: Any, processor: Any, wait_for_catalog: bool) -> None:
        if wait_for_catalog:
            await self.catalog_follower.caught_up.wait()
        within = self.settings.batch_wait_ms / 1000.0
        async for events in acked_batches(stream, self.settings.batch_max, within):
            self.send(self._process(processor, events))
            # Faust commits an event's offset once it is acked (when this body returns) but never
            # waits for what its processing sent, table changelog writes included. Waiting here
            # makes every effect of an acked event durable before its offset can be committed:
            # outputs become at-least-once and changelogs never miss an applied event.
            await self.app.producer.flush()

    def _process(self, processor: Any, events: Sequence[Any]) -> list[Outgoing]:
        batch = [
            Incoming(
                e.message.topic, e.message.partition, e.message.offset, e.message.key,
                e.message.value, e,
            )
            for e in events
        ]
        for msg in batch:
            self.progress.record(msg.topic, msg.partition, msg.offset)
        try:
            out: list[Outgoing] = processor.process(batch)
            return out
        except Exception:
            log.exception("processing a batch failed; retrying its events one by one")
        out = []
        for msg in batch:
            try:
                out += processor.process([msg])
            except Exception as exc:
                log.exception("internal error on %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                out.append(processor.dead_letter(msg, "internal", f"internal error: {exc!r}"[:500]))
        return out

    def _register(self) -> None:
        app, t, h = self.app, self.topics, self._handles

        def agent(topic: str, processor: Any, wait_for_catalog: bool = False) -> None:
            async def run(stream: Any) -> None:
                await self._run_batches(stream, processor, wait_for_catalog)

            run.__name__ = run.__qualname__ = topic.replace(".", "_").replace("-", "_")
            app.agent(h[topic], name=f"{self.settings.app_id}.{run.__name__}", concurrency=1)(run)

        agent(t.clicks, self.clicks, wait_for_catalog=True)
        agent(t.reviews, self.reviews)
        agent(t.item_reviews, self.item_reviews)
        agent(t.items, self.catalog_updates)
        agent(t.item_activity, self.item_activity)

        @app.task
        async def follow_catalog() -> None:
            await self.catalog_follower.run()

        @app.timer(interval=self.settings.item_flush_s)
        async def flush_activity() -> None:
            self.send(self.activity.drain(t.item_activity))

        @app.on_before_shutdown.connect
        async def send_last_activity(sender: Any, **kwargs: Any) -> None:
            # Runs after the agents stopped and before Faust flushes its producer.
            self.send(self.activity.drain(t.item_activity))

        sources = {t.clicks, t.reviews, t.item_reviews, t.items, t.item_activity}

        @app.timer(interval=MONITOR_INTERVAL_S)
        async def refresh_gauges() -> None:
            await refresh_lag(app.consumer, sources, self.progress, self.metrics)
            actives = app.assignor.assigned_actives()
            for name, store in self.stores.items():
                changelog = self.app.tables[name].changelog_topic.get_topic_name()
                active = {tp.partition for tp in actives if tp.topic == changelog}
                self.metrics.table_keys.labels(name).set(store.key_count(active, app.rebalancing))

        setup_prometheus_sensors(app, registry=self.metrics.registry, name_prefix="shopguide_faust")
        register_views(self)

