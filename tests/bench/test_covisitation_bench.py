"""The co-visitation bench's arithmetic: hits and discovery hits from recommendations by trigger,
per time window and partition, and co-visitation recall lost to partitioned indexes."""

from __future__ import annotations

import itertools

import pytest

from streams.bench.covisitation import Published, Window, covisit_recall, hit_rates
from streams.events import Click
from streams.partitioning import partition_for


def _click(n: int, user: str, item: str) -> Click:
    return Click(f"e{n}", user, item, "view", 1_700_000_000.0 + n, "c")


def test_hits_count_against_the_previous_recommendation_and_discovery_against_the_history() -> None:
    clicks = [_click(0, "u", "a"), _click(1, "u", "b"), _click(2, "u", "a"), _click(3, "u", "c"), _click(4, "v", "a")]
    recs = {
        "e0": Published(frozenset({"b", "x"}), 10.0, 0),  # then b: a discovery hit
        "e1": Published(frozenset({"a"}), 20.0, 0),  # then a: a repeat's hit
        "e2": Published(frozenset({"x"}), 30.0, 1),  # then c: a discovery miss
        "e4": Published(frozenset({"a"}), 40.0, 0),  # v's first click: no trial
    }
    rates = hit_rates(clicks, recs, [Window("late", 15.0, 35.0), Window("late-p1", 15.0, 35.0, frozenset({1}))])
    assert rates["all"] == {
        "trials": 3,
        "hit_rate": 2 / 3,
        "repeat_hit_rate": 1.0,
        "discovery_trials": 2,
        "discovery_hit_rate": 0.5,
    }
    # Windows go by when the click's own answer was published (e1 at 20, e2 at 30; e3 has none).
    assert rates["late"] == {
        "trials": 2,
        "hit_rate": 1.0,
        "repeat_hit_rate": 1.0,
        "discovery_trials": 1,
        "discovery_hit_rate": 1.0,
    }
    assert rates["late-p1"] == {
        "trials": 1,
        "hit_rate": 1.0,
        "repeat_hit_rate": 1.0,
        "discovery_trials": 0,
        "discovery_hit_rate": None,
    }


def test_a_missing_recommendation_leaves_the_one_before_it() -> None:
    clicks = [_click(0, "u", "a"), _click(1, "u", "b"), _click(2, "u", "c")]
    recs = {"e0": Published(frozenset({"c"}), 1.0, 0)}  # e1's answer never came
    assert hit_rates(clicks, recs)["all"] == {
        "trials": 2,
        "hit_rate": 0.5,  # b missed e0's answer, c hit it
        "repeat_hit_rate": None,
        "discovery_trials": 2,
        "discovery_hit_rate": 0.5,
    }


def _users_in(partition: int, count: int) -> list[str]:
    found = (f"u{n}" for n in itertools.count() if partition_for(f"u{n}", 4) == partition)
    return list(itertools.islice(found, count))


@pytest.mark.parametrize("partitions", [1, 4])
def test_recall_finds_what_only_other_partitions_saw_with_one_index(partitions: int) -> None:
    """Shoppers of partition 0 walk a -> b; a shopper of partition 1 then goes from a to b, new to
    them: one index offers b, four partitioned ones do not."""
    teachers, (learner,) = _users_in(0, 3), _users_in(1, 1)
    clicks, n = [], 0
    for user in teachers:
        for item in ("a", "b"):
            clicks.append(_click(n, user, item))
            n += 1
    clicks += [_click(n, learner, "a"), _click(n + 1, learner, "b")]
    got = covisit_recall(clicks, partitions)
    # Each teacher's b is new to them too, but a's only neighbour so far is b itself: found from the 2nd teacher on.
    assert got["discovery_trials"] == 4
    assert got["covisited"] == (3 if partitions == 1 else 2)
