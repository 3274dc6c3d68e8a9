"""``shopguide forget`` through Kafka with a real worker: the user's state and recommendation go,
also from the changelog a restarted worker recovers from; other users stay."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from streams.events import Click, Item
from streams.tools.cluster import child_env, get_json

pytestmark = pytest.mark.integration


def status(url: str) -> int:
    return get_json(url)[0]


def wait_status(url: str, want: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := status(url)) != want:
        assert time.monotonic() < deadline, f"{url}: {got}, expected {want}"
        time.sleep(0.3)


def test_forget_removes_state_and_recommendation_everywhere(cluster):
    item = Item("fg-item", "tea", "green tea", in_stock=True, ts=time.time())
    cluster.send("items", item.item_id, item.to_json())
    cluster.wait_catalog(1)
    for user in ("fg-user", "fg-other"):
        click = Click(f"{user}-click", user, "fg-item", "view", time.time(), "tea")
        cluster.send("clicks", user, click.to_json())
        cluster.recommendations.wait_for(lambda m, u=user: m["trigger_event_id"] == f"{u}-click", timeout_s=60)
    url = cluster.workers[0].url
    assert status(f"{url}/users/fg-user") == 200 and status(f"{url}/recommendations/fg-user") == 200

    done = subprocess.run(
        [sys.executable, "-m", "streams.tools.cli", "forget", "fg-user"],
        env=child_env(cluster.settings),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    wait_status(f"{url}/users/fg-user", 404)
    assert status(f"{url}/recommendations/fg-user") == 404
    assert status(f"{url}/users/fg-other") == 200
    # The compacted recommendations topic gets a tombstone for the user.
    cluster.recommendations.wait_for(lambda m: m is None, timeout_s=30)
    assert [r.key for r in cluster.recommendations.items if r.value is None] == [b"fg-user"]

    # A worker that lost its local state recovers it from the changelog: without the user.
    worker = cluster.workers.pop()
    worker.stop()
    shutil.rmtree(worker.settings.data_dir / "faust")
    restarted = cluster.start_worker()
    wait_status(f"{restarted.url}/users/fg-other", 200)
    assert status(f"{restarted.url}/users/fg-user") == 404
    assert status(f"{restarted.url}/recommendations/fg-user") == 404
