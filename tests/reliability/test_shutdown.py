"""SIGTERM in the middle of a click stream: the worker finishes its batch, commits, flushes its
state and exits within 10 s; its successor redoes nothing and every count is exact."""

from __future__ import annotations

import re
import time

import pytest

from streams.testing.harness import ClickStream, Cluster, fresh_settings, wait_until_exact
from streams.tools.cluster import get_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 40
EVENTS = 2000


def clicks_counted(url: str, outcome: str) -> float:
    """``shopguide_events_total`` for the clicks topic and ``outcome`` (0 until the first one)."""
    metrics = get_text(f"{url}/metrics")
    pattern = rf'^shopguide_events_total\{{(?=[^}}]*outcome="{outcome}")(?=[^}}]*clicks")[^}}]*\}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, re.M))


def test_sigterm_drains_commits_and_exits_within_ten_seconds(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        cluster.start_worker()
        clicks = ClickStream(cluster, "gs", EVENTS, USERS, rate=250)
        clicks.start()
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
        assert clicks.done.wait(60), "the producer did not finish"
        # A few more, so that the last worker surely processes some, however fast its predecessor
        # worked the stream off before its SIGTERM.
        more = ClickStream(cluster, "gt", 200, 10, rate=250)
        more.start()
        assert more.done.wait(60), "the producer did not finish"
        url = cluster.workers[0].url
        wrong = wait_until_exact(url, clicks.expected | more.expected, stall_s=30)
        assert not wrong, f"users with wrong counts: {list(wrong.items())[:3]}"
        # Its predecessor committed what it had processed: nothing was delivered twice.
        assert clicks_counted(url, "processed") > 0
        assert clicks_counted(url, "duplicate") == 0
        print(f"SIGTERM to exit: {', '.join(f'{t:.2f} s' for t in times)}")
    finally:
        cluster.close()
