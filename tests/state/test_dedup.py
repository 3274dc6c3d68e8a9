from state.dedup import IDS_KEPT, AppliedLog


def test_offsets_at_or_below_the_mark_are_seen():
    log = AppliedLog()
    log.record("clicks", 1, 10, "e10")
    assert log.seen("clicks", 1, 10, "other")
    assert log.seen("clicks", 1, 3, "other")
    assert not log.seen("clicks", 1, 11, "e11")
    assert not log.seen("reviews", 1, 3, "x")  # marks are per source topic


def test_other_partition_is_not_compared_by_offset():
    log = AppliedLog()
    log.record("clicks", 1, 10, "e10")
    assert not log.seen("clicks", 2, 5, "e5")
    log.record("clicks", 2, 5, "e5")
    assert log.marks["clicks"] == [2, 5]


def test_producer_duplicates_are_caught_by_event_id_within_the_bound():
    log = AppliedLog()
    log.record("clicks", 0, 1, "dup")
    assert log.seen("clicks", 0, 2, "dup")  # same event written twice, at a new offset
    for n in range(IDS_KEPT):
        log.record("clicks", 0, 10 + n, f"e{n}")
    assert not log.seen("clicks", 0, 100, "dup")  # beyond the bound: applied again
    assert len(log.ids) == IDS_KEPT


def test_round_trip():
    log = AppliedLog()
    log.record("clicks", 3, 7, "a")
    assert AppliedLog.from_fields(log.to_fields()) == log
