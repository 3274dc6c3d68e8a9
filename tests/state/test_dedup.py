from state.dedup import IDS_KEPT, AppliedLog

T = 1_700_000_000_000  # ms


def test_applied_records_are_seen():
    log = AppliedLog()
    log.record("clicks", (1, 3, T + 3), "e3")
    log.record("clicks", (1, 10, T + 10), "e10")
    assert log.seen("clicks", (1, 10, T + 10), "e10")
    assert log.seen("clicks", (1, 3, T + 3), "e3")
    assert not log.seen("clicks", (1, 11, T + 11), "e11")
    assert not log.seen("reviews", (1, 3, T + 3), "x")  # marks are per source topic


def test_other_partition_is_not_compared_by_offset():
    log = AppliedLog()
    log.record("clicks", (1, 10, T), "e10")
    assert not log.seen("clicks", (2, 5, T), "e5")
    log.record("clicks", (2, 5, T), "e5")
    assert log.marks["clicks"][:3] == [2, 5, T]


def test_a_log_restarted_at_offset_zero_is_not_mistaken_for_a_replay():
    log = AppliedLog()
    log.record("clicks", (1, 500, T), "old")
    # The broker lost its data: offsets start again at 0, with records newer than the mark.
    assert not log.seen("clicks", (1, 0, T + 60_000), "new-0")
    log.record("clicks", (1, 0, T + 60_000), "new-0")
    assert log.seen("clicks", (1, 0, T + 60_000), "new-0")  # and its own replay is caught
    assert not log.seen("clicks", (1, 1, T + 60_001), "new-1")


def test_replays_are_caught_whatever_the_producers_clocks():
    log = AppliedLog(ids_kept=0)  # no ids kept: the offset mark alone decides
    hours = 3 * 3600 * 1000
    log.record("clicks", (1, 10, T + hours), "fast-clock")  # a producer hours ahead
    log.record("clicks", (1, 11, T), "right-clock")  # then one on time: stamped earlier
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
    assert len(log.ids["clicks"]) == IDS_KEPT


def test_a_record_applied_after_later_ones_is_not_taken_for_a_replay():
    # A delivery hole: offsets 17-42 of a partition reached the state after 46 (fetched again,
    # or replayed after a crash). Only what the state applied is a replay.
    log = AppliedLog()
    log.record("item-reviews", (1, 46, T + 46), "later")
    assert not log.seen("item-reviews", (1, 30, T + 30), "held-back")
    log.record("item-reviews", (1, 30, T + 30), "held-back")
    assert log.marks["item-reviews"][:2] == [1, 46]
    assert log.seen("item-reviews", (1, 30, T + 30), "held-back")
    assert log.seen("item-reviews", (1, 46, T + 46), "later")
    assert not log.seen("item-reviews", (1, 40, T + 40), "another")


def test_below_the_kept_ids_the_offset_mark_decides():
    log = AppliedLog(ids_kept=2)
    for offset in (10, 20, 30, 40):
        log.record("clicks", (0, offset, T + offset), f"e{offset}")
    assert log.marks["clicks"] == [0, 40, T + 40, 20]  # 10 and 20 no longer kept
    assert log.seen("clicks", (0, 10, T + 10), "e10")  # a replay, by offset
    assert log.seen("clicks", (0, 15, T + 15), "never-seen")  # at or below the floor: taken for a replay
    assert log.seen("clicks", (0, 30, T + 30), "e30")  # kept
    assert not log.seen("clicks", (0, 35, T + 35), "e35")  # above the floor and not kept: new


def test_events_without_ids_are_recognised_by_offset():
    log = AppliedLog()
    log.record_offset("item-activity", (2, 7, T))
    assert log.seen_offset("item-activity", (2, 7, T))
    assert log.seen("item-activity", (2, 5, T), "any")
    assert not log.seen_offset("item-activity", (2, 8, T))


def test_round_trip():
    log = AppliedLog()
    log.record("clicks", (3, 7, T), "a")
    assert AppliedLog.from_fields(log.to_fields()) == log


def test_a_log_written_before_ids_were_kept_per_source_reads_as_it_did():
    old = AppliedLog.from_fields([{"clicks": [3, 7, T]}, [12345]])
    assert old.marks["clicks"] == [3, 7, T, 7]  # below the mark the offset decides, as before
    assert old.seen("clicks", (3, 5, T), "anything")
    assert not old.seen("clicks", (3, 8, T), "new")
    assert any(h == 12345 for h, _ in old.ids["clicks"])
