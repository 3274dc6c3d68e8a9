"""The engine's configuration: one frozen, typed object read once from ``SHOPGUIDE_*`` variables.

Every option lives here, with its environment variable, default and meaning, so that the README's
configuration table and ``shopguide config`` are generated from the same source and cannot drift.
Faust reads many unprefixed variables of its own (``WEB_PORT``, ``BROKER_URL``...); the app is built
with an empty Faust environment so that only the variables below configure it.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from state.decay import INTEREST_HALF_LIFE_S, POPULARITY_HALF_LIFE_S
from streams.errors import SettingsError

BROKER_KINDS = ("auto", "embedded", "kafka")


def _opt(env: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


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
    web_port: int = _opt("SHOPGUIDE_WEB_PORT", 6066, "HTTP port of the worker (API, /healthz, /metrics)")
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
        "The same for the catalog, snapshot and training readers, which need no millisecond latency (each idle fetch costs worker and broker CPU)",
    )
    commit_interval_s: float = _opt("SHOPGUIDE_COMMIT_INTERVAL_S", 1.0, "How often consumed offsets are committed")
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
    train: bool = _opt(
        "SHOPGUIDE_TRAIN", True, "This worker may run the trainer (the group <app id>-trainer picks one that may)"
    )
    snapshot_interval_s: float = _opt(
        "SHOPGUIDE_SNAPSHOT_INTERVAL_S", 1.0, "Most often the trainer publishes a snapshot"
    )
    trainer_threads: int = _opt("SHOPGUIDE_TRAINER_THREADS", 1, "TensorFlow threads of the trainer process")
    trainer_nice: int = _opt(
        "SHOPGUIDE_TRAINER_NICE",
        0,
        "Niceness added to the trainer process: 19 serves first (queueing under load a third to a half of that at 0) but delays snapshots",
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
    guide_secret: str = _opt(
        "SHOPGUIDE_GUIDE_SECRET",
        "",
        "Key that signs shoppers' session tokens (from a secret); empty: a random key kept in the data dir",
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
    sasl_mechanism: str = _opt("SHOPGUIDE_KAFKA_SASL_MECHANISM", "PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str = _opt(
        "SHOPGUIDE_KAFKA_SASL_USERNAME", "", "SASL user (from a secret, never a file in the repository)"
    )
    sasl_password: str = _opt("SHOPGUIDE_KAFKA_SASL_PASSWORD", "", "SASL password (from a secret)")
    ssl_cafile: str = _opt("SHOPGUIDE_KAFKA_SSL_CAFILE", "", "CA bundle to verify the brokers' certificates")
    ssl_certfile: str = _opt("SHOPGUIDE_KAFKA_SSL_CERTFILE", "", "Client certificate for mutual TLS")
    ssl_keyfile: str = _opt("SHOPGUIDE_KAFKA_SSL_KEYFILE", "", "Client key for mutual TLS")
    log_level: str = _opt("SHOPGUIDE_LOG_LEVEL", "info", "Worker log level")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every option from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _parse(f.metadata["env"], raw, type(f.default))
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
        if self.broker_kind not in BROKER_KINDS:
            raise SettingsError(f"SHOPGUIDE_BROKER_KIND must be one of {', '.join(BROKER_KINDS)}")
        if self.security_protocol not in {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}:
            raise SettingsError(f"unknown SHOPGUIDE_KAFKA_SECURITY_PROTOCOL {self.security_protocol!r}")

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, to hand to a child process."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.metadata["env"]] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options in the keyword form kafka-python and aiokafka both accept."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.security_protocol.endswith("SSL"):
            opts["ssl_context"] = self.ssl_context()
        return opts

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
