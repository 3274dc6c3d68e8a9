"""The lazy ranking serving chooses from: the order of a full stable sort, produced only as far
as it is read, and the pool positions of the items it produced."""

from __future__ import annotations

import numpy as np

from model.ranking import Ranking

ITEMS = ["a", "b", "c", "d", "e", "f"]
SCORES = np.array([0.2, 0.9, 0.5, 0.9, 0.1, 0.5], np.float32)


def test_it_yields_a_stable_descending_sort_with_python_values() -> None:
    pairs = list(Ranking(ITEMS, SCORES))
    order = np.argsort(-SCORES, kind="stable")
    assert pairs == [(ITEMS[i], float(SCORES[i])) for i in order]
    assert [i for i, _ in pairs] == ["b", "d", "c", "f", "a", "e"]  # ties keep pool order
    assert all(type(s) is float for _, s in pairs)


def test_positions_come_from_the_walk_and_walk_on_only_when_needed() -> None:
    ranking = Ranking(ITEMS, SCORES)
    walk = iter(ranking)
    assert [next(walk), next(walk)] == [("b", float(SCORES[1])), ("d", float(SCORES[3]))]
    assert ranking.position("d") == 3
    assert ranking.position("a") == 0  # not produced yet: found further down
    assert next(iter(ranking)) == ("e", float(SCORES[4]))  # the walk went on past "a", not back
    assert ranking.position("zz") is None
    assert list(ranking) == []


def test_a_repeated_item_is_placed_at_its_best_ranked_occurrence() -> None:
    ranking = Ranking(["x", "y", "x"], np.array([0.1, 0.5, 0.9]))
    assert ranking.position("x") == 2


def test_known_positions_are_answered_without_the_walk() -> None:
    def unnamed() -> list[str]:
        raise AssertionError("the walk named the pool")

    ranking = Ranking(unnamed, SCORES, {"b": 1, "zz": -1})  # -1: known to be absent
    assert ranking.position("b") == 1 and ranking.position("zz") is None
    assert ranking.positions(["zz", "b"]) == [-1, 1]
