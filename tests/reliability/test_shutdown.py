"""SIGTERM in the middle of a click stream: the worker finishes its batch, commits, flushes its
state and exits within 10 s; its successor redoes nothing and every count is exact."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest

from streams.cluster import get_text
from streams.events import Click
from streams.testing import Cluster, fresh_settings, wait_until_exact

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 40
ACTIONS = ("view", "click", "cart", "fav", "buy")
EVENTS = 2000


def produce(cluster: Cluster, expected: dict[str, Counter], done: threading.Event) -> None:
    start = time.monotonic()
    for n in range(EVENTS):
        user = f"gs-user-{n % USERS}"
        action = ACTIONS[n % 7 % 5]
        click = Click(f"gs-{n}", user, f"gs-item-{n % 150}", action, time.time(), "c")
        cluster.producer.send(cluster.topics.clicks, user.encode(), click.to_json())
        expected[user][action] += 1
        time.sleep(max(0.0, start + (n + 1) / 250 - time.monotonic()))  # 250 clicks/s
    cluster.producer.flush()
    done.set()


def clicks_counted(url: str, outcome: str) -> float:
    """``shopguide_events_total`` for the clicks topic and ``outcome`` (0 until the first one)."""
    metrics = get_text(f"{url}/metrics")
    pattern = rf'^shopguide_events_total\{{(?=[^}}]*outcome="{outcome}")(?=[^}}]*clicks")[^}}]*\}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, re.M))


def test_sigterm_drains_commits_and_exits_within_ten_seconds(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        cluster.start_worker()
        expected: dict[str, Counter] = {f"gs-user-{u}": Counter() for u in range(USERS)}
        done = threading.Event()
        threading.Thread(target=produce, args=(cluster, expected, done), daemon=True).start()
        times = []
        for delay in (2.0, 2.5):
            time.sleep(delay)
            started = time.monotonic()
            code = cluster.workers[0].stop(timeout_s=30.0)  # SIGTERM; SIGKILL only after 30 s
            times.append(time.monotonic() - started)
            assert code == 0, cluster.workers[0].log_tail(30)
            cluster.workers.clear()
            cluster.start_worker()
        assert all(t < 10.0 for t in times), times
        assert done.wait(60), "the producer did not finish"
        url = cluster.workers[0].url
        wrong = wait_until_exact(url, expected, stall_s=30)
        assert not wrong, f"users with wrong counts: {list(wrong.items())[:3]}"
        # Its predecessor committed what it had processed: nothing was delivered twice.
        assert clicks_counted(url, "processed") > 0
        assert clicks_counted(url, "duplicate") == 0
        print(f"SIGTERM to exit: {', '.join(f'{t:.2f} s' for t in times)}")
    finally:
        cluster.close()
