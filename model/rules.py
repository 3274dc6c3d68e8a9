"""Merchandising rules: pin, filter, boost and promote, applied to a user's ranked candidates.

A shop's merchandisers publish rules (``shopguide.rules``, validated by ``streams.events.parse_rule``);
every worker keeps them in a :class:`RuleBook`. Per user and batch the book gives the
:class:`RulePlan` of the rules in force for that user (time window and segment), and serving applies
it around :func:`model.candidates.admissible`: filters and boosts change the candidates' scores
before ranking (:meth:`RulePlan.rescore`), pins and promotes place items in the chosen list after
it. Items the user bought or that are out of stock stay excluded whatever a rule says (placed items
pass ``admissible`` too), and a filter wins over a pin or a promote of the same item.

A shopper's own negative feedback (``state.feedback``) joins the plan as rules for that shopper
alone (:class:`Demotion`): a disliked item is filtered, its near neighbours and the items the
shopper keeps ignoring are boosted by a factor below 1. With no rule in force and no feedback,
nothing here runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from model.candidates import admissible
from state.catalog import Catalog
from state.user import UserState

KINDS = ("boost", "filter", "pin", "promote")
#: A segment ``{"interest": c}`` holds the users with ``c`` among this many of their strongest
#: decayed interests.
SEGMENT_INTERESTS = 3


@dataclass(frozen=True, slots=True)
class Segment:
    """Whom a rule is for: users with an interest, or listed users (one of the two)."""

    interest: str | None = None
    user_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule. ``item_ids``: a pin's one item, a promote's items, or the items a
    filter or boost matches (else ``category``); ``position`` is 1-based."""

    rule_id: str
    kind: str
    item_ids: tuple[str, ...] = ()
    category: str | None = None
    position: int = 0
    factor: float = 1.0
    slots: int = 0
    start_ts: float | None = None
    end_ts: float | None = None
    segment: Segment | None = None

    def in_force(self, now: float) -> bool:
        return (self.start_ts is None or now >= self.start_ts) and (self.end_ts is None or now < self.end_ts)

    def matches(self, item_id: str, category: str) -> bool:
        """Whether a filter or boost covers the item."""
        return category == self.category if self.category is not None else item_id in self.item_ids


@dataclass(frozen=True, slots=True)
class Demotion:
    """How a shopper's negative feedback demotes items: a disliked item's near neighbours for
    ``near_ttl_s`` after the dislike, and an item after ``impression_limit`` impressions without
    an action (0: never), have their scores multiplied by ``factor`` (0 < factor <= 1)."""

    factor: float = 0.1
    near_ttl_s: float = 7 * 86_400.0
    impression_limit: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.factor <= 1.0:
            raise ValueError(f"the factor must be > 0 and <= 1, got {self.factor}")
        if not self.near_ttl_s >= 0 or self.impression_limit < 0:
            raise ValueError(f"the time and the limit must be >= 0, got {self.near_ttl_s}, {self.impression_limit}")


class RuleBook:
    """The rules in force on this worker, by id: the latest record of each key of the rules topic,
    and how shoppers' negative feedback demotes items."""

    def __init__(self, demotion: Demotion | None = None) -> None:
        self._rules: dict[str, Rule] = {}
        self.demotion = demotion if demotion is not None else Demotion()

    def __len__(self) -> int:
        return len(self._rules)

    def put(self, rule: Rule) -> None:
        self._rules[rule.rule_id] = rule

    def delete(self, rule_id: str) -> None:
        self._rules.pop(rule_id, None)

    def rules(self) -> list[Rule]:
        return [self._rules[k] for k in sorted(self._rules)]

    def plans(
        self,
        user_ids: Sequence[str],
        users: Sequence[UserState],
        now: float,
        half_life_s: float,
        *,
        shop_rules: bool = True,
    ) -> list[RulePlan | None] | None:
        """Each user's plan (None for a user no rule is for and without negative feedback), or
        None when no rule is in force and no user has feedback. Users under the same rules and
        without feedback share one plan. Without ``shop_rules`` (an experiment arm served without
        merchandising) only the users' own feedback acts."""
        live = [r for r in self.rules() if r.in_force(now)] if self._rules and shop_rules else []
        if not live and not any(u.feedback for u in users):
            return None
        d = self.demotion
        shared: dict[tuple[str, ...], RulePlan] = {}
        out: list[RulePlan | None] = []
        for user_id, user in zip(user_ids, users, strict=True):
            strongest: set[str] | None = None
            mine = []
            for rule in live:
                seg = rule.segment
                if seg is not None and seg.interest is not None:
                    if strongest is None:
                        strongest = {c for c, _ in user.interest_weights(now, half_life_s, SEGMENT_INTERESTS)}
                    if seg.interest not in strongest:
                        continue
                elif seg is not None and user_id not in seg.user_ids:
                    continue
                mine.append(rule)
            if user.feedback:
                removed, demoted = user.feedback.demotions(now, d.near_ttl_s, d.impression_limit)
                if removed or demoted:
                    out.append(RulePlan(mine, removed, demoted, d.factor))
                    continue
            key = tuple(r.rule_id for r in mine)
            if mine and key not in shared:
                shared[key] = RulePlan(mine)
            out.append(shared[key] if mine else None)
        return out


