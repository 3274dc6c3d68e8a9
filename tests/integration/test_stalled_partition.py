"""An input partition that stops while the others flow (left out of the fetch as a full stream
buffer leaves it, its drain never signalled) is noticed on its own, named with why, and fetched
again: every count exact."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest

from streams.events import Click
from streams.partitioning import partition_for
from streams.testing.harness import Cluster, fresh_settings, wait_until_exact

pytestmark = pytest.mark.integration

CATEGORIES = ("shoes", "bags", "books", "tea")
AFTER = 5  # clicks partition 0 is left out of the fetch once its record at this offset passed
STALL_S = 4.0


def test_a_partition_stuck_while_the_others_flow_is_named_and_fetched_again(broker, tmp_path, start_with_fault):
    settings = fresh_settings(broker, tmp_path, stall_s=STALL_S)
    cluster = Cluster(settings)
    try:
        worker = start_with_fault(cluster, "UNFETCH_AFTER", f"{cluster.topics.clicks}:0:{AFTER}")
        cluster.add_items("stuck", CATEGORIES)
        users = [f"stuck-user-{n}" for n in range(40)]
        assert {partition_for(u, settings.partitions) for u in users} == set(range(settings.partitions))
        expected: dict[str, Counter[str]] = {u: Counter() for u in users}
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 3 * STALL_S:  # the other partitions flow all along
            user = users[n % len(users)]
            click = Click(f"stuck-{n}", user, f"stuck-{n % 40}", "view", time.time(), CATEGORIES[n % 4])
            cluster.send("clicks", user, click.to_json())
            expected[user]["view"] += 1
            n += 1
            time.sleep(0.02)
        assert wait_until_exact(worker.url, expected, stall_s=30) == {}
        log = worker.log_path.read_text(errors="replace")
        assert "test fault: " in log and "left out of the fetch" in log
        clicks = re.escape(cluster.topics.clicks)
        stalls = re.findall(r"no event of (.*) processed for \d+ s while \d+ wait in them: blocked inputs (.*?); ", log)
        assert stalls, log[-3000:]
        named, why = stalls[0]
        assert re.fullmatch(clicks + r"\[0\]@\d+", named), stalls
        assert re.search(r"'buffered': \[[^]]*" + clicks + r"\[0\]", why), stalls
        assert "fetching the stalled input partitions again" in log
    finally:
        cluster.close()
