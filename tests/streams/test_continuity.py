"""The transport's guard against fetched records that start past offsets never delivered."""

from __future__ import annotations

from typing import NamedTuple

from streams.kafka.transport import Continuity, bounded_commit


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    offset: int


def batch(first: int, last: int) -> list[Rec]:
    return [Rec(o) for o in range(first, last + 1)]


def inputs(topic: str) -> bool:
    return topic == "clicks"


def test_records_that_continue_from_the_committed_offset_pass_and_advance() -> None:
    c = Continuity()
    tp = TP("clicks", 0)
    c.resume({tp: 10})
    assert c.check({tp: batch(10, 14)}, inputs) == {}
    assert c.check({tp: batch(15, 15)}, inputs) == {}
    assert c.check({tp: batch(17, 18)}, inputs) == {tp: 16}


def test_records_past_the_committed_offset_are_fetched_again_from_it() -> None:
    c = Continuity()
    skipped, fine = TP("clicks", 1), TP("clicks", 2)
    c.resume({skipped: 115, fine: 102})
    assert c.check({skipped: batch(371, 380), fine: batch(102, 110)}, inputs) == {skipped: 115}
    # fetched again from 115, in order: accepted
    assert c.check({skipped: batch(115, 120)}, inputs) == {}


def test_a_gap_the_broker_returns_twice_from_the_same_offset_is_real() -> None:
    c = Continuity()
    tp = TP("clicks", 0)
    c.resume({tp: 5})
    assert c.check({tp: batch(7, 9)}, inputs) == {tp: 5}
    assert c.check({tp: batch(7, 9)}, inputs) == {}  # a transaction marker at 5-6, say
    assert c.check({tp: batch(10, 11)}, inputs) == {}


def test_partitions_read_from_their_beginning_and_other_topics_are_not_checked() -> None:
    c = Continuity()
    fresh, changelog = TP("clicks", 3), TP("users-changelog", 0)
    c.resume({changelog: 0})
    assert c.check({fresh: batch(40, 41), changelog: batch(90, 91)}, inputs) == {}
    assert c.check({fresh: batch(43, 44)}, inputs) == {fresh: 42}


def test_owed_offsets_are_known_only_for_resumed_or_delivered_input_partitions() -> None:
    c = Continuity()
    resumed, fresh, changelog = TP("clicks", 0), TP("clicks", 1), TP("users-changelog", 0)
    c.resume({resumed: 616, changelog: 3})
    records = {resumed: batch(616, 620), fresh: batch(0, 1), changelog: batch(3, 4)}
    assert c.owed(records, inputs) == {resumed: 616}
    c.check(records, inputs)
    assert c.owed(records, inputs) == {resumed: 621, fresh: 2}


def test_a_commit_never_passes_a_hole_being_fetched_again() -> None:
    # Faust would commit 58 for acknowledged 16-57 over a committed 15 (a one-offset hole at 15).
    assert bounded_commit(58, 15) == 15
    assert bounded_commit(58, None) == 58
    assert bounded_commit(12, 15) == 12
    assert bounded_commit(None, 15) is None
