from state.dedup import IDS_KEPT, AppliedLog

T = 1_700_000_000_000  # ms


def test_records_at_or_below_the_mark_are_seen():
    log = AppliedLog()
    log.record("clicks", (1, 10, T + 10), "e10")
    assert log.seen("clicks", (1, 10, T + 10), "other")
    assert log.seen("clicks", (1, 3, T + 3), "other")
    assert not log.seen("clicks", (1, 11, T + 11), "e11")
    assert not log.seen("reviews", (1, 3, T + 3), "x")  # marks are per source topic


def test_other_partition_is_not_compared_by_offset():
    log = AppliedLog()
    log.record("clicks", (1, 10, T), "e10")
    assert not log.seen("clicks", (2, 5, T), "e5")
    log.record("clicks", (2, 5, T), "e5")
    assert log.marks["clicks"] == [2, 5, T]


def test_a_log_restarted_at_offset_zero_is_not_mistaken_for_a_replay():
    log = AppliedLog()
    log.record("clicks", (1, 500, T), "old")
    # The broker lost its data: offsets start again at 0, with records newer than the mark.
    assert not log.seen("clicks", (1, 0, T + 60_000), "new-0")
    log.record("clicks", (1, 0, T + 60_000), "new-0")
    assert log.seen("clicks", (1, 0, T + 60_000), "again")  # and its own replay is caught
    assert not log.seen("clicks", (1, 1, T + 60_001), "new-1")


def test_replays_are_caught_whatever_the_producers_clocks():
    log = AppliedLog()
    hours = 3 * 3600 * 1000
    log.record("clicks", (1, 10, T + hours), "fast-clock")  # a producer hours ahead
    log.record("clicks", (1, 11, T), "right-clock")  # then one on time: stamped earlier
    log.ids.clear()  # beyond the id bound: the offset mark alone decides
    assert log.seen("clicks", (1, 10, T + hours), "fast-clock")
    assert log.seen("clicks", (1, 11, T), "right-clock")
    assert not log.seen("clicks", (1, 12, T - hours), "slow-clock")  # a new record, however stamped


def test_producer_duplicates_are_caught_by_event_id_within_the_bound():
    log = AppliedLog()
    log.record("clicks", (0, 1, T), "dup")
    assert log.seen("clicks", (0, 2, T + 1), "dup")  # same event written twice, at a new offset
    for n in range(IDS_KEPT):
        log.record("clicks", (0, 10 + n, T + 10 + n), f"e{n}")
    assert not log.seen("clicks", (0, 100, T + 100), "dup")  # beyond the bound: applied again
    assert len(log.ids) == IDS_KEPT


def test_round_trip():
    log = AppliedLog()
    log.record("clicks", (3, 7, T), "a")
    assert AppliedLog.from_fields(log.to_fields()) == log
