"""The watch on records that reach the agents past offsets of their partition never delivered."""

from __future__ import annotations

import random

from streams.engine.holes import Hole, HoleWatch


def deliver(watch: HoleWatch, partition: str, offsets: range | list[int]) -> list[Hole]:
    return [hole for o in offsets if (hole := watch.delivered(partition, o)) is not None]


def test_records_in_order_from_the_resumed_offset_have_no_hole() -> None:
    watch = HoleWatch()
    watch.resume({"p1": 15, "p2": None})
    assert deliver(watch, "p1", range(15, 60)) == []
    assert deliver(watch, "p2", range(300, 310)) == [], "read from its beginning: starts anywhere"


def test_the_sequence_seen_after_a_crash_is_fetched_again_from_the_first_missing_offset() -> None:
    # item-reviews partition 1 (2026-12-07): resumed at 15, 43-57 delivered, 15-42 never.
    watch = HoleWatch()
    watch.resume({"p1": 15})
    assert deliver(watch, "p1", range(43, 58)) == [Hole("p1", 15, 43)], "named once, not per record"
    # Fetched again from 15: the hole's records, then 43-57 again (duplicates), then new ones.
    assert deliver(watch, "p1", range(15, 70)) == []


def test_a_hole_after_records_delivered_and_one_right_at_the_resumed_offset() -> None:
    watch = HoleWatch()
    watch.resume({"p": 100})
    assert deliver(watch, "p", [101, 102]) == [Hole("p", 100, 101)], "a single missing record counts"
    assert deliver(watch, "p", [100, 101, 102, 103, 110]) == [Hole("p", 104, 110)]


def test_a_range_fetched_again_and_found_empty_is_accepted_without_a_loop() -> None:
    # A production log may skip offsets on purpose (transaction markers, compaction).
    watch = HoleWatch()
    watch.resume({"p": 5})
    assert deliver(watch, "p", [9, 10, 11]) == [Hole("p", 5, 9)]
    assert deliver(watch, "p", [9, 10, 11, 12]) == [], "fetched again from 5: 9 first, nothing between"
    # The same gap met again from before it (a later redelivery from 4) is known to be empty.
    assert deliver(watch, "p", [4, 9, 10]) == []


def test_an_assignment_moves_expectations_forward_and_forgets_the_ranges_found_empty() -> None:
    watch = HoleWatch()
    watch.resume({"p": 5, "q": 0})
    assert deliver(watch, "p", [9]) == [Hole("p", 5, 9)]
    assert deliver(watch, "p", [9]) == [], "fetched again and found empty"
    assert deliver(watch, "q", range(0, 50)) == []
    watch.resume({"p": 3, "q": 20})  # a rebalance keeps both: read again from their commits
    assert deliver(watch, "q", [50, 51]) == [], "records fetched before the seek may still come"
    assert deliver(watch, "q", range(20, 30)) == [], "then the partition again from its commit"
    assert deliver(watch, "q", [31]) == [Hole("q", 30, 31)]
    assert deliver(watch, "p", [4, 9]) == [Hole("p", 5, 9)], "a new assignment checks the gap again"
    watch.resume({"r": 100})  # taken over from another worker, committed up to 100
    assert deliver(watch, "r", [103]) == [Hole("r", 100, 103)]
    watch.resume({"r": 300})  # given back later, others having committed up to 300
    assert deliver(watch, "r", [300]) == [] and deliver(watch, "r", [302]) == [Hole("r", 301, 302)]
    watch.resume({"p": None})
    assert deliver(watch, "p", [1000, 1001]) == []


def test_a_record_fetched_before_the_seek_that_took_the_partition_up_past_it_names_no_hole() -> None:
    """A takeover (2026-12-07): the rebalance's first seek knows no commit and reads from the
    beginning, its second resumes at the commit, 62; a record of the first fetch, 3, delivered
    after it must not set the expectation back (a hole 4-61 fetched again, all replays)."""
    watch = HoleWatch()
    watch.resume({"p": None})
    assert deliver(watch, "p", [0, 1, 2]) == []
    watch.resume({"p": 62})
    assert deliver(watch, "p", [3, 62, 63]) == []
    assert deliver(watch, "p", [65]) == [Hole("p", 64, 65)]


def test_partitions_are_watched_independently() -> None:
    watch = HoleWatch()
    watch.resume({"a": 0, "b": 0})
    holes = [watch.delivered(p, o) for p, o in [("a", 0), ("b", 0), ("a", 1), ("b", 3), ("a", 2)]]
    assert [h for h in holes if h is not None] == [Hole("b", 1, 3)]


def test_random_drops_and_log_gaps_lose_nothing_and_never_loop() -> None:
    """A simulated consumer: a log with offsets missing on purpose, records dropped at random on
    their first way to the agent (the fault), fetched in batches of random size, fetched again from
    each batch's first named hole (the batch's later records still delivered, as when already
    queued). Every record of the log reaches the agent, and each hole costs one fetch at most."""
    rng = random.Random(20261207)
    for _ in range(500):
        start, end = rng.randrange(0, 50), rng.randrange(60, 200)
        log = [o for o in range(start, end) if rng.random() > 0.1] + [end]
        gap_runs = sum(1 for o in range(start, end) if o not in log and (o == start or o - 1 in log))
        watch = HoleWatch()
        watch.resume({"p": start})
        attempted: set[int] = set()
        delivered: set[int] = set()
        position, refetches, dropped = start, 0, 0
        while batch := [o for o in log if o >= position][: rng.randrange(1, 20)]:
            refetch_from: int | None = None  # the last asked for wins, as a later seek does
            for o in batch:
                first_time = o not in attempted
                attempted.add(o)
                if first_time and o != end and rng.random() < 0.2:
                    dropped += 1
                    continue
                hole = watch.delivered("p", o)
                delivered.add(o)
                if hole is not None:
                    assert hole.expected < hole.got == o
                    refetch_from = watch.first_missing("p")
            if refetch_from is None:
                position = batch[-1] + 1
            else:
                position, refetches = refetch_from, refetches + 1
        assert set(log) <= delivered, "nothing dropped stays lost"
        assert refetches <= dropped + gap_runs, (refetches, dropped, gap_runs)


def test_a_hole_stays_open_until_its_partition_comes_again_from_it() -> None:
    """What no commit may pass, and where a later hole's refetch starts: the lowest open hole."""
    watch = HoleWatch()
    watch.resume({"p": 15})
    assert watch.first_missing("p") is None
    assert deliver(watch, "p", [43, 44]) == [Hole("p", 15, 43)]
    assert watch.first_missing("p") == 15
    # records fetched before the refetch, with another hole among them: still from 15
    assert deliver(watch, "p", [46]) == [Hole("p", 45, 46)]
    assert watch.first_missing("p") == 15
    assert deliver(watch, "p", [15]) == [] and watch.first_missing("p") is None
    assert deliver(watch, "p", [17]) == [Hole("p", 16, 17)] and watch.first_missing("p") == 16
    watch.resume({"p": 10})
    assert watch.first_missing("p") is None, "an assignment reads from the committed offset anyway"
