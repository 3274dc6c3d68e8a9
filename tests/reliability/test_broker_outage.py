"""The broker disappears while the engine runs: frozen (unreachable), then stopped and restarted."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from streams.events import Click, Item
from streams.testing.harness import Cluster, TopicReader, counts_of, fresh_settings, wait_until
from streams.tools.cluster import get_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def health(cluster: Cluster) -> tuple[int, dict]:
    try:
        return get_json(cluster.workers[0].url + "/readyz", 3.0)
    except OSError:
        return 0, {}


def outage_reported(cluster: Cluster) -> bool:
    return health(cluster)[1].get("status") == "broker_unreachable"


def counts(cluster: Cluster, user: str) -> dict[str, int]:
    return counts_of(cluster.workers[0].url, user) or {}


def send_clicks(cluster: Cluster, prefix: str, n: int, expected: Counter) -> None:
    for i in range(n):
        user = f"{prefix}-u{i % 10}"
        click = Click(f"{prefix}-{i}", user, f"{prefix}-item-{i % 7}", "view", time.time(), "c")
        cluster.producer.send(cluster.topics.clicks, user.encode(), click.to_json())
        expected[user] += 1
        time.sleep(0.01)


def test_an_unreachable_broker_is_reported_and_nothing_is_lost(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        cluster.start_worker()
        expected: Counter = Counter()
        send_clicks(cluster, "before", 100, expected)
        cluster.producer.flush()
        broker.pause()
        wait_until(lambda: outage_reported(cluster), 15, "/readyz to report the outage")
        assert health(cluster)[0] == 503
        during = threading.Thread(target=send_clicks, args=(cluster, "during", 100, expected))
        during.start()  # the CLI's producer keeps retrying while the broker is frozen
        time.sleep(10)
        broker.resume()
        during.join(60)
        cluster.producer.flush()
        wait_until(lambda: health(cluster)[0] == 200, 60, "/readyz to recover")
        send_clicks(cluster, "after", 100, expected)
        cluster.producer.flush()
        wait_until(
            lambda: all(counts(cluster, u).get("view") == n for u, n in expected.items()),
            120,
            "every click, before, during and after the outage, to be counted exactly once",
        )
        assert {u.split("-")[0] for u in expected} == {"before", "during", "after"}
    finally:
        broker.resume()
        cluster.close()


def test_a_restarted_empty_broker_is_recreated_and_the_worker_carries_on(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        cluster.start_worker()
        expected: Counter = Counter()
        send_clicks(cluster, "first", 50, expected)
        cluster.producer.flush()
        wait_until(lambda: counts(cluster, "first-u0").get("view") == expected["first-u0"], 60, "the first clicks")
        broker.stop()
        wait_until(lambda: outage_reported(cluster), 15, "/readyz to report the outage")
        time.sleep(10)
        broker.start()  # same port, and empty: Tansu keeps everything in memory
        wait_until(lambda: health(cluster)[0] == 200, 90, "the worker to recreate the topics and recover")
        # Consumers that followed the lost logs must start the new ones from their beginning.
        cluster.recommendations.close()
        cluster.recommendations = TopicReader(cluster.settings, cluster.topics.recommendations)
        item = Item("after-item", "c", ts=time.time())
        cluster.producer.send(cluster.topics.items, item.item_id.encode(), item.to_json())
        after: Counter = Counter()
        send_clicks(cluster, "after", 30, after)
        cluster.producer.flush()
        # Every click counts; each user's latest is answered (earlier ones may share its answer if
        # they waited in Kafka while the worker recovered: SHOPGUIDE_COALESCE_AFTER_MS).
        latest = {f"after-{i}" for i in range(20, 30)}
        try:
            cluster.recommendations.wait_for(lambda m: m["trigger_event_id"] in latest, count=10, timeout_s=120)
            wait_until(lambda: all(counts(cluster, u).get("view") == n for u, n in after.items()), 30, "the counts")
        finally:
            answered = {r.value["trigger_event_id"] for r in cluster.recommendations.items}
            counted = {u: counts(cluster, u).get("view") for u in after}
            assert latest <= answered, (
                f"no recommendation for {sorted(latest - answered)}; clicks counted {counted}, sent {dict(after)}"
            )
        # The worker kept its local state: users seen before the restart keep their history.
        assert counts(cluster, "first-u0")["view"] == expected["first-u0"]
    finally:
        cluster.close()
