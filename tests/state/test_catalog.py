import heapq
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from state.catalog import FRESH_KEPT, Catalog, top
from state.item import ItemState
from state.user import action_weights

HL = 3600.0


def item(category: str, views: float, ts: float = 1000.0, in_stock: bool = True) -> ItemState:
    s = ItemState()
    s.apply_catalog(category, "", None, in_stock, ts)
    if views:
        s.apply_activity({"view": views}, ts, HL)
    return s


def test_popular_orders_by_decayed_activity_across_times():
    now = [0.0]
    c = Catalog(HL, refresh_s=0.0, clock=lambda: now[0])
    c.upsert("old-hit", item("a", 100.0, ts=1000.0))
    c.upsert("fresh", item("a", 30.0, ts=1000.0 + 2 * HL))  # 100 decayed by 2 half-lives = 25
    c.upsert("quiet", item("a", 1.0))
    assert c.popular(3, "a") == ["fresh", "old-hit", "quiet"]


def test_out_of_stock_items_are_never_popular_and_unknown_items_are_available():
    c = Catalog(HL, refresh_s=0.0)
    c.upsert("gone", item("a", 50.0, in_stock=False))
    c.upsert("here", item("a", 1.0))
    assert c.popular(5, "a") == ["here"]
    assert not c.available("gone")
    assert c.available("never-heard-of")


def test_category_change_moves_the_item():
    c = Catalog(HL, refresh_s=0.0)
    c.upsert("x", item("a", 5.0))
    c.upsert("x", item("b", 5.0))
    assert c.popular(5, "a") == []
    assert c.popular(5, "b") == ["x"]
    assert c.category_of("x") == "b"


def test_rankings_are_cached_between_refreshes():
    now = [0.0]
    c = Catalog(HL, refresh_s=1.0, clock=lambda: now[0])
    c.upsert("x", item("a", 5.0))
    assert c.popular(5) == ["x"]
    c.upsert("y", item("a", 50.0))
    assert c.popular(5) == ["x"]  # within the refresh interval
    now[0] = 2.0
    assert c.popular(5) == ["y", "x"]
    c.remove("y")
    now[0] = 4.0
    assert c.popular(5) == ["x"]


def test_categories_stay_the_same_object_until_a_category_appears_or_empties():
    c = Catalog(HL)
    c.upsert("x", item("a", 1.0))
    first = c.categories()
    assert first == ("a",)
    c.upsert("x", item("a", 5.0))  # activity only: serving keeps what it derived from the set
    c.upsert("y", item("a", 1.0))
    assert c.categories() is first
    c.upsert("z", item("b", 1.0))
    assert c.categories() == ("a", "b")
    c.upsert("z", item("a", 1.0))  # b empties
    assert c.categories() == ("a",)
    c.remove("x")
    c.remove("y")
    c.remove("z")
    assert c.categories() == ()


def test_a_bump_counts_a_click_at_once_and_a_staler_table_state_does_not_undo_it():
    c = Catalog(HL, refresh_s=0.0)
    c.upsert("a", item("shoes", 3.0))
    c.upsert("b", item("shoes", 2.0))
    for _ in range(2):
        c.bump("b", "shoes", "view", 1000.0)
    assert c.popular(2, "shoes") == ["b", "a"]  # 4 views against 3
    c.upsert("b", item("shoes", 2.0))  # the item table has not seen the two clicks yet
    assert c.popular(2, "shoes") == ["b", "a"]
    c.upsert("a", item("shoes", 9.0))  # newer activity from elsewhere raises it as usual
    assert c.popular(2, "shoes") == ["a", "b"]


def test_a_bump_adds_a_weighted_click_as_the_item_table_would():
    c, table = Catalog(HL), Catalog(HL)
    state = item("bags", 0.0)
    c.upsert("x", state)
    table.upsert("x", state)
    for action, ts in (("view", 1000.0), ("buy", 1000.0 + HL), ("cart", 1000.0 + HL / 2)):
        c.bump("x", "bags", action, ts)
        state.apply_activity({action: 1.0}, ts, HL)
    table.upsert("x", state)
    assert c.get("x").pop_log == pytest.approx(table.get("x").pop_log)


