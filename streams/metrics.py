"""The one Prometheus registry of a worker: the engine's own metrics and Faust's sensor.

Every name starts with ``shopguide_`` and every label has a small, fixed set of values (topics,
outcomes, reasons, tasks, tables, partitions): never a user or item id, so that a worker's series
count does not grow with its traffic.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Outcome(StrEnum):
    """What became of a consumed message: the ``outcome`` label of ``shopguide_events_total``."""

    PROCESSED = "processed"
    DEADLETTERED = "deadlettered"
    DUPLICATE = "duplicate"  # its effects were already applied: redelivery after a crash
    FORWARDED = "forwarded"  # found in another partition than its key's, sent to the right one


#: From 1 ms to 10 s: the SLO (p99 <= 50 ms) sits in the fine part of the range.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
TRAIN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "shopguide_events_total",
            "Consumed messages by topic and outcome (processed, deadlettered, duplicate, forwarded)",
            ["topic", "outcome"],
            registry=r,
        )
        self.deadletters = Counter(
            "shopguide_deadletter_total",
            "Messages sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.published = Counter(
            "shopguide_published_messages_total",
            "Messages the broker acknowledged, by topic (outputs, table changelogs, snapshots)",
            ["topic"],
            registry=r,
        )
        self.resent = Counter(
            "shopguide_resent_messages_total",
            "Output messages the broker refused and the engine sent again (at-least-once outputs)",
            registry=r,
        )
        self.lost = Counter(
            "shopguide_lost_messages_total",
            "Outputs the broker refused for good whose dead letters it refused too",
            registry=r,
        )
        self.republished = Counter(
            "shopguide_republished_messages_total",
            "Outputs published again for a redelivered event the state already reflected, by topic",
            ["topic"],
            registry=r,
        )
        self.recommendations = Counter(
            "shopguide_recommendations_total", "Recommendation messages published", registry=r
        )
        self.arm_recommendations = Counter(
            "shopguide_arm_recommendations_total",
            "Recommendations published inside an experiment, by experiment and arm",
            ["experiment", "arm"],
            registry=r,
        )
        self.attributed = Counter(
            "shopguide_attributed_total",
            "Clicks, carts and buys on an item of the user's last recommendation of an experiment arm, "
            "by experiment, arm, action and the kind of the item's first reason",
            ["experiment", "arm", "action", "reason"],
            registry=r,
        )
        self.shadow_recommendations = Counter(
            "shopguide_shadow_recommendations_total",
            "A shadow arm's recommendations written to the shadow topic, by experiment and arm",
            ["experiment", "arm"],
            registry=r,
        )
        self.pinned_fallbacks = Counter(
            "shopguide_pinned_model_fallbacks_total",
            "Recommendations of an arm pinned to a snapshot version, or served by a trainer variant, whose "
            "model the worker does not hold, served with the current model instead, by experiment and arm",
            ["experiment", "arm"],
            registry=r,
        )
        self.pinned_loads = Counter(
            "shopguide_pinned_model_loads_total",
            "Pinned snapshot versions loaded from the worker's stored snapshots (found) or not (unfound: "
            "not stored, or failing verification), by outcome",
            ["outcome"],
            registry=r,
        )
        self.sentiments = Counter(
            "shopguide_sentiment_total",
            "Sentiment messages published, by label",
            ["label"],
            registry=r,
        )
        self.event_to_recommendation = Histogram(
            "shopguide_event_to_recommendation_seconds",
            "From a click's ts to its recommendation's published_ts",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_to_sentiment = Histogram(
            "shopguide_event_to_sentiment_seconds",
            "From a review's ts to its sentiment message's published_ts",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "shopguide_batch_events",
            "Events an agent processed together, by source topic",
            ["topic"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.train_step = Histogram(
            "shopguide_train_step_seconds",
            "Duration of one incremental training step",
            buckets=TRAIN_BUCKETS,
            registry=r,
        )
        self.model_version = Gauge("shopguide_model_version", "Version of the model this worker serves", registry=r)
        self.snapshot_age = Gauge(
            "shopguide_model_snapshot_age_seconds",
            "Newest trained example minus the newest example in the served snapshot",
            registry=r,
        )
        self.train_examples = Counter(
            "shopguide_train_examples_total",
            "Training examples learned, by task",
            ["task"],
            registry=r,
        )
        self.train_skipped = Counter(
            "shopguide_train_skipped_steps_total",
            "Training micro-batches skipped because their loss or gradient was not finite: a bad "
            "feature or example, which would otherwise go unnoticed",
            registry=r,
        )
        self.train_loss = Gauge("shopguide_train_loss", "Loss of the last training step, by task", ["task"], registry=r)
        self.online_hits = Counter(
            "shopguide_online_hits_total",
            "Clicks whose item was in the user's last published top-k",
            registry=r,
        )
        self.online_trials = Counter(
            "shopguide_online_trials_total",
            "Clicks of users who had a published recommendation",
            registry=r,
        )
        self.online_hit_rate = Gauge(
            "shopguide_online_hit_rate",
            "Prequential hit rate of the published top-k over this worker's lifetime",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "shopguide_consumer_lag",
            "Messages behind the end of each assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.stalls = Counter(
            "shopguide_stalls_total",
            "Times an input partition processed nothing for SHOPGUIDE_STALL_S while its records waited",
            registry=r,
        )
        self.delivery_holes = Counter(
            "shopguide_delivery_holes_total",
            "Input records delivered to an agent past offsets of their partition never delivered "
            "(each such hole is fetched again once)",
            ["topic"],
            registry=r,
        )
        self.stalled_seconds = Gauge(
            "shopguide_stalled_seconds",
            "How long the longest stall of an input partition has lasted (0: none is stalled)",
            registry=r,
        )
        self.table_keys = Gauge(
            "shopguide_table_keys",
            "Keys in this worker's partitions of each table",
            ["table"],
            registry=r,
        )
        self.snapshots_rejected = Counter(
            "shopguide_model_snapshots_rejected_total",
            "Model snapshots refused by the integrity or sanity checks, by reason",
            ["reason"],
            registry=r,
        )

        self.model_rollbacks = Counter(
            "shopguide_model_rollbacks_total",
            "Snapshots rolled back because the online hit rate collapsed under them",
            registry=r,
        )
        self.train_feed_delay = Gauge(
            "shopguide_train_feed_delay_seconds",
            "How long ago the newest training record handed to the trainer had been sent, when it "
            "was handed over (0 on a worker that does not train)",
            registry=r,
        )
        self.train_dropped = Gauge(
            "shopguide_train_dropped_examples",
            "Examples the trainer had no time for since this worker started it",
            registry=r,
        )
        self.broker_up = Gauge(
            "shopguide_broker_up", "1 while this worker's probe reaches the broker, else 0", registry=r
        )
        self.broker_up.set(1)
        self._hits = 0
        self._trials = 0

    def record_hits(self, hits: int, trials: int) -> None:
        """``trials`` clicks judged against the list published before them (a batch's), ``hits``
        of them on an item of that list."""
        if not trials:
            return
        self._trials += trials
        self._hits += hits
        self.online_trials.inc(trials)
        if hits:
            self.online_hits.inc(hits)
        self.online_hit_rate.set(self._hits / self._trials)

    @property
    def hit_rate(self) -> tuple[int, int]:
        """(hits, trials) since the worker started."""
        return self._hits, self._trials
