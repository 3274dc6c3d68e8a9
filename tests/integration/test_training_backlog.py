"""The model learns while a worker works off a backlog, not only once it has caught up: the busiest
moments of the stream (a restart, a replay, a rush) are when there is the most to learn from."""

from __future__ import annotations

import time

import pytest

from streams.bench.measure import Metrics
from streams.events import Click
from streams.testing.harness import Cluster, fresh_settings, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BACKLOG = 30_000
USERS = 1_500
CATEGORIES = 10


def test_the_trainer_learns_while_a_backlog_of_clicks_is_worked_off(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        now = time.time()
        # Each shopper browses one category's 30 items in turn: returning to items and their
        # neighbours gives the ranker retrieved positives to learn from.
        for n in range(BACKLOG):
            user = n % USERS
            step = n // USERS
            category = user % CATEGORIES
            item = f"bk-{category}-{(user + 3 * step) % 30}"
            click = Click(f"bk-{n}", f"bk-user-{user}", item, "view", now + n / 1000, f"cat-{category}")
            cluster.producer.send(cluster.topics.clicks, click.user_id.encode(), click.to_json())
        cluster.producer.flush()
        worker = cluster.start_worker()
        clicks = cluster.topics.clicks

        def learning_with_backlog_left() -> tuple[float, float] | None:
            m = Metrics.scrape(worker.url)
            learned = m.value("shopguide_train_examples_total", task="recommend")
            processed = m.value("shopguide_events_total", topic=clicks, outcome="processed")
            assert processed < BACKLOG, f"the backlog was worked off before the trainer learned ({learned})"
            return (learned, processed) if learned >= 500 else None

        learned, processed = wait_until(learning_with_backlog_left, 240, "the trainer to learn")
        print(f"learned {learned:.0f} ranking examples with {BACKLOG - processed:.0f} clicks still waiting")
    finally:
        cluster.close()
