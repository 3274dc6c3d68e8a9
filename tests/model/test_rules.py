"""Merchandising rules on ranked lists: each kind, their time windows and segments, and properties
that hold for any rules (nothing bought, out of stock, filtered or repeated is ever shown)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.candidates import admissible
from model.rules import Demotion, Rule, RuleBook, RulePlan, Segment, rerank
from model.rules import ruled as ruled_ranked
from state.catalog import Catalog
from state.item import ItemState
from state.user import UserState

ITEMS = [f"i{n}" for n in range(30)]
OUT_OF_STOCK = {"i3", "i17"}


def _catalog() -> Catalog:
    catalog = Catalog(3600.0, refresh_s=0.0)
    for n, item_id in enumerate(ITEMS):
        state = ItemState()
        state.apply_catalog(f"c{n % 3}", "", None, item_id not in OUT_OF_STOCK, 1.0)
        catalog.upsert(item_id, state)
    return catalog


CATALOG = _catalog()
RANKED = [(item_id, 1.0 - n / 100) for n, item_id in enumerate(ITEMS)]


def ruled(plan: RulePlan | None, ranked: list[tuple[str, float]], user: UserState, catalog: Catalog, k: int):
    """The rules as serving applies them: rescored, ranked again, then chosen and placed."""
    return ruled_ranked(plan, rerank(plan, ranked, catalog.category_of) if plan else ranked, user, catalog, k)


def _user(bought: tuple[str, ...] = ()) -> UserState:
    user = UserState()
    user.bought = list(bought)
    return user


def _ids(items: list[tuple[str, float]]) -> list[str]:
    return [i for i, _ in items]


def test_no_plan_is_admissible() -> None:
    user = _user(("i0",))
    assert ruled(None, RANKED, user, CATALOG, 10) == admissible(RANKED, user, CATALOG, 10)


def test_filter_by_category_and_items() -> None:
    by_category = _ids(ruled(RulePlan([Rule("f", "filter", category="c0")]), RANKED, _user(), CATALOG, 10))
    assert by_category and all(CATALOG.category_of(i) != "c0" for i in by_category)
    by_items = _ids(ruled(RulePlan([Rule("f", "filter", item_ids=("i1", "i2"))]), RANKED, _user(), CATALOG, 10))
    assert by_items[:3] == ["i0", "i4", "i5"]


def test_boost_reorders_by_multiplied_score() -> None:
    items = ruled(RulePlan([Rule("b", "boost", category="c2", factor=2.0)]), RANKED, _user(), CATALOG, 5)
    assert _ids(items) == ["i2", "i5", "i8", "i11", "i14"]
    assert items[0][1] == (1.0 - 2 / 100) * 2.0
    weak = ruled(RulePlan([Rule("b", "boost", item_ids=("i0",), factor=0.5)]), RANKED, _user(), CATALOG, 3)
    assert _ids(weak) == ["i1", "i2", "i4"]


def test_pin_puts_an_item_at_its_position_with_its_score() -> None:
    items = ruled(RulePlan([Rule("p", "pin", item_ids=("i20",), position=2)]), RANKED, _user(), CATALOG, 5)
    assert _ids(items) == ["i0", "i20", "i1", "i2", "i4"]
    assert items[1][1] == 1.0 - 20 / 100
    unknown = ruled(RulePlan([Rule("p", "pin", item_ids=("new",), position=9)]), RANKED, _user(), CATALOG, 3)
    assert _ids(unknown) == ["i0", "i1", "i2"]  # beyond the list: not shown
    last = ruled(RulePlan([Rule("p", "pin", item_ids=("new",), position=9)]), RANKED[:2], _user(), CATALOG, 10)
    assert last == [("i0", 1.0), ("i1", 0.99), ("new", 0.0)]  # shorter list: last, unscored


def test_the_smaller_id_wins_a_position() -> None:
    plan = RulePlan([Rule("b", "pin", item_ids=("i20",), position=1), Rule("a", "pin", item_ids=("i21",), position=1)])
    assert _ids(ruled(plan, RANKED, _user(), CATALOG, 3)) == ["i21", "i20", "i0"]


def test_promote_reserves_slots_best_scored_first() -> None:
    plan = RulePlan([Rule("pr", "promote", item_ids=("i29", "i25", "i2", "i27"), slots=3)])
    items = _ids(ruled(plan, RANKED, _user(), CATALOG, 6))
    # i2 is in the top 6 already; i25 and i27 (better scored than i29) take the last places.
    assert items == ["i0", "i1", "i2", "i4", "i25", "i27"]


def test_bought_out_of_stock_and_filtered_items_are_never_placed() -> None:
    plan = RulePlan(
        [
            Rule("p1", "pin", item_ids=("i3",), position=1),  # out of stock
            Rule("p2", "pin", item_ids=("i5",), position=1),  # bought
            Rule("p3", "pin", item_ids=("i6",), position=1),  # filtered
            Rule("f", "filter", item_ids=("i6",)),
            Rule("pr", "promote", item_ids=("i17", "i5", "i6"), slots=3),
        ]
    )
    assert _ids(ruled(plan, RANKED, _user(("i5",)), CATALOG, 4)) == ["i0", "i1", "i2", "i4"]


def test_time_window_and_segments_choose_the_users() -> None:
    book = RuleBook()
    book.put(Rule("later", "filter", item_ids=("i0",), start_ts=100.0))
    book.put(Rule("ended", "filter", item_ids=("i1",), end_ts=50.0))
    book.put(Rule("vip", "filter", item_ids=("i2",), segment=Segment(user_ids=frozenset({"u1"}))))
    book.put(Rule("shoes", "filter", item_ids=("i4",), segment=Segment(interest="shoes")))
    shoe_fan = UserState()
    shoe_fan.apply_click("x", "buy", 60.0, "shoes", 3600.0)
    plans = book.plans(["u1", "u2", "u3"], [UserState(), shoe_fan, UserState()], 60.0, 3600.0)
    assert plans is not None
    assert [p.filters[0].rule_id if p else None for p in plans] == ["vip", "shoes", None]
    late = book.plans(["u3"], [UserState()], 200.0, 3600.0)
    assert late is not None and late[0] is not None and [r.rule_id for r in late[0].filters] == ["later"]
    book.delete("later")
    assert book.plans(["u3"], [UserState()], 200.0, 3600.0) == [None]
    for rule_id in ("ended", "vip", "shoes"):
        book.delete(rule_id)
    assert len(book) == 0 and book.plans(["u1"], [UserState()], 60.0, 3600.0) is None


def test_reasons_name_the_rules_that_acted() -> None:
    plan = RulePlan(
        [
            Rule("b", "boost", category="c1", factor=2.0),
            Rule("p", "pin", item_ids=("i1",), position=1),
            Rule("f", "filter", item_ids=("i9",)),
        ]
    )
    assert plan.reasons("i1", "c1") == ["rule:b", "rule:p"]
    assert plan.reasons("i0", "c0") == []


_item = st.sampled_from([*ITEMS, "unknown"])
_rule = st.one_of(
    st.builds(lambda i, p: Rule("p", "pin", item_ids=(i,), position=p), _item, st.integers(1, 15)),
    st.builds(lambda c: Rule("f", "filter", category=c), st.sampled_from(["c0", "c1", "c2", "cx"])),
    st.builds(lambda ids: Rule("f", "filter", item_ids=tuple(ids)), st.lists(_item, min_size=1, max_size=5)),
    st.builds(
        lambda c, f: Rule("b", "boost", category=c, factor=f),
        st.sampled_from(["c0", "c1", "c2"]),
        st.floats(0.01, 100.0),
    ),
    st.builds(
        lambda ids, n: Rule("pr", "promote", item_ids=tuple(ids), slots=n),
        st.lists(_item, min_size=1, max_size=6),
        st.integers(1, 12),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(_rule, min_size=1, max_size=6),
    bought=st.lists(st.sampled_from(ITEMS), max_size=8),
    k=st.integers(1, 12),
    depth=st.integers(0, 30),
)
def test_any_rules_keep_the_exclusions(rules: list[Rule], bought: list[str], k: int, depth: int) -> None:
    plan = RulePlan(rules)
    user = _user(tuple(bought))
    items = _ids(ruled(plan, RANKED[:depth], user, CATALOG, k))
    assert len(items) <= k and len(items) == len(set(items))
    assert not set(items) & (set(bought) | OUT_OF_STOCK)
    assert not any(plan.excluded(i, CATALOG.category_of(i)) for i in items)
    eligible = [i for i, _ in RANKED[:depth] if i not in bought and i not in OUT_OF_STOCK]
    if not any(plan.excluded(i, CATALOG.category_of(i)) for i in eligible):
        assert len(items) >= min(k, len(eligible))  # rules never leave places empty


@settings(max_examples=200, deadline=None)
@given(item=_item, position=st.integers(1, 15), k=st.integers(1, 12), depth=st.integers(0, 30))
def test_an_eligible_pin_takes_its_position(item: str, position: int, k: int, depth: int) -> None:
    items = _ids(
        ruled(RulePlan([Rule("p", "pin", item_ids=(item,), position=position)]), RANKED[:depth], _user(), CATALOG, k)
    )
    if item in OUT_OF_STOCK:
        assert item not in items
    elif position <= k:
        assert items.index(item) == min(position, len(items)) - 1


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(_item, min_size=1, max_size=8, unique=True), slots=st.integers(1, 12), k=st.integers(1, 12))
def test_a_promote_fills_its_slots(ids: list[str], slots: int, k: int) -> None:
    items = _ids(
        ruled(RulePlan([Rule("pr", "promote", item_ids=tuple(ids), slots=slots)]), RANKED, _user(), CATALOG, k)
    )
    eligible = [i for i in ids if i not in OUT_OF_STOCK]
    assert len(set(items) & set(eligible)) >= min(slots, len(eligible), k)
    assert len(items) == k


def test_the_share_of_new_items_is_filled_from_what_the_rules_admit() -> None:
    user = _user()
    for n in range(10):
        user.apply_click(f"i{n}", "view", float(n), f"c{n % 3}", 3600.0)
    plan = RulePlan([Rule("f", "filter", category="c1")])
    items = ruled_ranked(plan, rerank(plan, RANKED, CATALOG.category_of), user, CATALOG, 5, new_share=0.4)
    assert _ids(items) == ["i0", "i2", "i5", "i11", "i12"]  # i10 is filtered, i3 out of stock
    assert _ids(ruled_ranked(None, RANKED, user, CATALOG, 5, new_share=0.4)) == ["i0", "i1", "i2", "i10", "i11"]


def test_feedback_makes_a_plan_for_its_user_alone() -> None:
    book = RuleBook(Demotion(factor=0.5, near_ttl_s=100.0, impression_limit=2))
    quiet, picky = _user(), _user()
    assert book.plans(["q", "p"], [quiet, picky], 0.0, 3600.0) is None  # no rule, no feedback
    picky.feedback.dislike("i0", 0.0, ["i1"])
    for _ in range(2):
        picky.feedback.show(["i2"])
    plans = book.plans(["q", "p"], [quiet, picky], 50.0, 3600.0)
    assert plans is not None and plans[0] is None
    plan = plans[1]
    assert plan is not None and plan.demoted == {"i1": "disliked", "i2": "ignored"}
    chosen = ruled(plan, RANKED, picky, CATALOG, 5)
    # i0 removed; i1 (0.99 -> 0.495) and i2 (0.98 -> 0.49) fall below the rest of the top 5.
    assert _ids(chosen) == ["i4", "i5", "i6", "i7", "i8"]
    assert plan.reasons("i1", "c1") == ["demoted:disliked"]
    pinned = RulePlan([Rule("p", "pin", item_ids=("i0",), position=1)], removed={"i0"})
    assert pinned.place([], {}, set, CATALOG.category_of, 3) == []  # a dislike wins over a pin
    later = book.plans(["p"], [picky], 200.0, 3600.0)  # the neighbour's time is over
    assert later is not None and later[0] is not None and later[0].demoted == {"i2": "ignored"}


def test_feedback_joins_the_rules_in_force() -> None:
    book = RuleBook()
    book.put(Rule("b", "boost", item_ids=("i5",), factor=10.0))
    user = _user()
    user.feedback.dislike("i5", 0.0, [])
    [plan] = book.plans(["u"], [user], 1.0, 3600.0) or [None]
    assert plan is not None and "i5" not in _ids(ruled(plan, RANKED, user, CATALOG, 10))
    [shared] = book.plans(["v"], [_user()], 1.0, 3600.0) or [None]
    assert shared is not None and _ids(ruled(shared, RANKED, _user(), CATALOG, 1)) == ["i5"]


def test_demotion_settings_are_checked() -> None:
    for bad in ({"factor": 0.0}, {"factor": 1.5}, {"near_ttl_s": -1.0}, {"impression_limit": -1}):
        with pytest.raises(ValueError):
            Demotion(**bad)  # type: ignore[arg-type]
