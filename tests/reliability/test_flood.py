"""One user floods the engine with 100,000 clicks while others keep shopping: every click is
counted, the flooding user's state stays bounded, the worker's memory does not follow the flood,
and the users on the other partitions are answered while the flood is still being worked off."""

from __future__ import annotations

import json
import statistics
import threading
import time

import psutil
import pytest

from state.user import INTERESTS_MAX, RECENT_MAX, UserState
from streams.events import Click
from streams.partitioning import partition_for
from streams.testing.harness import Cluster, counts_of, fresh_settings, wait_until
from streams.tools.cluster import get_json
from streams.tools.producer import EventProducer
from streams.tools.tail import messages

# About 200 s here: the flood is worked off at several hundred clicks a second (see the README).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

FLOOD = 100_000
FLOODER = "flood-user"
#: More categories than a user's state keeps (INTERESTS_MAX) and the API shows (10).
FLOOD_CATEGORIES = 50


def rss_mb(pid: int) -> tuple[float, float]:
    """The worker's and its trainer's (a child process, started on the first examples) RSS, in MB."""
    proc = psutil.Process(pid)
    children = sum(p.memory_info().rss for p in proc.children(recursive=True))
    return proc.memory_info().rss / 2**20, children / 2**20


def stored_user(cluster: Cluster, user: str) -> UserState:
    """The user's newest state in the users table's changelog."""
    latest = None
    for _, _, key, value in messages(cluster.settings, cluster.topics.users_changelog, True, 5.0):
        if key == user.encode() and value is not None:
            latest = value
    assert latest is not None, f"no state of {user} in the changelog"
    return UserState.from_bytes(latest)


def view_count(url: str, user: str) -> int:
    return (counts_of(url, user) or {}).get("view", 0)


