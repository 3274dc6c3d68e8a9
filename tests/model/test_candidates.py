"""The business filter and the share of a top k held for items new to the user."""

from __future__ import annotations

import numpy as np
import pytest

from model.candidates import admissible, admissible_at, new_slots
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState


def _user(touched: list[str], bought: tuple[str, ...] = ()) -> UserState:
    user = UserState()
    for n, item_id in enumerate(touched):
        user.apply_click(item_id, "view", float(n), "c", 3600.0)
    for item_id in bought:
        user.apply_click(item_id, "buy", 100.0, "c", 3600.0)
    return user


def _catalog(out_of_stock: tuple[str, ...] = ()) -> Catalog:
    catalog = Catalog(3600.0)
    for item_id in out_of_stock:
        state = ItemState()
        state.apply_catalog("c", "", None, False, 1.0)
        catalog.upsert(item_id, state)
    return catalog


def _ranked(*ids: str) -> list[tuple[str, float]]:
    return [(item_id, 1.0 - n / 100) for n, item_id in enumerate(ids)]


def _ids(items: list[tuple[str, float]]) -> list[str]:
    return [item_id for item_id, _ in items]


@pytest.mark.parametrize(("share", "k", "slots"), [(0.0, 10, 0), (0.3, 10, 3), (0.3, 5, 2), (0.25, 4, 1), (1.0, 7, 7)])
def test_slots_are_the_share_of_k_rounded_up(share: float, k: int, slots: int) -> None:
    assert new_slots(share, k) == slots


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_0_and_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        new_slots(share, 10)


def test_without_a_share_the_first_k_admissible_candidates() -> None:
    user = _user(["a", "b", "c"], bought=("x",))
    ranked = _ranked("a", "x", "b", "a", "gone", "c", "d", "e")
    out = admissible(ranked, user, _catalog(out_of_stock=("gone",)), 4)
    assert out == [ranked[0], ranked[2], ranked[5], ranked[6]]


def test_the_best_new_candidates_replace_the_worst_ranked_seen_ones() -> None:
    seen = [f"s{n}" for n in range(12)]
    user = _user(seen)
    ranked = _ranked(*seen[:9], "n1", *seen[9:], "n2", "n3", "n4")
    out = admissible(ranked, user, _catalog(), 10, new_share=0.3)
    assert _ids(out) == [*seen[:7], "n1", "n2", "n3"]
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)  # still in the ranking's order, scores kept


def test_new_items_already_in_the_top_k_count_towards_the_share() -> None:
    user = _user(["s1", "s2", "s3", "s4"])
    ranked = _ranked("n1", "s1", "n2", "s2", "n3", "s3", "s4", "n4")
    out = admissible(ranked, user, _catalog(), 5, new_share=0.4)
    assert _ids(out) == ["n1", "s1", "n2", "s2", "n3"]


def test_fewer_new_candidates_than_the_share_fill_what_they_can() -> None:
    user = _user(["s1", "s2", "s3", "s4", "s5"])
    ranked = _ranked("s1", "s2", "s3", "s4", "s5", "n1")
    assert _ids(admissible(ranked, user, _catalog(), 5, new_share=0.6)) == ["s1", "s2", "s3", "s4", "n1"]
    only_seen = _ranked("s1", "s2", "s3")
    assert _ids(admissible(only_seen, user, _catalog(), 5, new_share=0.6)) == ["s1", "s2", "s3"]


def test_the_new_items_obey_the_business_filter_too() -> None:
    user = _user(["s1", "s2", "s3"], bought=("b1",))
    ranked = _ranked("s1", "s2", "s3", "b1", "gone", "n1", "n1", "n2")
    out = admissible(ranked, user, _catalog(out_of_stock=("gone",)), 3, new_share=0.5)
    assert _ids(out) == ["s1", "n1", "n2"]


def test_a_user_without_history_gets_the_plain_ranking() -> None:
    ranked = _ranked(*(f"i{n}" for n in range(20)))
    assert admissible(ranked, UserState(), _catalog(), 10, new_share=0.3) == ranked[:10]


def test_reads_no_further_than_it_needs() -> None:
    user = _user(["s1", "s2"])

    def ranked():  # a generator: the filter stops consuming once the share is met
        yield from _ranked("s1", "n1", "s2", "n2")
        raise AssertionError("read past the candidates needed")

    assert _ids(admissible(ranked(), user, _catalog(), 3, new_share=0.3)) == ["s1", "n1", "s2"]


@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_walk_chooses_what_admissible_chooses(seed: int) -> None:
    """Over random pools (repeated items, tied, filtered and NaN scores, items out of stock, bought,
    touched or unknown to the catalog), every share and k: the same items, in the same order."""
    rng = np.random.default_rng(seed)
    names = [f"i{n}" for n in range(60)]
    catalog = _catalog(out_of_stock=tuple(names[::7]))
    for name in names[1::3]:
        state = ItemState()
        state.apply_catalog("c", "", None, True, 1.0)
        catalog.upsert(name, state)
    for _ in range(50):
        user = _user(list(rng.choice(names, rng.integers(0, 30))), bought=tuple(rng.choice(names, rng.integers(0, 4))))
        pool = list(rng.choice(names, rng.integers(0, 80)))
        scores = rng.choice([0.1, 0.2, 0.3, 0.5, 0.9, -np.inf, np.nan], len(pool)).astype(
            rng.choice([np.float32, np.float64])
        )
        ids = catalog.item_ids.of(pool, len(pool))
        ranking = [(pool[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")]
        for share, k, filtered in [(0.0, 10, False), (0.3, 10, True), (0.5, 4, False), (1.0, 3, True), (0.3, 0, False)]:
            ranked = [p for p in ranking if p[1] != -np.inf] if filtered else ranking
            expected = admissible(ranked, user, catalog, k, new_share=share)
            at = admissible_at(ids, scores, user, catalog, k, new_share=share, filtered=filtered)
            assert [(pool[p], repr(float(scores[p]))) for p in at] == [(i, repr(s)) for i, s in expected]  # NaN
