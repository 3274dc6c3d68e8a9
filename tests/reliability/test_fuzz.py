"""Thousands of hostile messages mixed with valid events, through a real worker: it never stops,
every invalid message is dead-lettered with a reason, every valid one is processed. The HTTP API
answers hostile requests with 4xx, never 5xx."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from streams.errors import InvalidEvent
from streams.events import REASONS, parse_click, parse_item, parse_review
from streams.testing.fuzzing import hostile_payloads, valid_click
from streams.testing.harness import Cluster, fresh_settings
from streams.tools.cluster import get_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARSE = {"clicks": parse_click, "reviews": parse_review, "items": parse_item}
# Six runs of 400 messages: many more draws per run overflow hypothesis's choice buffer, and an
# overflowing run is thrown away and drawn again, after it has already sent its messages.
RUNS = 6
PER_RUN = 400


@pytest.fixture(scope="module")
def target(broker, tmp_path_factory) -> Iterator[tuple[Cluster, KafkaProducer]]:
    # Every valid click must get its own recommendation here, also when hostile messages hold the
    # worker up: clicks of a worker running behind do not share one (tests/reliability/test_flood.py).
    settings = fresh_settings(broker, tmp_path_factory.mktemp("fuzz")).with_(coalesce_after_ms=1e9)
    cluster = Cluster(settings)
    cluster.start_worker()
    raw = KafkaProducer(
        bootstrap_servers=cluster.settings.bootstrap_servers,
        enable_idempotence=False,
        linger_ms=5,
        max_request_size=1_048_576,
    )
    yield cluster, raw
    raw.close()
    cluster.close()


def classify(kind: str, payload: bytes) -> str:
    """What the worker must do with it: "valid" or the dead-letter reason."""
    try:
        PARSE[kind](payload)
        return "valid"
    except InvalidEvent as exc:
        return exc.reason


counter = iter(range(10**9))


# No shrinking: each case costs a real round trip through the worker; the failure report names the
# message (topic, partition, offset) instead.
@settings(
    max_examples=RUNS,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_hostile_messages_never_stop_the_worker(target, data):
    cluster, raw = target
    topics = cluster.topics
    sent = []  # (kind, payload, verdict, future)
    for _ in range(PER_RUN):
        if data.draw(st.integers(0, 4)) == 0:
            n = next(counter)
            payload, kind = json.dumps(valid_click(n) | {"ts": time.time()}).encode(), "clicks"
            key = valid_click(n)["user_id"].encode() if n % 3 else None  # unkeyed: forwarded, still processed
        else:
            kind = data.draw(st.sampled_from(sorted(PARSE)))
            payload = data.draw(hostile_payloads)
            key = data.draw(st.one_of(st.none(), st.binary(max_size=16)))
        if len(payload) > 900_000:
            continue
        future = raw.send(getattr(topics, kind), key=key, value=payload)
        sent.append((kind, payload, classify(kind, payload), future))
    raw.flush()
    invalid = {}
    valid_clicks, valid_reviews = set(), set()
    for kind, payload, verdict, future in sent:
        meta = future.get(timeout=30)
        if verdict != "valid":
            assert verdict in REASONS
            invalid[(getattr(topics, kind), meta.partition, meta.offset)] = verdict
        elif kind == "clicks":
            valid_clicks.add(json.loads(payload)["event_id"])
        elif kind == "reviews":
            valid_reviews.add(json.loads(payload)["event_id"])

    def dead(m: dict) -> bool:
        return (m["source_topic"], m["partition"], m["offset"]) in invalid

    letters = cluster.deadletter.wait_for(dead, count=len(invalid), timeout_s=180)
    by_place = {(m["source_topic"], m["partition"], m["offset"]): m for m in letters}
    for place, reason in invalid.items():
        assert by_place[place]["reason"] == reason and by_place[place]["error"], (place, by_place[place])
    if valid_clicks:
        cluster.recommendations.wait_for(lambda m: m["trigger_event_id"] in valid_clicks, count=1, timeout_s=120)
        answered = {r.value["trigger_event_id"] for r in cluster.recommendations.items}
        deadline = time.monotonic() + 120
        while not valid_clicks <= answered and time.monotonic() < deadline:
            time.sleep(0.5)
            answered = {r.value["trigger_event_id"] for r in cluster.recommendations.items}
        assert valid_clicks <= answered, f"valid clicks without a recommendation: {sorted(valid_clicks - answered)[:5]}"
    if valid_reviews:
        signals = {r.value.get("event_id") for r in cluster.sentiment.items}
        deadline = time.monotonic() + 120
        while not valid_reviews <= signals and time.monotonic() < deadline:
            time.sleep(0.5)
            signals = {r.value.get("event_id") for r in cluster.sentiment.items}
        assert valid_reviews <= signals
    worker = cluster.workers[0]
    assert worker.alive and get_json(worker.url + "/readyz")[0] == 200


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(max_size=300), route=st.sampled_from(["users/{}", "recommendations/{}", "items/{}/sentiment"]))
def test_hostile_requests_get_4xx_never_5xx(target, key, route):
    cluster, _ = target
    path = route.format(urllib.parse.quote(key, safe=""))
    status, _ = get_json(f"{cluster.workers[0].url}/{path}")
    assert status < 500, (key, status)


def raw_status(port: int, path: str) -> int | None:
    """The status of a GET sent whole on a raw socket (None: no HTTP answer). A server that
    answers before reading the whole request may reset the connection while it is sent; its
    answer is read all the same."""
    with socket.create_connection(("127.0.0.1", port), 10) as conn:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
    head = answer.split(b"\r\n", 1)[0].split()
    return int(head[1]) if len(head) > 1 and head[0].startswith(b"HTTP/") else None


def test_very_long_paths_are_refused_cleanly(target):
    cluster, _ = target
    statuses = {
        size: raw_status(cluster.settings.web_port, f"/users/{'u' * size}") for size in (1_000, 10_000, 100_000)
    }
    assert all(status is not None and 400 <= status < 500 for status in statuses.values()), statuses
