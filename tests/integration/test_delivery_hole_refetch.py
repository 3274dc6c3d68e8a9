"""A hole in what reaches an agent (records of a partition dropped between the fetch and the agent,
later ones processed) is fetched again while the worker lives: every count exact, the hole named
and counted once."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from streams.events import Click
from streams.partitioning import partition_for
from streams.testing.harness import Cluster, fresh_settings, wait_until, wait_until_exact
from streams.tools.cluster import get_text

pytestmark = pytest.mark.integration

CATEGORIES = ("shoes", "bags", "books", "tea")
FIRST, LAST = 5, 14  # offsets of clicks partition 0 dropped on their first way to the agent


def test_records_dropped_before_the_agent_are_fetched_again_and_counted_once(broker, tmp_path, start_with_fault):
    settings = fresh_settings(broker, tmp_path)
    cluster = Cluster(settings)
    try:
        worker = start_with_fault(cluster, "DROP_RECORDS", f"{cluster.topics.clicks}:0:{FIRST}:{LAST}")
        cluster.add_items("hole", CATEGORIES)
        users = [f"hole-user-{n}" for n in range(40)]
        in_zero = [u for u in users if partition_for(u, settings.partitions) == 0]
        assert len(in_zero) >= 3
        expected: dict[str, Counter[str]] = {u: Counter() for u in users}
        sent_to_zero = 0
        for n in range(240):
            user = users[n % len(users)]
            sent_to_zero += user in in_zero
            click = Click(f"hole-{n}", user, f"hole-{n % 40}", "view", time.time(), CATEGORIES[n % 4])
            cluster.send("clicks", user, click.to_json())
            expected[user]["view"] += 1
            time.sleep(0.01)
        assert sent_to_zero > LAST + 1, "the dropped range lies inside what partition 0 got"
        assert wait_until_exact(worker.url, expected, stall_s=30) == {}
        log = worker.log_path.read_text(errors="replace")
        assert len(re.findall(r"test fault: .*\[0\]@\d+ dropped before the agent", log)) == LAST - FIRST + 1
        warnings = re.findall(r"\[0\]: delivered offset (\d+), expected (\d+)", log)
        assert warnings == [(str(LAST + 1), str(FIRST))], log[-3000:]
        holes = wait_until(
            lambda: re.search(
                r'shopguide_delivery_holes_total\{topic="' + re.escape(cluster.topics.clicks) + r'"\} (\S+)',
                get_text(worker.url + "/metrics"),
            ),
            10,
            "the holes counter",
        )
        assert float(holes.group(1)) == 1.0
    finally:
        cluster.close()
