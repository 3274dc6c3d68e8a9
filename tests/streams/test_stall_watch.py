"""The stall watch tells a worker that stopped processing from one that is busy or idle."""

from __future__ import annotations

from streams.engine.monitor import StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stall_is_input_waiting_and_nothing_processed_for_the_whole_period_and_is_reported_once():
    clock = Clock()
    watch = StallWatch(30.0, clock)
    assert not watch.observe(lag=50, events=100)
    clock.now = 29.0
    assert not watch.observe(lag=50, events=100) and watch.stalled_for() == 0.0
    clock.now = 31.0
    assert watch.observe(lag=50, events=100)
    assert watch.stalled_for() == 31.0
    clock.now = 60.0
    assert not watch.observe(lag=50, events=100), "reported once per stall"
    assert watch.stalled_for() == 60.0
    clock.now = 65.0
    assert not watch.observe(lag=40, events=110) and watch.stalled_for() == 0.0, "progress ends it"


def test_a_busy_worker_and_an_idle_one_never_stall():
    clock = Clock()
    watch = StallWatch(30.0, clock)
    for step in range(100):  # behind a backlog, but processing
        clock.now = step * 5.0
        assert not watch.observe(lag=10_000, events=step)
    for step in range(100, 200):  # nothing to do
        clock.now = step * 5.0
        assert not watch.observe(lag=0, events=100)
    assert watch.stalled_for() == 0.0
