"""SIGKILL a worker in the middle of a click stream, several times: no event lost, none counted twice."""

from __future__ import annotations

import time

import pytest

from streams.testing.harness import ClickStream, Cluster, fresh_settings, progress_report, wait_until_exact

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 60
EVENTS = 3000


def test_kill_minus_nine_three_times_loses_and_duplicates_nothing(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        cluster.start_worker()
        clicks = ClickStream(cluster, "cr", EVENTS, USERS, rate=250)
        clicks.start()
        kills = 0
        for delay in (2.5, 3.0, 3.5):
            time.sleep(delay)
            cluster.workers[0].kill()  # SIGKILL: no shutdown, no commit, no flush
            kills += 1
            cluster.workers.clear()
            cluster.start_worker()
        assert clicks.done.wait(120), "the producer did not finish"
        expected = clicks.expected
        url = cluster.workers[0].url
        wrong = wait_until_exact(url, expected, stall_s=30)
        assert not wrong, (
            f"after {kills} kills, users with wrong counts: {list(wrong.items())[:3]}\n"
            f"{progress_report(url, cluster.topics.clicks)}\n"
            + "\n".join(line for line in cluster.workers[0].log_tail(1000).splitlines() if "resume at" in line)
            + "\n"
            + cluster.workers[0].log_tail(30)
        )
        assert sum(sum(c.values()) for c in expected.values()) == EVENTS

        # Recommendations resumed: the last click of every user was answered.
        recs = cluster.recommendations.items
        answered = {r.value["trigger_event_id"] for r in recs}
        assert f"cr-{EVENTS - 1}" in answered

        # The changelog alone rebuilds the same state: a fresh worker with an empty data dir.
        cluster.workers[0].stop()
        cluster.workers.clear()
        fresh = cluster.start_worker(data_dir=tmp_path / "fresh-worker")
        wrong = wait_until_exact(fresh.url, expected, stall_s=30)
        assert not wrong, (
            f"rebuilt from the changelog, users with wrong counts: {list(wrong.items())[:3]}\n"
            f"{progress_report(fresh.url, cluster.topics.clicks)}"
        )
    finally:
        cluster.close()
