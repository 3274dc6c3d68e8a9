"""The engine's configuration: one frozen, typed object read once from ``SHOPGUIDE_*`` variables.

Every option lives here, with its environment variable, default and meaning, so that the README's
configuration table and ``shopguide config`` are generated from the same source and cannot drift.
Faust reads many unprefixed variables of its own (``WEB_PORT``, ``BROKER_URL``...); the app is built
with an empty Faust environment so that only the variables below configure it.

Secrets (the SASL password, the snapshot key, the API tokens) may also come from a file named by
``<VARIABLE>_FILE`` (a mounted secret); they are left out of the settings' repr and redacted by
``shopguide config`` and in the worker's logs (:meth:`Settings.secret_values`).
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from model.candidates import EXPLORE_SLOTS, NEW_SHARE
from model.rules import Demotion
from model.trainer_variants import parse_variants
from state.catalog import FRESH_BELOW
from state.decay import INTEREST_HALF_LIFE_S, POPULARITY_HALF_LIFE_S
from state.user import action_weights
from streams.errors import SettingsError

BROKER_KINDS = ("auto", "embedded", "kafka")


def _opt(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


def _secret(env: str, doc: str) -> Any:
    return field(default="", repr=False, metadata={"env": env, "doc": f"{doc} (or a file: {env}_FILE)", "secret": True})


#: SASL mechanisms the engine's Kafka clients (aiokafka, kafka-python, Faust) are configured for;
#: OAUTHBEARER reads its token from SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE (streams.kafka.oauth).
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


@dataclass(frozen=True)
class Settings:
    """Engine settings. Build with :meth:`from_env`; override in tests with :meth:`with_`."""

    broker: str = _opt("SHOPGUIDE_BROKER", "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port]")
    topic_prefix: str = _opt("SHOPGUIDE_TOPIC_PREFIX", "shopguide.", "Prefix of every topic name")
    partitions: int = _opt("SHOPGUIDE_PARTITIONS", 4, "Partitions of the keyed topics (and changelogs)")
    replication: int = _opt("SHOPGUIDE_REPLICATION", 1, "Replication factor for topics the engine creates")
    app_id: str = _opt("SHOPGUIDE_APP_ID", "shopguide", "Consumer group id; prefixes the table changelogs")
    data_dir: Path = _opt(
        "SHOPGUIDE_DATA_DIR", Path("./var"), "Where a worker keeps RocksDB tables and model snapshots"
    )
    kernel_cache_dir: str = _opt(
        "SHOPGUIDE_KERNEL_CACHE_DIR",
        "",
        "Where compiled kernels are cached (empty: <data dir>/numba-cache); workers may share one",
    )
    resident_users: int = _opt(
        "SHOPGUIDE_RESIDENT_USERS",
        10_000,
        "Users whose decoded state a worker keeps in memory between their events, about 12 KB each with a full history (0: decode on every event)",
    )
    web_port: int = _opt("SHOPGUIDE_WEB_PORT", 6066, "HTTP port of the worker (API, /livez, /readyz, /metrics)")
    web_bind: str = _opt("SHOPGUIDE_WEB_BIND", "127.0.0.1", "Address the HTTP port binds; 0.0.0.0 exposes it")
    web_host: str = _opt(
        "SHOPGUIDE_WEB_HOST", "127.0.0.1", "Host other workers use to reach this one (request routing)"
    )
    create_topics: bool = _opt("SHOPGUIDE_CREATE_TOPICS", True, "Worker creates missing topics at start-up")
    broker_kind: str = _opt(
        "SHOPGUIDE_BROKER_KIND",
        "auto",
        "embedded: work around the in-memory dev broker losing its logs (recreate topics, tolerate short changelogs); kafka: never; auto: embedded if the cluster id says so",
    )
    session_timeout_s: float = _opt("SHOPGUIDE_SESSION_TIMEOUT_S", 6.0, "Consumer group session timeout")
    rebalance_timeout_s: float = _opt("SHOPGUIDE_REBALANCE_TIMEOUT_S", 3.0, "Consumer group rebalance timeout")
    heartbeat_s: float = _opt("SHOPGUIDE_HEARTBEAT_S", 1.0, "Consumer group heartbeat interval")
    fetch_wait_ms: int = _opt(
        "SHOPGUIDE_FETCH_WAIT_MS", 10, "Longest a consumer fetch waits for data (some brokers always wait this long)"
    )
    follower_fetch_wait_ms: int = _opt(
        "SHOPGUIDE_FOLLOWER_FETCH_WAIT_MS",
        100,
        "The same for the catalog, snapshot and training readers and the guide's knowledge intake, which need no millisecond latency (each idle fetch costs worker and broker CPU)",
    )
    commit_interval_s: float = _opt("SHOPGUIDE_COMMIT_INTERVAL_S", 1.0, "How often consumed offsets are committed")
    broker_wait_s: float = _opt(
        "SHOPGUIDE_BROKER_WAIT_S",
        30.0,
        "How long a starting worker (or `shopguide topics create`) retries an unreachable broker before it stops, naming the last cause",
    )
    producer_timeout_s: float = _opt(
        "SHOPGUIDE_PRODUCER_TIMEOUT_S",
        30.0,
        "How long a produce request waits for the broker's answer before it is sent again (Faust's default, 20 minutes, would hold a batch that long)",
    )
    stall_s: float = _opt(
        "SHOPGUIDE_STALL_S",
        30.0,
        "An input partition whose records wait and of which no event was processed for this long: a warning naming what it waits on, and it is fetched again",
    )
    stall_restart_s: float = _opt(
        "SHOPGUIDE_STALL_RESTART_S",
        180.0,
        "An input partition stalled this long: /livez answers 503, so that the orchestrator restarts the worker (0: never)",
    )
    standby_replicas: int = _opt(
        "SHOPGUIDE_STANDBY_REPLICAS", 1, "Standby copies of each table partition on other workers"
    )
    batch_max: int = _opt("SHOPGUIDE_BATCH_MAX", 256, "Most events one agent step processes together")
    batch_wait_ms: float = _opt(
        "SHOPGUIDE_BATCH_WAIT_MS", 2.0, "Longest wait to fill a batch (adds at most this to latency)"
    )
    batch_wait_behind_ms: float = _opt(
        "SHOPGUIDE_BATCH_WAIT_BEHIND_MS",
        50.0,
        "Longest wait to fill a batch whose first event waited more than SHOPGUIDE_COALESCE_AFTER_MS",
    )
    top_k: int = _opt("SHOPGUIDE_TOP_K", 10, "Items per published recommendation")
    new_share: float = _opt(
        "SHOPGUIDE_NEW_SHARE",
        NEW_SHARE,
        "Share of a returning shopper's published top k held for items they never touched, filled from the best-ranked ones (0: off)",
    )
    explore_slots: int = _opt(
        "SHOPGUIDE_EXPLORE_SLOTS",
        EXPLORE_SLOTS,
        "Places of the published top k given to fresh items of the shopper's interests, reason explore (0: off)",
    )
    explore_below: float = _opt(
        "SHOPGUIDE_EXPLORE_BELOW",
        FRESH_BELOW,
        "An item is fresh (explored) while it has fewer engagements than this (decayed like popularity)",
    )
    dislike_ttl_s: float = _opt(
        "SHOPGUIDE_DISLIKE_TTL_S",
        7 * 86_400.0,
        "How long a disliked item's near neighbours stay demoted for the shopper (the item itself: always)",
    )
    impression_limit: int = _opt(
        "SHOPGUIDE_IMPRESSION_LIMIT",
        3,
        "Impressions (shopguide.impressions) without an action after which an item is demoted for the shopper (0: off)",
    )
    demote_factor: float = _opt(
        "SHOPGUIDE_DEMOTE_FACTOR",
        0.1,
        "Score factor (> 0, <= 1) of the items a shopper's dislikes and ignored impressions demote",
    )
    action_weights: str = _opt(
        "SHOPGUIDE_ACTION_WEIGHTS",
        "",
        "Weight of each action in interests and popularity, e.g. view=1,click=2 (unnamed ones keep view=1,click=2,fav=3,cart=4,buy=5)",
    )
    coalesce_after_ms: float = _opt(
        "SHOPGUIDE_COALESCE_AFTER_MS",
        1000.0,
        "Clicks that waited longer than this in Kafka share one recommendation per user and batch (floods, backlogs)",
    )
    interest_half_life_s: float = _opt(
        "SHOPGUIDE_INTEREST_HALF_LIFE_S", INTEREST_HALF_LIFE_S, "Half-life of a user's category interest weights"
    )
    popularity_half_life_s: float = _opt(
        "SHOPGUIDE_POPULARITY_HALF_LIFE_S", POPULARITY_HALF_LIFE_S, "Half-life of item popularity counters"
    )
    item_flush_s: float = _opt(
        "SHOPGUIDE_ITEM_FLUSH_S", 2.0, "How often a worker sends its item activity counts to the item table"
    )
    covis_checkpoint_s: float = _opt(
        "SHOPGUIDE_COVIS_CHECKPOINT_S",
        30.0,
        "How often a worker writes its co-visitation indexes to its data directory, also when it stops (0: never, and none is loaded at start)",
    )
    train: bool = _opt(
        "SHOPGUIDE_TRAIN", True, "This worker may run the trainer (the group <app id>-trainer picks one that may)"
    )
    snapshot_interval_s: float = _opt(
        "SHOPGUIDE_SNAPSHOT_INTERVAL_S", 1.0, "Most often the trainer publishes a snapshot"
    )
    snapshot_full_every: int = _opt(
        "SHOPGUIDE_SNAPSHOT_FULL_EVERY",
        30,
        "The trainer publishes a full snapshot every this many versions, deltas against it in between (1: full snapshots only)",
    )
    snapshot_full_interval_s: float = _opt(
        "SHOPGUIDE_SNAPSHOT_FULL_INTERVAL_S",
        30.0,
        "The trainer publishes a full snapshot at least this often: the longest a worker that missed one waits for the next",
    )
    trainer_threads: int = _opt("SHOPGUIDE_TRAINER_THREADS", 1, "TensorFlow threads of the trainer process")
    trainer_nice: int = _opt(
        "SHOPGUIDE_TRAINER_NICE",
        0,
        "Niceness added to the trainer process: 19 serves first (queueing under load a third to a half of that at 0) but delays snapshots",
    )
    sentiment_negative_recall: float = _opt(
        "SHOPGUIDE_SENTIMENT_NEGATIVE_RECALL",
        0.0,
        "Share of the negative reviews the trainer's sentiment threshold must find among the reviews it calibrates on (0: best macro-F1 alone)",
    )
    trainer_variants: str = _opt(
        "SHOPGUIDE_TRAINER_VARIANTS",
        "",
        'Trainer variants experiments\' arms can name (trainer:<name>), JSON: {"name": {"learning_rate": 0.004, "task_weights": {...}}}; each runs as shopguide trainer --variant <name>',
    )
    snapshots_kept: int = _opt("SHOPGUIDE_SNAPSHOTS_KEPT", 5, "Snapshots a worker keeps on disk (newest first)")
    rollback_drop: float = _opt(
        "SHOPGUIDE_ROLLBACK_DROP", 0.5, "Roll back a snapshot whose hit rate falls below (1 - this) x the recent rate"
    )
    rollback_min_trials: int = _opt(
        "SHOPGUIDE_ROLLBACK_MIN_TRIALS", 300, "Clicks a snapshot is judged on before a rollback"
    )
    rollback_cooldown_s: float = _opt(
        "SHOPGUIDE_ROLLBACK_COOLDOWN_S", 60.0, "Newer snapshots are refused this long after a rollback"
    )
    alert_window: int = _opt("SHOPGUIDE_ALERT_WINDOW", 20, "Recent reviews per item the sentiment alert looks at")
    alert_min_reviews: int = _opt("SHOPGUIDE_ALERT_MIN_REVIEWS", 5, "Fewest recent reviews before an alert can fire")
    alert_negative_ratio: float = _opt(
        "SHOPGUIDE_ALERT_NEGATIVE_RATIO", 0.5, "Recent negative ratio that raises an alert"
    )
    alert_jump: float = _opt(
        "SHOPGUIDE_ALERT_JUMP", 0.25, "How far the recent negative ratio must exceed the item's long-run one"
    )
    alert_rearm_ratio: float = _opt(
        "SHOPGUIDE_ALERT_REARM_RATIO", 0.3, "An item alerts again only after its recent negative ratio fell below this"
    )
    guide_port: int = _opt(
        "SHOPGUIDE_GUIDE_PORT", 8080, "HTTP port of `shopguide guide` (the shopper's page, /ask, /metrics)"
    )
    guide_bind: str = _opt(
        "SHOPGUIDE_GUIDE_BIND", "127.0.0.1", "Address the guide's HTTP port binds; 0.0.0.0 exposes it"
    )
    guide_policy: str = _opt(
        "SHOPGUIDE_GUIDE_POLICY",
        "",
        "The shop's bilingual policy/FAQ file (JSON); empty: the sample shipped with the guide",
    )
    guide_max_sentences: int = _opt(
        "SHOPGUIDE_GUIDE_MAX_SENTENCES", 200, "Newest review sentences the guide's index keeps per item"
    )
    guide_encoder: bool = _opt(
        "SHOPGUIDE_GUIDE_ENCODER", True, "The guide uses the multilingual sentence encoder (0: BM25 alone)"
    )
    guide_secret: str = _secret(
        "SHOPGUIDE_GUIDE_SECRET", "Key that signs shoppers' session tokens; empty: a random key kept in the data dir"
    )
    guide_session_ttl_s: float = _opt(
        "SHOPGUIDE_GUIDE_SESSION_TTL_S", 86400.0, "How long a shopper's session token stays valid"
    )
    guide_demo_login: bool = _opt(
        "SHOPGUIDE_GUIDE_DEMO_LOGIN", False, "The page accepts /?user=ID without a token (demos and tests only)"
    )
    security_protocol: str = _opt(
        "SHOPGUIDE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: str = _opt(
        "SHOPGUIDE_KAFKA_SASL_MECHANISM",
        "PLAIN",
        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
    )
    sasl_username: str = _opt(
        "SHOPGUIDE_KAFKA_SASL_USERNAME", "", "SASL user (from a secret, never a file in the repository)"
    )
    sasl_password: str = _secret("SHOPGUIDE_KAFKA_SASL_PASSWORD", "SASL password")
    sasl_oauth_token_file: str = _opt(
        "SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE",
        "",
        "With OAUTHBEARER: a file holding the current token, read at each new connection (whatever issues tokens keeps it fresh)",
    )
    ssl_cafile: str = _opt("SHOPGUIDE_KAFKA_SSL_CAFILE", "", "CA bundle to verify the brokers' certificates")
    ssl_certfile: str = _opt("SHOPGUIDE_KAFKA_SSL_CERTFILE", "", "Client certificate for mutual TLS")
    ssl_keyfile: str = _opt("SHOPGUIDE_KAFKA_SSL_KEYFILE", "", "Client key for mutual TLS")
    snapshot_key: str = _secret(
        "SHOPGUIDE_SNAPSHOT_KEY",
        "Key (16+ characters) the trainer signs model snapshots with (HMAC-SHA256) and workers verify them with; a worker needs one",
    )
    snapshot_max_step: int = _opt(
        "SHOPGUIDE_SNAPSHOT_MAX_STEP",
        1_000_000,
        "A snapshot more than this many versions ahead of the served one is refused",
    )
    api_tokens: str = _secret(
        "SHOPGUIDE_API_TOKENS", "Bearer tokens (comma-separated) the data endpoints of the HTTP API accept"
    )
    api_open: bool = _opt(
        "SHOPGUIDE_API_OPEN",
        False,
        "Serve the data endpoints without tokens (only behind a proxy that authenticates); without it and without tokens a worker refuses to start",
    )
    api_rate: float = _opt("SHOPGUIDE_API_RATE", 50.0, "HTTP requests a second each client (token or address) may make")
    api_burst: int = _opt("SHOPGUIDE_API_BURST", 100, "HTTP requests a client may make at once above its rate")
    deadletter_payload_bytes: int = _opt(
        "SHOPGUIDE_DEADLETTER_PAYLOAD_BYTES", 256, "Bytes of a bad message's payload its dead letter keeps"
    )
    deadletter_retention_h: float = _opt(
        "SHOPGUIDE_DEADLETTER_RETENTION_H", 168.0, "Retention of the dead-letter topic, set when it is created"
    )
    training_retention_h: float = _opt(
        "SHOPGUIDE_TRAINING_RETENTION_H",
        24.0,
        "Retention of the training-example and forget-request topics, set when they are created",
    )
    log_level: str = _opt("SHOPGUIDE_LOG_LEVEL", "info", "Worker log level")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every option from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if f.metadata.get("secret") and env.get(f"{name}_FILE"):
                if raw:
                    raise SettingsError(f"set {name} or {name}_FILE, not both")
                raw = _read_secret(f"{name}_FILE", env[f"{name}_FILE"])
            if raw is not None and raw != "":
                values[f.name] = _parse(name, raw, type(f.default))
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> Settings:
        """A copy with some options changed (tests, the demo)."""
        settings = replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.partitions < 1:
            raise SettingsError("SHOPGUIDE_PARTITIONS must be at least 1")
        if not 0 < self.web_port < 65536:
            raise SettingsError("SHOPGUIDE_WEB_PORT must be a TCP port")
        if not 0 < self.guide_port < 65536:
            raise SettingsError("SHOPGUIDE_GUIDE_PORT must be a TCP port")
        if self.guide_max_sentences < 1 or self.guide_session_ttl_s <= 0:
            raise SettingsError("SHOPGUIDE_GUIDE_MAX_SENTENCES must be >= 1 and SHOPGUIDE_GUIDE_SESSION_TTL_S > 0")
        if self.batch_max < 1 or min(self.batch_wait_ms, self.batch_wait_behind_ms, self.coalesce_after_ms) < 0:
            raise SettingsError(
                "SHOPGUIDE_BATCH_MAX must be >= 1, SHOPGUIDE_BATCH_WAIT_MS, SHOPGUIDE_BATCH_WAIT_BEHIND_MS and "
                "SHOPGUIDE_COALESCE_AFTER_MS >= 0"
            )
        if not 0.0 < self.rollback_drop < 1.0:
            raise SettingsError("SHOPGUIDE_ROLLBACK_DROP must be between 0 and 1")
        if self.top_k < 1:
            raise SettingsError("SHOPGUIDE_TOP_K must be at least 1")
        if not self.broker_wait_s > 0:
            raise SettingsError("SHOPGUIDE_BROKER_WAIT_S must be above 0")
        if self.covis_checkpoint_s < 0:
            raise SettingsError("SHOPGUIDE_COVIS_CHECKPOINT_S must be >= 0")
        if not 0.0 <= self.new_share <= 1.0:
            raise SettingsError("SHOPGUIDE_NEW_SHARE must be between 0 and 1")
        if not 0.0 <= self.sentiment_negative_recall <= 1.0:
            raise SettingsError("SHOPGUIDE_SENTIMENT_NEGATIVE_RECALL must be between 0 and 1")
        if not 0 <= self.explore_slots <= self.top_k or not self.explore_below >= 0:
            raise SettingsError(
                "SHOPGUIDE_EXPLORE_SLOTS must be between 0 and SHOPGUIDE_TOP_K, SHOPGUIDE_EXPLORE_BELOW >= 0"
            )
        try:
            self.demotion()
        except ValueError as exc:
            raise SettingsError(
                f"SHOPGUIDE_DEMOTE_FACTOR, SHOPGUIDE_DISLIKE_TTL_S, SHOPGUIDE_IMPRESSION_LIMIT: {exc}"
            ) from None
        try:
            self.action_weight_table()
        except ValueError as exc:
            raise SettingsError(f"SHOPGUIDE_ACTION_WEIGHTS: {exc}") from None
        try:
            self.variant_table()
        except ValueError as exc:
            raise SettingsError(f"SHOPGUIDE_TRAINER_VARIANTS: {exc}") from None
        if self.broker_kind not in BROKER_KINDS:
            raise SettingsError(f"SHOPGUIDE_BROKER_KIND must be one of {', '.join(BROKER_KINDS)}")
        if self.security_protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise SettingsError(f"unknown SHOPGUIDE_KAFKA_SECURITY_PROTOCOL {self.security_protocol!r}")
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"SHOPGUIDE_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, got {self.sasl_mechanism!r}"
            )
        if self.sasl_mechanism == "OAUTHBEARER" and not self.sasl_oauth_token_file:
            raise SettingsError(
                "SHOPGUIDE_KAFKA_SASL_MECHANISM=OAUTHBEARER needs SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE"
            )
        if self.snapshot_key and len(self.snapshot_key.encode()) < 16:
            raise SettingsError("SHOPGUIDE_SNAPSHOT_KEY must be at least 16 bytes")
        if self.snapshot_max_step < 1:
            raise SettingsError("SHOPGUIDE_SNAPSHOT_MAX_STEP must be at least 1")
        if self.snapshot_full_every < 1 or not self.snapshot_full_interval_s > 0:
            raise SettingsError(
                "SHOPGUIDE_SNAPSHOT_FULL_EVERY must be at least 1, SHOPGUIDE_SNAPSHOT_FULL_INTERVAL_S above 0"
            )
        if self.deadletter_payload_bytes < 0 or min(self.deadletter_retention_h, self.training_retention_h) <= 0:
            raise SettingsError(
                "SHOPGUIDE_DEADLETTER_PAYLOAD_BYTES must be >= 0, the retentions (_RETENTION_H) above 0"
            )
        if not self.api_rate > 0 or self.api_burst < 1:
            raise SettingsError("SHOPGUIDE_API_RATE must be > 0 and SHOPGUIDE_API_BURST >= 1")

    def check_worker(self) -> None:
        """What a worker needs beyond valid values: a snapshot key, and tokens for its API unless
        it is explicitly open."""
        if not self.snapshot_key:
            raise SettingsError(
                "a worker needs SHOPGUIDE_SNAPSHOT_KEY (or SHOPGUIDE_SNAPSHOT_KEY_FILE): the trainer signs model "
                "snapshots with it and workers refuse snapshots it did not sign"
            )
        if not self.api_token_list and not self.api_open:
            raise SettingsError(
                "set SHOPGUIDE_API_TOKENS (or SHOPGUIDE_API_TOKENS_FILE), or SHOPGUIDE_API_OPEN=1 to serve personal "
                "data without authentication"
            )

    def with_generated_secrets(self) -> Settings:
        """A random snapshot key and API token where none is set: the embedded demo, test fixtures
        and benchmarks, whose workers and trainer share them for one run."""
        return self.with_(
            snapshot_key=self.snapshot_key or secrets.token_hex(32),
            api_tokens=self.api_tokens or secrets.token_urlsafe(24),
        )

    def demotion(self) -> Demotion:
        """How shoppers' negative feedback demotes items (``model.rules``)."""
        return Demotion(self.demote_factor, self.dislike_ttl_s, self.impression_limit)

    def action_weight_table(self) -> dict[str, float]:
        """Each action's weight in interests and popularity."""
        return action_weights(self.action_weights)

    def variant_table(self) -> dict[str, dict[str, Any]]:
        """The trainer variants by name, and the training settings each changes."""
        return parse_variants(self.trainer_variants)

    @property
    def api_token_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.api_tokens.split(",") if t.strip())

    @property
    def snapshot_key_bytes(self) -> bytes:
        return self.snapshot_key.encode()

    def secret_values(self) -> list[str]:
        """The secret strings set (each API token on its own), for redaction."""
        values = [getattr(self, f.name) for f in fields(self) if f.metadata.get("secret")]
        return [v for v in [*values, *self.api_token_list] if v]

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, to hand to a child process."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.metadata["env"]] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    def kafka_client_options(self, asyncio: bool = False) -> dict[str, Any]:
        """Security options in the keyword form kafka-python and aiokafka both accept; ``asyncio``
        for an aiokafka client (its OAUTHBEARER token provider is a coroutine)."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism == "OAUTHBEARER":
            from streams.kafka.oauth import AsyncFileTokenProvider, FileTokenProvider

            provider = AsyncFileTokenProvider if asyncio else FileTokenProvider
            opts.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=provider(self.sasl_oauth_token_file))
        elif self.security_protocol.startswith("SASL"):
            self.name_scram_refusals()
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.security_protocol.endswith("SSL"):
            opts["ssl_context"] = self.ssl_context()
        return opts

    def name_scram_refusals(self) -> None:
        """With a SCRAM mechanism, make the Kafka libraries name a refused login (streams.kafka.scram)."""
        if self.sasl_mechanism.startswith("SCRAM"):
            from streams.kafka.scram import install

            install()

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying TLS context from the CA and client-certificate options."""
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return context

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.broker.split(",") if s.strip()]


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every option, in declaration order."""
    rows = []
    for f in fields(Settings):
        default = f.default
        shown = ("1" if default else "0") if isinstance(default, bool) else str(default)
        rows.append((f.metadata["env"], shown, f.metadata["doc"]))
    return rows


def configuration_table() -> str:
    """Every option as a markdown table (variable, default, meaning): docs/configuration.md's."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{env}` | `{default}` | {doc} |" for env, default, doc in describe()]
    return "\n".join(rows)


def is_secret(env: str) -> bool:
    """Whether the variable ``env`` (or ``env`` without ``_FILE``) holds a secret."""
    name = env.removesuffix("_FILE")
    return any(f.metadata["env"] == name and f.metadata.get("secret") for f in fields(Settings))


def _read_secret(name: str, path: str) -> str:
    try:
        return Path(path).read_text().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"{name}: cannot read {path}: {reason}") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError(raw)
        if kind is Path:
            return Path(raw)
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