def test_a_flood_from_one_user_is_bounded_and_starves_no_one(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        worker = cluster.start_worker()
        n = cluster.settings.partitions
        flood_partition = partition_for(FLOODER, n)
        bystanders = [f"shopper-{i}" for i in range(40)]
        elsewhere = [u for u in bystanders if partition_for(u, n) != flood_partition][:6]
        beside = [u for u in bystanders if partition_for(u, n) == flood_partition][:2]
        assert elsewhere and beside

        # Warm up (the first scoring compiles, the trainer starts and its first snapshot replaces the
        # shipped one: from then on the worker holds a served and an incoming model), then note the
        # worker's memory.
        start_version = get_json(f"{worker.url}/model")[1]["version"]
        for i, user in enumerate(elsewhere + beside):
            cluster.producer.send(
                cluster.topics.clicks,
                user.encode(),
                Click(f"warm-{i}", user, f"item-{i}", "view", time.time(), "c").to_json(),
            )
        cluster.producer.flush()
        cluster.recommendations.wait_for(
            lambda m: m["trigger_event_id"].startswith("warm-"), count=len(elsewhere + beside), timeout_s=60
        )
        wait_until(
            lambda: get_json(f"{worker.url}/model")[1]["version"] > start_version, 120, "the trainer's first snapshot"
        )
        rss_before, _ = rss_mb(worker.proc.pid)

        flood_sent = threading.Event()
        flooder = EventProducer(cluster.settings)  # its own: the shoppers' clicks must not queue behind it

        def flood() -> None:
            now = time.time()
            for i in range(FLOOD):
                body = json.dumps(
                    {
                        "event_id": f"flood-{i}",
                        "user_id": FLOODER,
                        "item_id": f"item-{i % 500}",
                        "action": "view",
                        "ts": now,
                        "category": f"c{i % FLOOD_CATEGORIES}",
                    }
                ).encode()
                flooder.send(cluster.topics.clicks, FLOODER.encode(), body)
            flooder.flush()
            flood_sent.set()

        start = time.monotonic()
        threading.Thread(target=flood, daemon=True).start()
        peak = trainer_peak = rss_before
        samples = []
        shopped = []
        while view_count(worker.url, FLOODER) < FLOOD:
            assert time.monotonic() - start < 480, f"flood not worked off: {view_count(worker.url, FLOODER)}"
            if len(shopped) < 60:  # the other users keep clicking while the flood is worked off
                for user in elsewhere + beside:
                    event_id, ts = f"shop-{len(shopped)}", time.time()
                    cluster.producer.send(
                        cluster.topics.clicks, user.encode(), Click(event_id, user, "item-1", "view", ts, "c").to_json()
                    )
                    shopped.append((event_id, user, ts))
                cluster.producer.flush()
            rss, trainer = rss_mb(worker.proc.pid)
            samples.append((view_count(worker.url, FLOODER), rss))
            peak, trainer_peak = max(peak, rss), max(trainer_peak, trainer)
            time.sleep(0.5)
        flood_s = time.monotonic() - start
        assert flood_sent.is_set()
        flooder.close()

        # Each shopper's latest click is answered. An earlier one that waited behind the flood may
        # share the answer of a later click (SHOPGUIDE_COALESCE_AFTER_MS): its latency is until the
        # first recommendation that reflects it.
        latest = {u: e for e, u, _ in shopped}
        cluster.recommendations.wait_for(
            lambda m: m["trigger_event_id"] in set(latest.values()), count=len(latest), timeout_s=60
        )
        sent_ts = {e: ts for e, _, ts in shopped}
        seq = {e: n for n, (e, _, _) in enumerate(shopped)}
        answered = sorted(
            (seq[r.value["trigger_event_id"]], r.value["published_ts"])
            for r in cluster.recommendations.items
            if r.value["trigger_event_id"] in seq
        )
        latency = {
            e: min(ts for n, ts in answered if n >= seq[e] and shopped[n][1] == u) - sent_ts[e] for e, u, _ in shopped
        }
        other = sorted(latency[e] for e, u, _ in shopped if u in elsewhere)
        print(
            f"flood of {FLOOD} clicks worked off in {flood_s:.1f} s; other partitions' latency "
            f"median {statistics.median(other):.3f} s, max {other[-1]:.3f} s; "
            f"same partition max {max(latency[e] for e, u, _ in shopped if u in beside):.3f} s; "
            f"worker RSS {rss_before:.0f} MB before, peak {peak:.0f} MB (trainer peak {trainer_peak:.0f} MB); "
            f"RSS by clicks worked off: {samples[:: max(1, len(samples) // 8)]}"
        )

        # Others were answered while the flood lasted, not after it.
        assert statistics.median(other) < flood_s / 4 and other[-1] < flood_s / 2
        # Every click counted once; the flooding user's state is bounded.
        status, state = get_json(f"{worker.url}/users/{FLOODER}")
        assert status == 200 and state["counts"]["view"] == FLOOD
        assert len(state["recent_items"]) == RECENT_MAX and len(state["interests"]) == 10
        stored = stored_user(cluster, FLOODER)  # what the table holds, beyond the API's top 10
        assert len(stored.interests.weights) == INTERESTS_MAX and len(stored.recent) == RECENT_MAX
        assert len(stored.to_bytes()) < 8192
        assert all(view_count(worker.url, u) == 1 + sum(1 for _, v, _ in shopped if v == u) for u in elsewhere + beside)
        # The flood's last click is answered; the flooding user's answers are far fewer than its clicks.
        cluster.recommendations.wait_for(lambda m: m["trigger_event_id"] == f"flood-{FLOOD - 1}", timeout_s=30)
        answers = [r for r in cluster.recommendations.items if r.value["user_id"] == FLOODER]
        assert len(answers) < FLOOD / 4
        # Memory does not follow the flood: the worker's second half of the flood needs no more than its
        # first half (the trainer, another process, loads TensorFlow when the first examples come).
        half = [rss for done, rss in samples if done < FLOOD / 2]
        assert peak < max(half) + 64, samples
        assert worker.alive
    finally:
        cluster.close()