def test_configured_action_weights_rank_popularity_from_the_table_and_from_bumps():
    default = Catalog(HL, refresh_s=0.0)
    custom = Catalog(HL, refresh_s=0.0, action_weights=action_weights("view=1,buy=50"))
    for c in (default, custom):
        bought = item("a", 0.0)
        bought.apply_activity({"buy": 1.0}, 1000.0, HL)
        c.upsert("viewed", item("a", 20.0))
        c.upsert("bought", bought)
        c.bump("bumped", "a", "buy", 999.0)
    assert default.popular(3, "a") == ["viewed", "bought", "bumped"]  # 20 views outweigh a buy (5)
    assert custom.popular(3, "a") == ["bought", "bumped", "viewed"]  # a buy (50) outweighs 20 views


def test_a_bump_of_an_unknown_item_makes_it_popular_in_the_clicks_category():
    c = Catalog(HL, refresh_s=0.0)
    c.bump("new", "tea", "click", 1000.0)
    assert c.popular(1, "tea") == ["new"] and c.category_of("new") == "tea"


def test_ties_rank_the_same_in_every_process():
    """Popularity ties (every new item) must not be broken by string hashing, which changes with
    each process's hash seed: the offline replays must be deterministic under their seed."""
    script = (
        "from state.catalog import Catalog\n"
        "from state.item import ItemState\n"
        "c = Catalog(3600.0, refresh_s=0.0, clock=lambda: 0.0)\n"
        "for n in range(60):\n"
        "    s = ItemState()\n"
        "    s.apply_catalog('a', '', None, True, 1000.0)\n"
        "    c.upsert(f'item-{n}', s)\n"
        "print(c.popular(20, 'a'), c.popular(20))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outputs) == 1, outputs


def test_the_per_id_arrays_follow_upserts_bumps_and_removals():
    """Retrieval's kernel reads the catalog through its per-id arrays: they must say what the
    entries say after every kind of change, also for ids assigned elsewhere (the co-visitation
    index shares the id space)."""
    c = Catalog(HL, refresh_s=0.0, clock=lambda: 0.0)
    c.upsert("a", item("x", 3.0))
    c.upsert("b", item("y", 1.0, in_stock=False))
    c.bump("c", "z", "buy", 1000.0)  # an item only clicked so far
    c.bump("a", "x", "view", 1000.0)
    elsewhere = c.item_ids["seen-by-the-index"]
    c.upsert("b", item("x", 1.0))  # moves category
    c.remove("c")

    def as_arrays(item_id: str) -> tuple[bool, bool, float, str]:
        a, i = c.arrays, c.item_ids[item_id]
        return bool(a.present[i]), bool(a.in_stock[i]), float(a.pop_log[i]), c.category_ids.names[a.category[i]]

    for item_id in ("a", "b"):
        entry = c.get(item_id)
        assert entry is not None
        assert as_arrays(item_id) == (True, entry.in_stock, entry.pop_log, entry.category)
    assert as_arrays("c") == (False, False, float("-inf"), "")
    assert not c.arrays.present[elsewhere]
    assert [c.item_ids.names[i] for i in c.popular_ids(5)] == c.popular(5) == ["a", "b"]
    assert [c.item_ids.names[i] for i in c.popular_ids(1, "x")] == c.popular(1, "x")


def test_fresh_items_are_the_latest_arrivals_with_few_engagements_per_category():
    c = Catalog(HL, fresh_below=3)
    c.upsert("new", item("a", 0.0))
    c.upsert("known", item("a", 10.0))  # the item table counted it before: not fresh
    c.bump("clicked-once", "a", "view", 1000.0)  # first seen in a click: one engagement
    c.upsert("moved", item("b", 0.0))
    assert list(c.fresh("a")) == ["new", "clicked-once"] and list(c.fresh("b")) == ["moved"]
    c.upsert("moved", item("a", 0.0, ts=2000.0))
    assert list(c.fresh("a")) == ["new", "clicked-once", "moved"] and list(c.fresh("b")) == []
    c.bump("clicked-once", "a", "view", 1001.0)
    c.upsert("clicked-once", item("a", 1.0))  # the table's older count does not lower it
    assert "clicked-once" in c.fresh("a")
    c.bump("clicked-once", "a", "click", 1002.0)  # the third engagement
    c.remove("new")
    assert list(c.fresh("a")) == ["moved"] and c.arrays.engagements[c.item_ids["clicked-once"]] == 3.0
    c.upsert("clicked-once", item("a", 0.0))  # engaged enough once: not fresh again
    assert list(c.fresh("a")) == ["moved"] and list(c.fresh("nowhere")) == []


def test_a_category_keeps_its_latest_fresh_arrivals_only():
    c = Catalog(HL)
    for n in range(FRESH_KEPT + 5):
        c.upsert(f"i{n}", item("a", 0.0))
    assert list(c.fresh("a")) == [f"i{n}" for n in range(5, FRESH_KEPT + 5)]


@pytest.mark.parametrize("seed", range(4))
def test_rankings_are_heapq_nlargest_ties_included_over_random_catalogs(seed: int) -> None:
    """Upserts (category moves, stock changes), bumps on known and unknown items, removals and
    re-arrivals, with popularity on a coarse grid so that many items tie (and many never had any:
    -inf): every category's ranking is ``heapq.nlargest``'s over its items in insertion order."""
    rng = random.Random(seed)
    c = Catalog(HL, refresh_s=0.0, clock=lambda: 0.0)

    def pop_log(item_id: str) -> float:
        return c.entries[item_id].pop_log

    categories = ["a", "b", "c", ""]
    names = [f"i{k}" for k in range(120)]
    for step in range(1_500):
        name, cat = rng.choice(names), rng.choice(categories)
        op = rng.random()
        if op < 0.4:
            c.upsert(name, item(cat, float(rng.choice([0, 0, 1, 2, 4])), in_stock=rng.random() > 0.2))
        elif op < 0.8:
            c.bump(name, cat, rng.choice(["view", "click", "buy"]), 1000.0 + rng.choice([0.0, HL]))
        else:
            c.remove(name)
        if step % 25 == 0:
            for key in categories[:3]:
                n = rng.choice([1, 7, 50, 200])
                members = c._by_category.get(key, {})
                ranked = heapq.nlargest(n, (i for i in members if c.entries[i].in_stock), key=pop_log)
                assert c.popular(n, key) == ranked
            ranked = heapq.nlargest(60, (i for i in c.entries if c.entries[i].in_stock), key=pop_log)
            assert c.popular(60) == ranked
            assert [c.item_ids.names[i] for i in c.popular_ids(60)] == ranked


def test_top_is_a_stable_descending_sort_cut_at_limit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        score = rng.choice([-np.inf, 0.0, 1.0, 2.5, 3.0], size=60)
        ids = rng.permutation(60)[:n].astype(np.int32)
        limit = int(rng.integers(1, 45))
        expected = heapq.nlargest(limit, ids.tolist(), key=score.__getitem__)
        assert top(ids, score, limit).tolist() == expected


def test_popular_lists_are_the_popular_ids_of_each_category_with_their_ranks():
    now = [0.0]
    c = Catalog(HL, refresh_s=1.0, clock=lambda: now[0])
    rng = random.Random(3)
    for n in range(300):
        c.upsert(f"i{n}", item(f"c{n % 7}", rng.randint(0, 40), in_stock=n % 11 != 0))
    for step in range(3):  # also after bumps, stale and refreshed
        wanted = ["c3", "c0", "nothing-here", "c5"]
        for n in (20, 70, 20, 5):  # heads shorter than asked for, and other lengths asked in turn
            overall, joined, ranks = c.popular_lists(wanted, n, 50)
            per = [c.popular_ids(n, cat) for cat in wanted]
            assert overall.tolist() == c.popular_ids(50).tolist()
            assert joined.tolist() == np.concatenate(per).tolist()
            assert ranks.tolist() == [r for p in per for r in range(len(p))]
            assert all(a.dtype == np.int32 and a.flags.c_contiguous for a in (overall, joined, ranks))
        for n in range(0, 300, 13):
            c.bump(f"i{n}", f"c{n % 7}", "buy", 1000.0 + step)
        now[0] += 0.6 * (step + 1)
    assert c.popular_lists([], 20, 50)[1].size == 0
