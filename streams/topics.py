"""Every topic the engine reads or writes, with its partitions and configuration, and their creation.

Brokers do not all auto-create topics, and never with the partition counts the engine needs (user
state is co-partitioned across clicks, reviews, impressions and the users changelog), so ``shopguide topics
create`` and each worker at start-up create them explicitly, idempotently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import BrokerUnreachable, TopicLayoutError
from streams.settings import Settings

log = logging.getLogger(__name__)

COMPACT = {"cleanup.policy": "compact"}
#: Model snapshots travel in chunks well below every broker's default message limit.
SNAPSHOT_CHUNK_BYTES = 512 * 1024
#: A key no table ever holds; see :func:`heal_changelogs`.
HEAL_KEY = b"\x00shopguide:heal"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    keyed_by: str = ""  # "user", "item" or "" (not partitioned by a key the engine relies on)


class Topics:
    """Topic names derived from the settings; one instance per app."""

    def __init__(self, settings: Settings) -> None:
        p = settings.topic_prefix
        self.clicks = f"{p}clicks"
        self.reviews = f"{p}reviews"
        self.items = f"{p}items"
        self.rules = f"{p}rules"  # merchandising rules, key rule_id (streams.processors.merchandising)
        self.experiments = f"{p}experiments"  # arms, key experiment_id (streams.processors.experiment_records)
        self.impressions = f"{p}impressions"  # items shown to a shopper, key user_id (optional input)
        self.recommendations = f"{p}recommendations"
        self.sentiment = f"{p}sentiment"
        self.shadow = f"{p}shadow"  # a shadow arm's recommendations, never shown (model.experiments)
        self.deadletter = f"{p}deadletter"
        # The shopping guide: questions in, answers and reply drafts out.
        self.questions = f"{p}questions"
        self.answers = f"{p}answers"
        self.review_replies = f"{p}review-replies"
        # Internal: reviews and click counts re-keyed by item, the trainer's input, model snapshots.
        self.item_reviews = f"{p}item-reviews"
        self.item_activity = f"{p}item-activity"
        self.training = f"{p}training"
        self.snapshots = f"{p}snapshots"
        self._variants = list(settings.variant_table())  # each trainer variant's snapshots: a topic
        self.forget = f"{p}forget"  # requests to erase a user (``shopguide forget``)
        self.users_changelog = f"{settings.app_id}-users-changelog"
        self.items_changelog = f"{settings.app_id}-items-changelog"
        self._partitions = settings.partitions
        # Dead letters and training examples carry personal data: kept only this long.
        self._deadletter_retention = {"retention.ms": str(int(settings.deadletter_retention_h * 3_600_000))}
        self._training_retention = {"retention.ms": str(int(settings.training_retention_h * 3_600_000))}

    def variant_snapshots(self, variant: str) -> str:
        """The topic of a trainer variant's snapshots (``shopguide trainer --variant``)."""
        return f"{self.snapshots}.{variant}"

    def specs(self) -> list[TopicSpec]:
        n = self._partitions
        return [
            TopicSpec(self.clicks, n, keyed_by="user"),
            TopicSpec(self.reviews, n, keyed_by="user"),
            TopicSpec(self.items, n, COMPACT, keyed_by="item"),
            TopicSpec(self.rules, n, COMPACT),
            TopicSpec(self.experiments, n, COMPACT),
            TopicSpec(self.impressions, n, keyed_by="user"),
            TopicSpec(self.recommendations, n, COMPACT, keyed_by="user"),
            TopicSpec(self.sentiment, n, keyed_by="item"),
            TopicSpec(self.shadow, n, keyed_by="user"),
            TopicSpec(self.deadletter, 1, self._deadletter_retention),
            TopicSpec(self.questions, n, keyed_by="user"),
            TopicSpec(self.answers, n, keyed_by="user"),
            TopicSpec(self.review_replies, n, keyed_by="item"),
            TopicSpec(self.item_reviews, n, keyed_by="item"),
            TopicSpec(self.item_activity, n, keyed_by="item"),
            TopicSpec(self.training, 1, self._training_retention),
            TopicSpec(self.snapshots, 1, COMPACT),
            *(TopicSpec(self.variant_snapshots(v), 1, COMPACT) for v in self._variants),
            TopicSpec(self.forget, n, self._training_retention, keyed_by="user"),
            TopicSpec(self.users_changelog, n, COMPACT, keyed_by="user"),
            TopicSpec(self.items_changelog, n, COMPACT, keyed_by="item"),
        ]


class _LastFailure(logging.Handler):
    """The last connection failure kafka-python logged (``Bootstrap connection to ... failed:
    <cause>``), its only account of why; its other warnings ("not ready; waiting", "Bootstrap
    failed: ... Unable to bootstrap") name no cause."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "connection" in message and "failed" in message:
            self.message = message


def admin_client(settings: Settings) -> KafkaAdminClient:
    """An admin client, retrying while the broker is still starting; :class:`BrokerUnreachable`
    naming the last cause (refused connection, untrusted certificate, refused login) after
    ``settings.broker_wait_s``."""
    timeout_s = settings.broker_wait_s
    deadline = time.monotonic() + timeout_s
    last = _LastFailure()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(last)
    try:
        while True:
            try:
                return KafkaAdminClient(
                    bootstrap_servers=settings.bootstrap_servers,
                    client_id=f"{settings.app_id}-admin",
                    request_timeout_ms=10_000,
                    # kafka-python's own bootstrap retries for 30 s whatever the budget says.
                    bootstrap_timeout_ms=max(1_000, int((deadline - time.monotonic()) * 1000)),
                    **settings.kafka_client_options(),
                )
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise BrokerUnreachable(
                        f"no Kafka broker answered at {','.join(settings.bootstrap_servers)} over "
                        f"{settings.security_protocol} within {timeout_s:.0f} s: {last.message or exc}"
                    ) from exc
                time.sleep(0.25)
    finally:
        kafka_log.removeHandler(last)


def create_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """Create the missing topics; return (created, already there). Safe to run concurrently."""
    specs = Topics(settings).specs()
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, settings.replication, topic_configs=spec.config)]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        _check_partitions(admin, specs)
        return created, [s.name for s in specs if s.name not in created]
    finally:
        admin.close()


def _check_partitions(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    described = {d["name"]: len(d["partitions"]) for d in admin.describe_topics([s.name for s in specs])}
    wrong = [
        f"{s.name} has {described.get(s.name)} partitions, expected {s.partitions}"
        for s in specs
        if s.keyed_by and described.get(s.name) != s.partitions
    ]
    if wrong:
        raise TopicLayoutError(
            "keyed topics must all have SHOPGUIDE_PARTITIONS partitions (state is co-partitioned): " + "; ".join(wrong)
        )


def heal_changelogs(settings: Settings) -> None:
    """Write one tombstone of :data:`HEAL_KEY` to every table changelog partition.

    Measured on the embedded broker (Tansu): when a producer dies in the middle of its writes, the
    records of its last request are stored and acknowledged but the partition's end offset stays
    behind them until the next write to that partition. Faust's table recovery reads a changelog
    up to that end offset, so a worker restarted after a SIGKILL would stop short of its last
    acknowledged state (or refuse to start: "persisted offset is higher than the highwater").
    One more write moves the end offset past every stored record. On Apache Kafka it is a delete
    of a key that never existed, which compaction removes.
    """
    topics = Topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        **settings.kafka_client_options(),
    )
    try:
        for topic in (topics.users_changelog, topics.items_changelog):
            for partition in range(settings.partitions):
                producer.send(topic, key=HEAL_KEY, value=None, partition=partition)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