class RulePlan:
    """The rules in force for one user (ties between pins of one position and overlapping
    promotes go to the smaller rule id), with the user's negative feedback: ``removed`` items
    are filtered, ``demoted`` ones (item -> why) boosted by ``factor``. Filters and boosts are
    folded into lookups by item and by category, so that a candidate costs a dictionary lookup
    or two."""

    __slots__ = (
        "_boost_categories",
        "_boost_items",
        "_categories",
        "_filter_categories",
        "_filter_items",
        "_item_factors",
        "_items",
        "boosts",
        "demoted",
        "filters",
        "pins",
        "promotes",
    )

    def __init__(
        self,
        rules: Iterable[Rule],
        removed: Iterable[str] = (),
        demoted: dict[str, str] | None = None,
        factor: float = 1.0,
    ) -> None:
        rules = list(rules)
        self.filters = [r for r in rules if r.kind == "filter"]
        self.boosts = [r for r in rules if r.kind == "boost"]
        # Applied by position, and at one position the smaller id last: it ends up on top.
        self.pins = sorted((r for r in rules if r.kind == "pin"), key=lambda r: r.rule_id, reverse=True)
        self.pins.sort(key=lambda r: r.position)
        self.promotes = [r for r in rules if r.kind == "promote"]
        self.demoted = demoted if demoted is not None else {}
        self._filter_items = {i for f in self.filters for i in f.item_ids} | set(removed)
        self._filter_categories = {f.category for f in self.filters if f.category is not None}
        self._boost_items: dict[str, float] = {}
        self._boost_categories: dict[str, float] = {}
        for b in self.boosts:
            for key, table in ((b.category, self._boost_categories), *((i, self._boost_items) for i in b.item_ids)):
                if key is not None:
                    table[key] = table.get(key, 1.0) * b.factor
        for item_id in self.demoted:
            self._boost_items[item_id] = self._boost_items.get(item_id, 1.0) * factor
        self._categories = self._filter_categories | self._boost_categories.keys()
        self._items = self._filter_items | self._boost_items.keys()
        #: Each matched item's factor: 0 for a filtered one, else the product of its boosts.
        self._item_factors = self._boost_items | dict.fromkeys(self._filter_items, 0.0)

    def excluded(self, item_id: str, category: str) -> bool:
        return item_id in self._filter_items or category in self._filter_categories

    def unasked(self, item_id: str, category: str) -> bool:
        """Whether the item may be shown without the ranking asking for it (exploration): not
        filtered, and not demoted by the user's feedback."""
        return not self.excluded(item_id, category) and item_id not in self.demoted

    def placed(self) -> set[str]:
        """The items the plan's pins and promotes place."""
        return {i for r in (*self.pins, *self.promotes) for i in r.item_ids}

    def rescore(self, items: Sequence[str], categories: Sequence[str], scores: np.ndarray) -> np.ndarray:
        """``scores`` of the candidates ``items`` (of ``categories``) with the filtered ones at
        -inf and the boosted ones multiplied by their factors (all the boosts that match): a new
        array, or ``scores`` itself when no filter or boost is in force."""
        drop_categories, by_category = self._filter_categories, self._boost_categories
        if not (self._categories or self._items):
            return scores
        factors = np.ones(len(scores))
        if not self._categories.isdisjoint(categories):  # a C-level pass; the loop only on a match
            keys = self._categories
            for i in [i for i, c in enumerate(categories) if c in keys]:
                category = categories[i]
                factors[i] = 0.0 if category in drop_categories else by_category[category]
        if not self._items.isdisjoint(items):
            keys, factor_of = self._items, self._item_factors.__getitem__
            hits = [i for i, item_id in enumerate(items) if item_id in keys]
            factors[hits] *= [factor_of(items[i]) for i in hits]  # one assignment for all the hits
        out = scores * factors
        out[factors == 0.0] = -np.inf
        return out

    def place(
        self,
        chosen: Sequence[tuple[str, float]],
        scores: dict[str, float],
        eligible: Callable[[list[str]], set[str]],
        category_of: Callable[[str], str],
        k: int,
    ) -> list[tuple[str, float]]:
        """``chosen`` (admissible, at most ``k``) with promoted and pinned items placed. Each
        promote's eligible items, best scored first (unscored ones after, in the rule's order),
        take up to ``slots`` places in the top ``k``: those already in it stay, the others replace
        the lowest-ranked items not promoted. Then each pin puts its item at its position (or
        last, when the list is shorter). ``scores``: the ranked scores, shown for placed items
        (0.0 for an item retrieval did not score); ``eligible``: which of some items may be shown
        to the user at all."""
        wanted = [i for r in self.promotes for i in r.item_ids] + [p.item_ids[0] for p in self.pins]
        allowed = eligible([i for i in wanted if not self.excluded(i, category_of(i))])
        out = list(chosen)
        promoted: set[str] = set()
        for rule in self.promotes:
            ids = [i for i in dict.fromkeys(rule.item_ids) if i in allowed and i not in promoted]
            ids.sort(key=lambda i: -scores.get(i, float("-inf")))
            for item_id in ids[: rule.slots]:
                promoted.add(item_id)
                if any(i == item_id for i, _ in out):
                    continue
                if len(out) >= k:
                    last = max((n for n, (i, _) in enumerate(out) if i not in promoted), default=None)
                    if last is None:
                        break
                    del out[last]
                out.append((item_id, scores.get(item_id, 0.0)))
        for pin in self.pins:
            item_id = pin.item_ids[0]
            if item_id not in allowed:
                continue
            out = [p for p in out if p[0] != item_id]
            out.insert(min(pin.position - 1, len(out)), (item_id, scores.get(item_id, 0.0)))
        return out[:k]

    def reasons(self, item_id: str, category: str) -> list[str]:
        """``rule:<rule_id>`` of each rule that boosted, promoted or pinned the item, then
        ``demoted:disliked`` or ``demoted:ignored`` when the user's feedback lowered it."""
        out = [
            f"rule:{r.rule_id}"
            for r in (*self.boosts, *self.promotes, *self.pins)
            if (r.kind == "boost" and r.matches(item_id, category)) or (r.kind != "boost" and item_id in r.item_ids)
        ]
        why = self.demoted.get(item_id)
        if why is not None:
            out.append(f"demoted:{why}")
        return out


