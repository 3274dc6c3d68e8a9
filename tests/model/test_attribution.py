"""Attribution to arms and the Wilson intervals of its rates."""

from __future__ import annotations

import json

import pytest

from model.attribution import Tally, attribution, reason_kind, wilson
from state.user import PublishedRecommendation


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17, Table I: 81/263 -> 0.2553 .. 0.3662.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 10)[0] == 0.0 and 0.0 < wilson(0, 10)[1] < 0.35
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] > 0.65
    assert wilson(0, 0) == (0.0, 1.0)


def _rec(arm: str = "b") -> PublishedRecommendation:
    return PublishedRecommendation(
        items=[("i1", 0.9), ("i2", 0.5), ("i3", 0.1)],
        interests=[],
        model_version=1,
        trigger_event_id="e1",
        event_ts=0.0,
        published_ts=0.0,
        reasons=[["rule:r-pin", "viewed"], ["interest:tea"]],
        experiment="x1" if arm else "",
        arm=arm,
        rec_id="r1" if arm else "",
    )


def test_an_action_on_a_recommended_item_is_attributed_to_its_first_reason_kind() -> None:
    rec = _rec()
    assert attribution(rec, "i1", "buy") == "rule"
    assert attribution(rec, "i2", "cart") == "interest"
    assert attribution(rec, "i3", "click") == "none"  # no reason kept for it
    assert reason_kind(["covisited:i7", "popular"]) == "covisited"  # the kind, not the source item
    assert reason_kind(["bought_together"]) == "bought_together"
    assert attribution(rec, "i9", "click") is None  # not recommended
    assert attribution(rec, "i1", "view") is None and attribution(rec, "i1", "fav") is None
    assert attribution(_rec(arm=""), "i1", "buy") is None  # outside an experiment
    assert attribution(None, "i1", "buy") is None
    assert reason_kind([]) == "none" and reason_kind(["popular"]) == "popular"


def test_the_tally_reports_rates_with_intervals_per_arm() -> None:
    tally = Tally()
    tally.recommended("x1", "a", 263)
    for _ in range(81):
        tally.attributed("x1", "a", "click")
    tally.recommended("x1", "b")
    report = tally.report()["x1"]
    click = report["a"]["attributed"]["click"]  # type: ignore[index]
    assert report["a"]["recommendations"] == 263
    assert (click["actions"], click["rate"]) == (81, round(81 / 263, 6))
    assert [round(x, 4) for x in click["ci95"]] == [0.2553, 0.3662]
    buy = report["b"]["attributed"]["buy"]  # type: ignore[index]
    # One trial, no success: the upper bound is z^2 / (1 + z^2).
    assert (buy["actions"], buy["rate"], buy["ci95"][0]) == (0, 0.0, 0.0)
    assert buy["ci95"][1] == pytest.approx(1.959964**2 / (1 + 1.959964**2), abs=1e-6)


def test_reports_of_several_tallies_add_up_to_the_report_of_one() -> None:
    one, parts = Tally(), [Tally(), Tally()]
    for n, (arm, action) in enumerate([("a", "click"), ("a", "buy"), ("b", "click"), ("a", "click"), ("b", "cart")]):
        for tally in (one, parts[n % 2]):
            tally.recommended("x1", arm, 10 + n)
            tally.attributed("x1", arm, action)
    parts[1].recommended("x2", "only-here", 3)
    one.recommended("x2", "only-here", 3)
    summed = Tally()
    for part in parts:
        summed.add_report(json.loads(json.dumps(part.report())))  # as another worker's answer reads
    assert summed.report() == one.report()
    assert summed.report()["x1"]["a"]["recommendations"] == 10 + 11 + 13


@pytest.mark.parametrize(
    "broken",
    [
        {"x1": {"a": {"recommendations": -1, "attributed": {}}}},
        {"x1": {"a": {"recommendations": 1.5, "attributed": {}}}},
        {"x1": {"a": {"attributed": {}}}},
        {"x1": {"a": {"recommendations": 1, "attributed": {"click": {"actions": "2"}}}}},
        {"x1": ["a"]},
    ],
)
def test_a_report_that_is_not_one_is_refused(broken) -> None:
    with pytest.raises(ValueError):
        Tally().add_report(broken)
