"""The stall watch tells an input partition that stopped from one that is busy or idle, one
partition at a time: a stuck partition shows while the others flow."""

from __future__ import annotations

from streams.engine.monitor import StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stall_is_records_waiting_and_the_offset_owed_unmoved_for_the_whole_period_reported_once():
    clock = Clock()
    watch = StallWatch(30.0, clock)
    assert watch.observe({"p0": 100}) == []
    clock.now = 29.0
    assert watch.observe({"p0": 100}) == [] and watch.stalled_for() == 0.0
    clock.now = 31.0
    assert watch.observe({"p0": 100}) == ["p0"]
    assert watch.stalled_for() == 31.0
    clock.now = 60.0
    assert watch.observe({"p0": 100}) == [], "reported once per stall"
    assert watch.stalled_for() == 60.0
    clock.now = 65.0
    assert watch.observe({"p0": 110}) == [] and watch.stalled_for() == 0.0, "progress ends it"
    clock.now = 96.0
    assert watch.observe({"p0": 110}) == ["p0"], "and a new stall is reported again"


def test_one_stuck_partition_is_reported_while_the_others_flow():
    clock = Clock()
    watch = StallWatch(30.0, clock)
    reported = []
    for step in range(20):
        clock.now = step * 5.0
        owed = {"p0": 111, "p1": 174 + 10 * step, "p2": 135 + step}
        if step % 3 == 0:
            del owed["p2"]  # caught up now and then: nothing waits in it
        reported += watch.observe(owed)
    assert reported == ["p0"]
    assert watch.stalled_for() == 95.0


def test_a_busy_worker_and_an_idle_one_never_stall():
    clock = Clock()
    watch = StallWatch(30.0, clock)
    for step in range(100):  # behind a backlog, but processing
        clock.now = step * 5.0
        assert watch.observe({"p0": step, "p1": 2 * step}) == []
    for step in range(100, 200):  # nothing to do
        clock.now = step * 5.0
        assert watch.observe({}) == []
    assert watch.stalled_for() == 0.0


def test_a_partition_that_stops_waiting_ends_its_stall():
    clock = Clock()
    watch = StallWatch(30.0, clock)
    watch.observe({"p0": 5, "p1": 7})
    clock.now = 40.0
    assert sorted(watch.observe({"p0": 5, "p1": 7})) == ["p0", "p1"]
    clock.now = 45.0
    assert watch.observe({"p1": 7}) == [] and watch.stalled_for() == 45.0, "p1 is still stuck"
    assert watch.observe({}) == [] and watch.stalled_for() == 0.0


def test_a_stall_under_a_hold_is_reported_only_if_it_lasts_the_period_after_the_hold():
    """During a rebalance nothing can be done: the stall counts (for liveness) but is reported
    only once the partition stays unmoved for the whole period after the rebalance."""
    clock = Clock()
    watch = StallWatch(30.0, clock)
    watch.observe({"p0": 5, "p1": 9})
    clock.now = 40.0
    assert watch.observe({"p0": 5, "p1": 9}, hold=True) == []
    assert watch.stalled_for() == 40.0, "a stall held counts"
    clock.now = 45.0
    assert watch.observe({"p0": 5, "p1": 9}) == [], "the rebalance's seek gets its period"
    clock.now = 60.0
    assert watch.observe({"p0": 5, "p1": 12}) == []  # p1 moved after the rebalance
    clock.now = 76.0
    assert watch.observe({"p0": 5, "p1": 12}) == ["p0"]