def rerank(
    plan: RulePlan, ranked: Sequence[tuple[str, float]], category_of: Callable[[str], str]
) -> list[tuple[str, float]]:
    """``ranked`` rescored by ``plan`` (:meth:`RulePlan.rescore`) and sorted again, best first
    (ties keep their order): for rankings built as lists rather than score arrays."""
    items = [i for i, _ in ranked]
    scores = plan.rescore(items, [category_of(i) for i in items], np.array([s for _, s in ranked], dtype=np.float64))
    order = np.argsort(-scores, kind="stable").tolist()
    values = scores.tolist()
    return [(items[i], values[i]) for i in order]


def ruled(
    plan: RulePlan | None,
    ranked: Iterable[tuple[str, float]],
    user: UserState,
    catalog: Catalog,
    k: int,
    *,
    new_share: float = 0.0,
) -> list[tuple[str, float]]:
    """The user's top ``k`` of ``ranked`` (best first, already rescored by ``plan``: filtered
    candidates at -inf): :func:`admissible` with its ``new_share`` of items new to the user, then
    the plan's pins and promotes placed on the items it admits (a shop's placements go first).
    ``ranked`` is read only as far as the top ``k`` needs, unless pins or promotes are placed."""
    if plan is None:
        return admissible(ranked, user, catalog, k, new_share=new_share)
    if not plan.promotes and not plan.pins:
        return admissible(_unfiltered(ranked), user, catalog, k, new_share=new_share)
    pairs = list(ranked)  # placed items show their ranked scores
    chosen = admissible(_unfiltered(pairs), user, catalog, k, new_share=new_share)

    def eligible(ids: list[str]) -> set[str]:
        return {i for i, _ in admissible(((i, 0.0) for i in ids), user, catalog, len(ids))}

    return plan.place(chosen, dict(pairs), eligible, catalog.category_of, k)


def _unfiltered(ranked: Iterable[tuple[str, float]]) -> Iterator[tuple[str, float]]:
    """The candidates no filter dropped (a filter sets a score to -inf)."""
    return (p for p in ranked if p[1] != -math.inf)
