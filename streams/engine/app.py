"""The Faust application: configuration, tables, topics, and the wiring of agents to processors.

Agents here are glue: they take batches of events from Faust, hand them to the processors of
``streams.processors`` and send what comes back. Everything is built by :class:`Engine` from one
:class:`~streams.settings.Settings`, so tests and the demo can run several differently configured
workers side by side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Sequence
from typing import Any

import faust
from faust.streams import _current_event

from model.arms import PinnedModels
from model.attribution import Tally
from model.covisitation import CovisIndex
from model.errors import SnapshotError
from model.experiments import ExperimentBook
from model.related import near
from model.rules import RuleBook
from model.scoring import NeuralServingModel
from model.serving import ServingModel
from state.catalog import Catalog
from state.feedback import NEIGHBOURS_MAX
from state.item import AlertRule, ItemState
from state.user import UserState
from streams.engine.collector import freeze_loaded
from streams.engine.covisitation_files import CovisitationFiles
from streams.engine.faust_sensor import setup_sensor
from streams.engine.holes import HoleWatch
from streams.engine.monitor import KeyCounts, Progress, StallWatch, refresh_lag
from streams.engine.training_host import TRAINER_POLL_S, TrainingHost
from streams.engine.variant_models import VariantModels
from streams.engine.web import register_views
from streams.errors import is_storage_failure
from streams.events import Click, Review
from streams.kafka.batching import acked_batches, fill_wait
from streams.kafka.delivery import Delivery
from streams.kafka.followers import Follower
from streams.kafka.health import BrokerWatch
from streams.kafka.training_feed import TrainingFeed
from streams.kafka.transport import App, BatchTable
from streams.learning.example_stream import ExampleBuilder, ExampleSink
from streams.learning.model_keeper import ModelKeeper, RollbackRule, SnapshotOutcome, take_record
from streams.learning.snapshot_topic import PROGRESS_KEY, SignatureError, SnapshotAssembler
from streams.learning.snapshot_topic import Progress as TrainerProgress
from streams.metrics import Metrics
from streams.processors.base import Incoming, Outgoing
from streams.processors.experiment_records import ExperimentProcessor, apply_experiment_record
from streams.processors.items import ActivityProcessor, CatalogProcessor, ItemReviewProcessor
from streams.processors.merchandising import RuleProcessor, apply_rule_record
from streams.processors.resident import ResidentUsers
from streams.processors.users import (
    ActivityCounts,
    ClickProcessor,
    ForgetProcessor,
    ImpressionProcessor,
    ReviewProcessor,
)
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)

#: The exit status of a worker whose disk failed under its tables (sysexits' EX_IOERR).
EXIT_STORAGE_FAILED = 74
#: How often lag, table-size and snapshot-age gauges are refreshed.
MONITOR_INTERVAL_S = 5.0
#: How long after its snapshot producer failed to start the worker tries again.
# Faust opens RocksDB with 3 x 64 MB write buffers and a 2 GB block cache per table partition; a
# worker holds several. Small per-key states need far less, and the bound is what an operator sizes
# the container by (deploy/).
ROCKSDB_OPTIONS = {"write_buffer_size": 4 * 2**20, "max_write_buffer_number": 2, "block_cache_size": 16 * 2**20}


def _stop_if_storage_failed(exc: Exception) -> None:
    """Fail-stop on a failing disk (full, read-only): exit at once, as a crash would, with nothing
    of the batch acknowledged, sent or dead-lettered. Every event after the last commit is
    processed again by the restarted worker (or the one that takes its partitions over), as after
    any crash; processing on would dead-letter every event while the disk stays full."""
    if not is_storage_failure(exc):
        return
    log.critical(
        "the disk under the tables failed (%s): stopping with status %d, nothing of this batch acknowledged; "
        "restart the worker once the disk is writable",
        exc,
        EXIT_STORAGE_FAILED,
    )
    logging.shutdown()
    os._exit(EXIT_STORAGE_FAILED)


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

    def delete(self, key: str, handle: Any) -> None:
        _current_event.set(weakref.ref(handle))
        if key in self._table:
            del self._table[key]  # a tombstone in the changelog (BatchTable.on_key_del)
            self.keys.deleted(handle.message.partition)
        self._missing.discard(key)

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
    if settings.security_protocol.startswith("SASL") and settings.sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(
            oauth_cb=settings.kafka_client_options(asyncio=True)["sasl_oauth_token_provider"],
            ssl_context=settings.ssl_context() if settings.security_protocol == "SASL_SSL" else None,
        )
    if settings.security_protocol.startswith("SASL"):
        settings.name_scram_refusals()
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
        self.catalog = Catalog(
            settings.popularity_half_life_s,
            action_weights=settings.action_weight_table(),
            fresh_below=settings.explore_below,
        )
        self.covis_files = (
            CovisitationFiles(settings.data_dir / "covisitation") if settings.covis_checkpoint_s > 0 else None
        )
        # Before the consumer group is joined: the first click is served with what was learned.
        index, purchases = self.covis_files.load(self.catalog.item_ids) if self.covis_files else (None, None)
        self.keeper = ModelKeeper(
            self.catalog,
            settings.interest_half_life_s,
            settings.data_dir / "snapshots",
            settings.snapshots_kept,
            RollbackRule(settings.rollback_drop, settings.rollback_min_trials, settings.rollback_cooldown_s),
            on_event=self._on_model_event,
            max_step=settings.snapshot_max_step,
            new_share=settings.new_share,
            explore_slots=settings.explore_slots,
            index=index,
            purchases=purchases,
        )
        self.metrics.model_version.set(self.keeper.version)
        self.keeper.versions.protect(None)  # until the experiments are read: what they pin is kept
        self.examples = ExampleBuilder(self.catalog, settings.interest_half_life_s)
        self.sink = ExampleSink()
        self.trainer_progress: TrainerProgress | None = None
        self.assembler = SnapshotAssembler(settings.snapshot_key_bytes)
        self.activity = ActivityCounts()
        self.progress = Progress()
        self.stall = StallWatch(settings.stall_s)
        self.holes = HoleWatch()
        self.app = self._make_app()
        self.app.on_inputs_resumed.append(self.holes.resume)
        self.app.on_inputs_resumed.append(self.progress.resume)
        self.app.commit_bound = self.holes.first_missing
        self.users = self._table("users")
        self.items = self._table("items")
        self._changelogs = {t.changelog_topic_name: t for t in (self.users, self.items)}
        self.delivery = Delivery(
            self.app, self.metrics, self._changelogs, self.topics.deadletter, settings.deadletter_payload_bytes
        )
        self.training = TrainingHost(
            settings,
            self.metrics,
            self.delivery.send,
            start=lambda: self.keeper.snapshot,
            newest=lambda: max(self.keeper.version, self.assembler.newest),
            topic=self.topics.snapshots,
        )
        self._handles = {
            name: self.app.topic(name, key_serializer="raw", value_serializer="raw", partitions=spec_partitions)
            for name, spec_partitions in ((spec.name, spec.partitions) for spec in self.topics.specs())
        }
        self.catalog_follower = Follower(settings, self.topics.items_changelog, self._apply_item_change, "catalog")
        self.snapshot_follower = Follower(settings, self.topics.snapshots, self._apply_snapshot_record, "snapshots")
        self.rules = RuleBook(settings.demotion())
        self.rules_follower = Follower(settings, self.topics.rules, self._apply_rule_record, "rules")
        self.experiments = ExperimentBook()
        self.tally = Tally()
        self.pinned = PinnedModels(load=self._load_pinned_soon)
        self.variants = VariantModels(settings, self.catalog, lambda: self.keeper.current)
        self._pinned_loads: set[asyncio.Task[None]] = set()
        self.experiments_follower = Follower(
            settings, self.topics.experiments, self._apply_experiment_record, "experiments"
        )
        self.training_feed = (
            TrainingFeed(
                settings,
                self.topics.training,
                submit=self.training.submit,
                on_elected=self.training.ensure_trainer,
                on_deposed=self.training.stop_trainer,
                on_delay=self.metrics.train_feed_delay.set,
            )
            if settings.train
            else None
        )
        self.broker_watch = BrokerWatch(
            settings,
            on_change=lambda up: self.metrics.broker_up.set(int(up)),
            on_recreated=self._topics_recreated,
            recreate_lost=settings.broker_kind == "embedded" and settings.create_topics,
        )
        self.stores = {"users": FaustTableStore(self.users), "items": FaustTableStore(self.items)}
        users, items = self.stores["users"], self.stores["items"]
        n = settings.partitions
        self.resident = ResidentUsers(settings.resident_users)
        self.users.on_moved.append(self.resident.clear)
        current_model = self.current_model
        self.clicks = ClickProcessor(
            self.topics,
            n,
            self.metrics,
            users,
            self.catalog,
            current_model,
            self.activity,
            top_k=settings.top_k,
            interest_half_life_s=settings.interest_half_life_s,
            coalesce_after_s=settings.coalesce_after_ms / 1000.0,
            learn=self._learn,
            on_hit=self.keeper.record_hit,
            resident=self.resident,
            rules=self.rules,
            experiments=self.experiments,
            tally=self.tally,
            pinned=self.pinned,
            variants=self.variants,
            neighbours=self._near,
            action_weights=settings.action_weight_table(),
        )
        self.reviews = ReviewProcessor(
            self.topics, n, self.metrics, users, current_model, self.catalog, learn=self._learn, resident=self.resident
        )
        rule = AlertRule(
            settings.alert_window,
            settings.alert_min_reviews,
            settings.alert_negative_ratio,
            settings.alert_jump,
            settings.alert_rearm_ratio,
        )
        self.item_reviews = ItemReviewProcessor(self.topics, n, self.metrics, items, rule)
        self.catalog_updates = CatalogProcessor(self.topics, n, self.metrics, items)
        self.item_activity = ActivityProcessor(self.topics, n, self.metrics, items, settings.popularity_half_life_s)
        self.forget = ForgetProcessor(self.topics, n, self.metrics, users, self.resident)
        self.impressions = ImpressionProcessor(self.topics, n, self.metrics, users, self.resident)
        self.rule_records = RuleProcessor(self.topics, n, self.metrics, time.time)
        self.experiment_records = ExperimentProcessor(self.topics, n, self.metrics, time.time)
        for processor in (
            self.clicks,
            self.reviews,
            self.item_reviews,
            self.catalog_updates,
            self.item_activity,
            self.forget,
            self.impressions,
            self.rule_records,
            self.experiment_records,
        ):
            processor.deadletter_payload_bytes = settings.deadletter_payload_bytes
        self._register()

    def _table(self, name: str) -> BatchTable:
        table = BatchTable(
            self.app,
            name=name,
            beacon=self.app.tables.beacon,
            key_type=bytes,
            value_type=bytes,
            partitions=self.settings.partitions,
            options=ROCKSDB_OPTIONS,
        )
        self.app.tables.add(table)
        return table

    def current_model(self) -> ServingModel:
        return self.keeper.current

    def related_indexes(self) -> tuple[CovisIndex, CovisIndex]:
        return self.keeper.current.index, self.keeper.current.purchases

    def _near(self, item_id: str) -> list[str]:
        return near(item_id, self.keeper.current.index, self.catalog, NEIGHBOURS_MAX)

    def _learn(self, model: ServingModel, before: UserState, event: Click | Review, category: str) -> None:
        if isinstance(event, Click):
            examples = self.examples.click(model, before, event, category)
        else:
            examples = self.examples.review(model, before, event, category)
        if examples is not None:
            self.sink.add(examples, event.ts)

    def _on_model_event(self, outcome: SnapshotOutcome, reason: str) -> None:
        if outcome is SnapshotOutcome.REFUSED:
            self.metrics.snapshots_rejected.labels(reason).inc()
        elif outcome is SnapshotOutcome.ACCEPTED:
            self._offer_pinned(self.keeper.current)
        elif outcome is SnapshotOutcome.ROLLED_BACK:
            self.metrics.model_rollbacks.inc()
        self.metrics.model_version.set(self.keeper.version)

    async def _topics_recreated(self, names: set[str]) -> None:
        self.catalog_follower.rewind()
        self.snapshot_follower.rewind()
        self.rules_follower.rewind()
        self.experiments_follower.rewind()
        if self.training_feed is not None:
            self.training_feed.rewind()
        try:  # the group is usually rejoining now; its rebalance reads them from the start too
            await asyncio.wait_for(self.app.consumer.restart_topics(names), 10.0)
        except Exception as exc:  # noqa: BLE001 - the watch must go on
            log.warning("could not seek the restarted topics now (%r); the next rebalance will", exc)

    async def _apply_snapshot_record(self, key: bytes | None, value: bytes | None) -> None:
        if key == PROGRESS_KEY and value is not None:
            try:
                self.trainer_progress = TrainerProgress.from_bytes(value, self.settings.snapshot_key_bytes)
            except SignatureError as exc:
                self.keeper.refuse(exc.reason, f"progress record: {exc}")
            return
        await take_record(self.keeper, self.assembler, key, value)

    def liveness(self) -> dict[str, Any]:
        """``status`` ``alive``, or ``stalled`` once an input partition has processed nothing for
        ``SHOPGUIDE_STALL_RESTART_S`` while its records waited: a restart is what it needs."""
        stalled = self.stall.stalled_for()
        limit = self.settings.stall_restart_s
        if limit > 0 and stalled >= limit:
            return {"status": "stalled", "stalled_s": round(stalled)}
        return {"status": "alive"}

    async def _watch_stall(self, waiting_offsets: dict[Any, range]) -> None:
        """Say what a stalled input partition waits on, once per stall, and fetch it again;
        ``waiting_offsets``: the offsets waiting in each lagging input partition."""
        consumer = self.app.consumer
        # Behind an unreachable broker the wait is the broker's (readyz says so): no restart helps.
        owed = {tp: offsets.start for tp, offsets in waiting_offsets.items()} if self.broker_watch.up else {}
        # A rebalance's recovery seeks every partition it assigns again: a stall is judged after it.
        began = self.stall.observe(owed, hold=self.app.rebalancing)
        self.metrics.stalled_seconds.set(self.stall.stalled_for())
        if not began:
            return
        self.metrics.stalls.inc(len(began))
        stalled = {tp: owed[tp] for tp in began}
        waiting = self.delivery.waiting
        # A delivery waiting as long as the stall holds every partition: its cause, not theirs.
        held = waiting is not None and time.monotonic() - waiting[0] >= self.settings.stall_s
        try:
            blocked = consumer.blocked_inputs()
            # Stalled, the agents hold nothing of it: a fetch position past what it owes skipped records.
            skipped = {} if held else await consumer.skipped_inputs(stalled)
        except Exception:  # a diagnosis must not stop the gauges
            log.exception("could not inspect the consumer's partitions")
            blocked, skipped = {}, {}
        delivery = "no delivery waiting"
        if waiting is not None:
            delivery = f"waiting {time.monotonic() - waiting[0]:.0f} s for {waiting[1]} acknowledgements"
        log.warning(
            "no event of %s processed for %.0f s while %d wait in them: blocked inputs %s; skipped %s; %s",
            ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in stalled.items()),
            self.stall.stalled_for(),
            sum(len(waiting_offsets[tp]) for tp in stalled),
            blocked or "none",
            {f"{tp.topic}[{tp.partition}]": offset for tp, offset in skipped.items()} or "none",
            delivery,
        )
        if held:
            return
        log.warning("fetching the stalled input partitions again from the offsets they owe")
        await consumer.revive(stalled)

    def readiness(self) -> dict[str, Any]:
        """Caught up with the catalog and the model, the broker reachable with every topic, and no
        output lost: ``status`` ``ok``, else why not."""
        followers = (self.catalog_follower, self.snapshot_follower, self.rules_follower, self.experiments_follower)
        ready = all(f.caught_up.is_set() for f in followers)
        watch = self.broker_watch
        status = "ok" if ready else "starting"
        if not watch.up:
            status = "broker_unreachable"
        elif watch.missing:
            status = "topics_missing"  # a production Kafka lost them: an operator's call
        elif self.delivery.lost:
            status = "outputs_lost"  # see shopguide_lost_messages_total
        return {
            "status": status,
            "broker_down_since": watch.down_since,
            "catalog_items": len(self.catalog),
            "model_version": self.keeper.version,
            "outputs_lost": self.delivery.lost,
        }

    def model_status(self) -> dict[str, Any]:
        """The served model, the trainer's progress and the online hit rate (``GET /model``)."""
        snap = self.keeper.snapshot
        hits, trials = self.metrics.hit_rate
        progress = self.trainer_progress
        trainer = self.training.trainer
        return {
            "version": snap.version,
            "snapshot_age_s": self.snapshot_age(),
            "trained_examples": snap.counters.get("examples", 0),
            "trained_until": snap.extra.get("trained_until"),
            "created": snap.created,
            "served_since": self.keeper.swapped_at,
            "metrics": snap.metrics,
            "trainer": {
                "trained_until": progress.trained_until if progress else None,
                "newest_version": self.assembler.newest,
                "running_here": bool(trainer and trainer.alive),
                "dropped_examples": trainer.dropped if trainer else 0,
            },
            "online": {"hits": hits, "trials": trials, "hit_rate": hits / trials if trials else None},
        }

    def snapshot_age(self) -> float | None:
        """How far the served weights lag behind the newest example the trainer has learned."""
        served = self.keeper.snapshot.extra.get("trained_until")
        if self.trainer_progress is None or served is None:
            return None
        return max(0.0, self.trainer_progress.trained_until - float(served))

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
            # Faust prefetches up to 4096 events per stream: behind a flood on one partition, the
            # other partitions' events would wait for all of them. Two batches keep the CPU busy.
            stream_buffer_maxsize=2 * s.batch_max,
            # A changelog shorter than what the local RocksDB has applied means the broker lost
            # data. Faust then refuses to start, which is right for a production Kafka; the
            # in-memory embedded broker loses everything on every restart, and there carrying on
            # with the local state is what a development engine should do.
            recovery_consistency_check=s.broker_kind != "embedded",
            table_standby_replicas=s.standby_replicas,
            producer_acks=-1,
            producer_request_timeout=s.producer_timeout_s,
            web_port=s.web_port,
            web_bind=s.web_bind,
            canonical_url=f"http://{s.web_host}:{s.web_port}",
            web_enabled=True,
            # Faust's /table views return raw table values past the API's checks and /router lists
            # the workers: personal data and topology, without a token (streams.engine.web).
            web_tables_enabled=False,
            web_router_enabled=False,
        )
        return app

    def _apply_experiment_record(self, key: bytes | None, value: bytes | None) -> None:
        apply_experiment_record(self.experiments, key, value)  # an invalid one is dead-lettered by its agent
        self._offer_pinned(self.keeper.current)
        active = self.experiments.active
        self.variants.follow({a.variant for a in active.arms if a.variant} if active is not None else set())

    def _pinned_versions(self) -> set[int]:
        return {a.pinned for e in self.experiments.experiments() for a in e.arms if a.pinned is not None}

    def _offer_pinned(self, model: NeuralServingModel) -> None:
        """Hold ``model`` if an experiment pins its version, and keep on disk what loading the
        pinned versions again needs."""
        wanted = self._pinned_versions()
        self.pinned.offer(model, wanted)
        self.keeper.versions.protect(wanted)

    def _load_pinned_soon(self, version: int) -> None:
        """Load a pinned version this worker does not hold, off the event path (serving goes on
        with the current model meanwhile)."""
        task = asyncio.get_running_loop().create_task(self._load_pinned(version))
        self._pinned_loads.add(task)  # a task only weakly referenced may be collected unfinished
        task.add_done_callback(self._pinned_loads.discard)

    async def _load_pinned(self, version: int) -> None:
        try:
            snapshot = await asyncio.to_thread(self.keeper.stored, version)
            model = self.keeper.serving(snapshot)
        except SnapshotError as exc:
            log.warning("pinned version %d cannot be loaded, the current model serves it: %s", version, exc)
            self.metrics.pinned_loads.labels("unfound").inc()
            self.pinned.unfound(version)
            return
        log.info("pinned version %d loaded from the stored snapshots", version)
        self.metrics.pinned_loads.labels("found").inc()
        self._offer_pinned(model)

    def experiment_status(self) -> dict[str, Any]:
        """The experiments in force and what their arms did on this worker (``GET /experiments``)."""
        active = self.experiments.active
        return {
            "active": active.experiment_id if active is not None else None,
            "experiments": [
                {
                    "experiment_id": e.experiment_id,
                    "shadow": e.shadow,
                    "arms": [{"name": a.name, "share": a.share, "model": a.model, "rules": a.rules} for a in e.arms],
                }
                for e in self.experiments.experiments()
            ],
            "pinned_versions_held": self.pinned.versions(),
            "variant_versions": self.variants.versions(),
            "figures": self.tally.report(),
        }

    def _apply_rule_record(self, key: bytes | None, value: bytes | None) -> None:
        apply_rule_record(self.rules, key, value)  # an invalid one is dead-lettered by the rules agent

    def _apply_item_change(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        item_id = key.decode()
        if value is None:
            self.catalog.remove(item_id)
        else:
            self.catalog.upsert(item_id, ItemState.from_bytes(value))

    async def _run_batches(self, stream: Any, processor: Any, wait_for_views: bool) -> None:
        if wait_for_views:  # serve with the whole catalog, the newest model and the rules
            await self.catalog_follower.caught_up.wait()
            await self.snapshot_follower.caught_up.wait()
            await self.rules_follower.caught_up.wait()
            await self.experiments_follower.caught_up.wait()
            freeze_loaded()  # the views and the model, loaded: out of the full collections
        async for events in acked_batches(stream, self.settings.batch_max, fill_wait(self.settings)):
            holes = self._holes_before(events)
            try:
                out = self._process(processor, events)
                out += [Outgoing(self.topics.training, None, r) for r in self.sink.drain()]
                await self.delivery.deliver(out)  # records changelog offsets in RocksDB too
            except Exception as exc:
                _stop_if_storage_failed(exc)
                raise
            if holes:
                await self.app.consumer.refetch(holes)

    def _holes_before(self, events: Sequence[Any]) -> dict[Any, int]:
        """Input partitions some of whose records never reached this agent before these events:
        the offset to fetch each again from. Events fetched before the current assignment are
        left out: the assignment's seek fetches their partitions again anyway."""
        generation = self.app.consumer_generation_id
        holes: dict[Any, int] = {}
        for e in events:
            message = e.message
            if message.generation_id != generation:
                continue
            hole = self.holes.delivered(message.tp, message.offset)
            if hole is None:
                continue
            log.warning(
                "%s[%d]: delivered offset %d, expected %d: fetching the %d records between again",
                message.topic,
                message.partition,
                hole.got,
                hole.expected,
                hole.got - hole.expected,
            )
            self.metrics.delivery_holes.labels(message.topic).inc()
            first = self.holes.first_missing(message.tp)  # a lower hole may still be open
            holes[message.tp] = hole.expected if first is None else first
        return holes

    def _process(self, processor: Any, events: Sequence[Any]) -> list[Outgoing]:
        batch = [
            Incoming(
                e.message.topic,
                e.message.partition,
                e.message.offset,
                e.message.key,
                e.message.value,
                e,
                int(e.message.timestamp * 1000),
            )
            for e in events
        ]
        for msg in batch:
            self.progress.record(msg.topic, msg.partition, msg.offset)
        if batch:
            self.metrics.batch_size.labels(batch[0].topic).observe(len(batch))
        out: list[Outgoing] = []
        try:
            out = processor.process(batch)
        except Exception as exc:
            _stop_if_storage_failed(exc)
            log.exception("processing a batch failed; retrying its events one by one")
            for msg in batch:
                try:
                    out += processor.process([msg])
                except Exception as exc:
                    _stop_if_storage_failed(exc)
                    log.exception("internal error on %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                    out.append(processor.dead_letter(msg, "internal", f"internal error: {exc!r}"[:500]))
        # Processing never awaits: the tables' unsent changelog records are this batch's writes.
        for topic, table in self._changelogs.items():
            out += [Outgoing(topic, key, value, partition) for partition, key, value in table.take_changelog()]
        return out

    def _register(self) -> None:
        app, t, h = self.app, self.topics, self._handles

        def agent(topic: str, processor: Any, wait_for_views: bool = False) -> None:
            async def run(stream: Any) -> None:
                await self._run_batches(stream, processor, wait_for_views)

            run.__name__ = run.__qualname__ = topic.replace(".", "_").replace("-", "_")
            app.agent(h[topic], name=f"{self.settings.app_id}.{run.__name__}", concurrency=1)(run)

        agent(t.clicks, self.clicks, wait_for_views=True)
        agent(t.reviews, self.reviews, wait_for_views=True)
        agent(t.item_reviews, self.item_reviews)
        agent(t.items, self.catalog_updates)
        agent(t.item_activity, self.item_activity)
        agent(t.forget, self.forget)
        agent(t.impressions, self.impressions)
        agent(t.rules, self.rule_records)
        agent(t.experiments, self.experiment_records)

        @app.task
        async def follow_catalog() -> None:
            await self.catalog_follower.run()

        @app.task
        async def follow_snapshots() -> None:
            await self.snapshot_follower.run()

        @app.task
        async def follow_rules() -> None:
            await self.rules_follower.run()

        @app.task
        async def follow_experiments() -> None:
            await self.experiments_follower.run()

        @app.task
        async def protect_pinned() -> None:
            await self.experiments_follower.caught_up.wait()
            self._offer_pinned(self.keeper.current)  # the versions pinned now, none if there is none

        @app.task
        async def watch_broker() -> None:
            await self.broker_watch.run()

        @app.timer(interval=TRAINER_POLL_S)
        async def publish_training() -> None:
            await self.training.publish()

        if self.training_feed is not None:
            feed = self.training_feed

            @app.task
            async def feed_trainer() -> None:
                await feed.run()

        @app.on_before_shutdown.connect
        async def stop_trainer(sender: Any, **kwargs: Any) -> None:
            self.training.stop_trainer()
            await self.training.close_sender()
            await self.variants.close()

        @app.timer(interval=self.settings.item_flush_s)
        async def flush_activity() -> None:
            await self.delivery.send(self.activity.drain(t.item_activity))

        @app.on_before_shutdown.connect
        async def send_last_activity(sender: Any, **kwargs: Any) -> None:
            # Runs after the agents stopped and before Faust flushes its producer.
            await self.delivery.send(self.activity.drain(t.item_activity))

        if self.covis_files is not None:
            files = self.covis_files

            @app.timer(interval=self.settings.covis_checkpoint_s)
            async def checkpoint_covisitation() -> None:
                await files.save(*self.related_indexes())

            @app.on_before_shutdown.connect
            async def last_covisitation_checkpoint(sender: Any, **kwargs: Any) -> None:
                # After the agents stopped: nothing changes the indexes any more.
                await files.save(*self.related_indexes())

        sources = {
            t.clicks,
            t.reviews,
            t.item_reviews,
            t.items,
            t.item_activity,
            t.forget,
            t.rules,
            t.experiments,
            t.impressions,
        }

        @app.timer(interval=MONITOR_INTERVAL_S)
        async def refresh_gauges() -> None:
            await self._watch_stall(await refresh_lag(app.consumer, sources, self.progress, self.metrics))
            age = self.snapshot_age()
            if age is not None:
                self.metrics.snapshot_age.set(age)
            actives = app.assignor.assigned_actives()
            for name, store in self.stores.items():
                changelog = self.app.tables[name].changelog_topic.get_topic_name()
                active = {tp.partition for tp in actives if tp.topic == changelog}
                self.metrics.table_keys.labels(name).set(store.key_count(active, app.rebalancing))

        setup_sensor(app, self.metrics.registry, "shopguide_faust")
        register_views(self)
