"""SIGKILL a worker in the middle of a click stream, several times: no event lost, none counted
twice, and (coalescing off) every click answered by a recommendation carrying its id and every
review by its sentiment message, also when a standby worker takes over from a killed one."""

from __future__ import annotations

import time

import pytest

from streams.testing.harness import (
    ClickStream,
    Cluster,
    fresh_settings,
    progress_report,
    wait_until,
    wait_until_exact,
)
from streams.tools.broker import free_port
from streams.tools.cluster import WorkerProcess, get_json

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


#: Clicks that waited in Kafka never share a recommendation: every click is answered on its own.
NO_COALESCING = {"coalesce_after_ms": 1e9}


def unanswered(cluster: Cluster, stream: ClickStream) -> tuple[set[str], set[str]]:
    """Clicks without a recommendation carrying their id, reviews without their sentiment message."""
    triggers = {r.value["trigger_event_id"] for r in cluster.recommendations.items}
    signals = {r.value.get("event_id") for r in cluster.sentiment.items}
    return stream.click_ids - triggers, stream.review_ids - signals


def check_everything_answered_once(cluster: Cluster, stream: ClickStream, worker: WorkerProcess, what: str) -> None:
    url = worker.url
    wrong = wait_until_exact(url, stream.expected, stall_s=45)  # longer than SHOPGUIDE_STALL_S
    assert not wrong, (
        f"{what}: users with wrong counts: {list(wrong.items())[:3]}\n{progress_report(url, cluster.topics.clicks)}\n"
        + "\n".join(line for line in worker.log_tail(5000).splitlines() if "[WARNING]" in line or "[ERROR]" in line)
    )
    try:
        wait_until(lambda: unanswered(cluster, stream) == (set(), set()), 120, "every event's outputs")
    except AssertionError:
        clicks, reviews_left = unanswered(cluster, stream)
        users = {u: get_json(f"{url}/users/{u}")[1]["reviews"] for u in stream.reviews}
        items = {i: get_json(f"{url}/items/{i}/sentiment")[1] for i in stream.item_reviews}
        print(
            "reviews per user (counted, sent):",
            {u: (n, stream.reviews[u]) for u, n in users.items() if n != stream.reviews[u]},
            "per item:",
            {
                i: (b and b["reviews"], stream.item_reviews[i])
                for i, b in items.items()
                if not b or b["reviews"] != stream.item_reviews[i]
            },
        )
        report = (
            f"{what}: {len(clicks)} clicks unanswered {sorted(clicks)[:5]}, "
            f"{len(reviews_left)} reviews without sentiment {sorted(reviews_left)[:5]}\n"
            + "\n".join(progress_report(url, t) for t in (cluster.topics.reviews, cluster.topics.item_reviews))
        )
        raise AssertionError(report) from None
    # Every review's sentiment message is out: its item has counted it.
    reviews = {u: get_json(f"{url}/users/{u}")[1]["reviews"] for u in stream.reviews}
    assert reviews == dict(stream.reviews), f"{what}: review counts per user"
    items = {i: get_json(f"{url}/items/{i}/sentiment")[1] for i in stream.item_reviews}
    assert {i: body["reviews"] for i, body in items.items()} == dict(stream.item_reviews), f"{what}: per item"
    recs = cluster.recommendations.items
    print(
        f"{what}: {len(stream.click_ids)} clicks, {len(stream.review_ids)} reviews, all answered; "
        f"{len(recs)} recommendations ({len(recs) - len(stream.click_ids)} repeats), "
        f"{len(cluster.sentiment.items)} sentiment messages"
    )


def test_every_click_and_review_is_answered_across_three_kill_minus_nines(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path, **NO_COALESCING))
    try:
        cluster.start_worker()
        stream = ClickStream(cluster, "ao", 2500, USERS, rate=250, review_every=8)
        stream.start()
        for delay in (2.0, 2.5, 3.0):
            time.sleep(delay)
            cluster.workers[0].kill()
            cluster.workers.clear()
            cluster.start_worker()
        assert stream.done.wait(120), "the producer did not finish"
        check_everything_answered_once(cluster, stream, cluster.workers[0], "3 SIGKILLs")
    finally:
        cluster.close()


def test_a_standby_takes_over_from_a_killed_worker_under_load_and_answers_everything(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path, **NO_COALESCING))
    try:
        cluster.start_worker()
        survivor = cluster.start_worker(web_port=free_port(), data_dir=tmp_path / "second")
        stream = ClickStream(cluster, "sb", 2500, USERS, rate=250, review_every=8)
        stream.start()
        time.sleep(4.0)
        cluster.workers[0].kill()  # the other holds standby copies of its table partitions
        # Until the group gives the dead worker's partitions to the survivor, the survivor routes
        # their keys to it: such reads are refused as unavailable (503), never as an error (500).
        statuses = {get_json(f"{survivor.url}/users/sb-user-{n}")[0] for n in range(USERS)}
        assert 500 not in statuses and statuses <= {200, 404, 503}, statuses
        assert 503 in statuses, f"no read was routed to the dead worker: {statuses}"
        assert stream.done.wait(120), "the producer did not finish"
        check_everything_answered_once(cluster, stream, survivor, "standby takeover")
    finally:
        cluster.close()
