"""Experiments' contract and bucketing: each broken definition is refused with a reason, shoppers
fall into arms in their shares, always the same arm, independently between experiments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model.experiments import ExperimentBook, bucket, rec_id
from streams.errors import InvalidEvent
from streams.events import parse_experiment

AB = {
    "experiment_id": "x1",
    "arms": [
        {"name": "control", "share": 0.5, "model": "current", "rules": "all"},
        {"name": "bare", "share": 0.3, "model": "current", "rules": "none"},
        {"name": "old", "share": 0.2, "model": "pinned:3"},
    ],
}


def dump(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_the_readme_form_parses_with_defaults() -> None:
    x = parse_experiment(dump(AB), "x1")
    assert [a.name for a in x.arms] == ["control", "bare", "old"]
    assert [a.rules for a in x.arms] == ["all", "none", "all"]
    assert [a.pinned for a in x.arms] == [None, None, 3]
    assert [a.variant for a in x.arms] == [None, None, None]
    trained = parse_experiment(dump({**AB, "arms": _arms({}, {"model": "trainer:fast-2"})}))
    assert [(a.pinned, a.variant) for a in trained.arms] == [(None, None), (None, "fast-2"), (3, None)]
    shadowed = parse_experiment(
        dump({**AB, "arms": [*AB["arms"], {"name": "ghost", "share": 0, "rules": "none"}], "shadow": "ghost"})
    )
    assert shadowed.shadow_arm is not None and shadowed.shadow_arm.name == "ghost"
    assert [a.name for a in shadowed.served] == ["control", "bare", "old"]


def _arms(*changes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**a, **c} for a, c in zip(AB["arms"], changes, strict=False)] + AB["arms"][len(changes) :]


@pytest.mark.parametrize(
    ("obj", "reason", "says"),
    [
        ({**AB, "arms": _arms({"share": 0.6})}, "out_of_range", "sum to 1"),
        ({**AB, "arms": _arms({"share": 0.5 + 2e-9})}, "out_of_range", "sum to 1"),
        ({**AB, "arms": _arms({}, {"name": "control"})}, "out_of_range", "unique"),
        ({**AB, "arms": _arms({"share": -0.1}, {"share": 0.9})}, "out_of_range", "[0, 1]"),
        ({**AB, "arms": _arms({"share": "half"})}, "wrong_type", "share"),
        ({**AB, "arms": _arms({"model": "pinned:v3"})}, "out_of_range", "pinned:<version>"),
        ({**AB, "arms": _arms({"model": "trainer:Big!"})}, "out_of_range", "trainer:<variant>"),
        ({**AB, "arms": _arms({"model": "trainer:"})}, "out_of_range", "field 'model'"),
        ({**AB, "arms": _arms({"model": "variant:big"})}, "out_of_range", "field 'model'"),
        ({**AB, "arms": _arms({"rules": "some"})}, "out_of_range", "field 'rules'"),
        ({**AB, "arms": _arms({"name": ""})}, "out_of_range", "arms[0]"),
        ({**AB, "arms": []}, "out_of_range", "1..10 arms"),
        ({**AB, "arms": {"a": 1}}, "wrong_type", "expected an array"),
        ({**AB, "arms": ["control"]}, "wrong_type", "arms[0]"),
        ({**AB, "shadow": "nobody"}, "out_of_range", "not one of the arms"),
        ({**AB, "shadow": "old"}, "out_of_range", "share must be 0"),
        ({**AB, "arms": [*AB["arms"], {"name": "idle", "share": 0}]}, "out_of_range", "only the shadow arm"),
        ({"arms": AB["arms"]}, "missing_field", "experiment_id"),
    ],
)
def test_broken_experiments_are_refused_with_a_reason(obj: dict[str, Any], reason: str, says: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_experiment(dump(obj))
    assert caught.value.reason == reason and says in str(caught.value)


def test_an_experiment_must_be_keyed_by_its_id() -> None:
    with pytest.raises(InvalidEvent, match="message key"):
        parse_experiment(dump(AB), "x2")


def test_shares_hold_within_a_percentage_point_over_100000_users() -> None:
    x = parse_experiment(dump(AB))
    counts = {a.name: 0 for a in x.arms}
    for n in range(100_000):
        counts[x.arm_of(f"user-{n}").name] += 1
    for arm in x.arms:
        assert abs(counts[arm.name] / 100_000 - arm.share) < 0.01, counts


def test_buckets_are_stable_and_independent_between_experiments() -> None:
    # Recorded values: the same in every process and Python version (``hash()`` is not); a change
    # of the scheme would move running experiments' shoppers between arms.
    assert bucket("x1", "user-1") == 0.9121333928407253
    assert rec_id("u1", "e1") == "1500e99532ea5166e6c1aa18"
    a = [bucket("x1", f"u{n}") < 0.5 for n in range(20_000)]
    b = [bucket("x2", f"u{n}") < 0.5 for n in range(20_000)]
    both = sum(x and y for x, y in zip(a, b, strict=True)) / 20_000
    assert abs(both - 0.25) < 0.02  # independent halves overlap in a quarter
    assert rec_id("u1", "e1") == rec_id("u1", "e1") != rec_id("u1", "e2") != rec_id("u2", "e1")


def test_the_smallest_experiment_id_is_in_force() -> None:
    book = ExperimentBook()
    assert book.active is None and book.arms_of(["u"]) is None
    book.put(parse_experiment(dump({**AB, "experiment_id": "x2"})))
    book.put(parse_experiment(dump(AB)))
    assert book.active is not None and book.active.experiment_id == "x1"
    book.delete("x1")
    assert book.active is not None and book.active.experiment_id == "x2"
    book.delete("x2")
    assert book.active is None and len(book) == 0
