"""Merchandising rules: pin, filter, boost and promote, applied to a user's ranked candidates.

A shop's merchandisers publish rules (``shopguide.rules``, validated by ``streams.events.parse_rule``);
every worker keeps them in a :class:`RuleBook`. Per user and batch the book gives the
:class:`RulePlan` of the rules in force for that user (time window and segment), and serving applies
it around :func:`model.candidates.admissible`: filters and boosts change the candidates' scores
before ranking (:meth:`RulePlan.rescore`), pins and promotes place items in the chosen list after
it. Items the user bought or that are out of stock stay excluded whatever a rule says (placed items
pass ``admissible`` too), and a filter wins over a pin or a promote of the same item.

Over a pool of dense ids (``model.retrieval.RetrievedPool``) no candidate is named: filters and
boosts are factors looked up by item and category id in one compiled pass
(:meth:`RulePlan.rescore_ids`), and pins and promotes look up the scores of their few items only
(:func:`placed_at`). The name-based :meth:`RulePlan.rescore` and :func:`ruled` serve pools that
hold names, with the same results.

A shopper's own negative feedback (``state.feedback``) joins the plan as rules for that shopper
alone (:class:`Demotion`): a disliked item is filtered, its near neighbours and the items the
shopper keeps ignoring are boosted by a factor below 1. With no rule in force and no feedback,
nothing here runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from model import kernels
from model.candidates import admissible
from model.scratch import Scratch
from state.catalog import Catalog, DenseIds
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
    or two (over dense ids, an array lookup)."""

    __slots__ = (
        "_boost_categories",
        "_boost_items",
        "_categories",
        "_dense",
        "_filter_categories",
        "_filter_items",
        "_item_factors",
        "_placed",
        "_placed_list",
        "_promoting",
        "_why",
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
        if self.demoted:  # one factor for most demoted items: a C-level pass for them
            boosted = self._boost_items
            self._boost_items = boosted | dict.fromkeys(self.demoted, factor)
            for item_id in boosted.keys() & self.demoted.keys():
                self._boost_items[item_id] = boosted[item_id] * factor
        self._categories = self._filter_categories | self._boost_categories.keys()
        #: Each matched item's factor: 0 for a filtered one, else the product of its boosts.
        self._item_factors = self._boost_items | dict.fromkeys(self._filter_items, 0.0)
        #: What pins and promotes place: the promotes' items, then the pins' (in order); each once.
        promoted = [i for r in self.promotes for i in r.item_ids]
        self._placed_list = list(dict.fromkeys([*promoted, *(p.item_ids[0] for p in self.pins)]))
        self._placed = frozenset(self._placed_list)
        self._promoting = [(r, list(dict.fromkeys(r.item_ids))) for r in self.promotes]
        self._why: tuple[dict[str, list[tuple[int, str]]], dict[str, list[tuple[int, str]]]] | None = None
        self._dense: _Factors | None = None

    def excluded(self, item_id: str, category: str) -> bool:
        return item_id in self._filter_items or category in self._filter_categories

    def unasked(self, item_id: str, category: str) -> bool:
        """Whether the item may be shown without the ranking asking for it (exploration): not
        filtered, and not demoted by the user's feedback."""
        return not self.excluded(item_id, category) and item_id not in self.demoted

    def placed(self) -> frozenset[str]:
        """The items the plan's pins and promotes place."""
        return self._placed

    def rescore(self, items: Sequence[str], categories: Sequence[str], scores: np.ndarray) -> np.ndarray:
        """``scores`` of the candidates ``items`` (of ``categories``) with the filtered ones at
        -inf and the boosted ones multiplied by their factors (all the boosts that match): a new
        array, or ``scores`` itself when no filter or boost is in force."""
        drop_categories, by_category = self._filter_categories, self._boost_categories
        if not (self._categories or self._item_factors):
            return scores
        factors = np.ones(len(scores))
        if not self._categories.isdisjoint(categories):  # a C-level pass; the loop only on a match
            keys = self._categories
            for i in [i for i, c in enumerate(categories) if c in keys]:
                category = categories[i]
                factors[i] = 0.0 if category in drop_categories else by_category[category]
        factor_of = self._item_factors
        if not factor_of.keys().isdisjoint(items):
            hits = [i for i, item_id in enumerate(items) if item_id in factor_of]
            factors[hits] *= [factor_of[items[i]] for i in hits]  # one assignment for all the hits
        out = scores * factors
        out[factors == 0.0] = -np.inf
        return out

    def rescore_ids(
        self, ids: np.ndarray, categories: np.ndarray, scores: np.ndarray, item_ids: DenseIds, category_ids: DenseIds
    ) -> np.ndarray:
        """:meth:`rescore` of candidates given as dense ids (``item_ids``) of dense categories
        (``category_ids``), bit for bit: one compiled pass, no name read."""
        if not (self._categories or self._item_factors):
            return scores
        dense = self._dense
        if dense is None or not dense.covers(item_ids, category_ids):
            drop = self._filter_categories
            factors = {c: 0.0 if c in drop else self._boost_categories[c] for c in self._categories}
            dense = self._dense = _Factors(self._item_factors, factors, item_ids, category_ids)
        by_item, by_category = _BY_ITEM.at_least(len(item_ids.names)), _BY_CATEGORY.at_least(len(category_ids.names))
        rescored: np.ndarray = kernels.compiled().factors(ids, categories, scores, *dense.arrays, by_item, by_category)
        return rescored

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
        allowed = eligible([i for i in self._placed_list if not self.excluded(i, category_of(i))])
        out = list(chosen)
        promoted: set[str] = set()
        for rule, distinct in self._promoting:
            ids = [i for i in distinct if i in allowed and i not in promoted]
            ids.sort(key=lambda i: -scores.get(i, -math.inf))
            held = {i for i, _ in out}
            for item_id in ids[: rule.slots]:
                promoted.add(item_id)
                if item_id in held:
                    continue
                if len(out) >= k:  # the lowest-ranked item not promoted gives way
                    last = len(out) - 1
                    while last >= 0 and out[last][0] in promoted:
                        last -= 1
                    if last < 0:
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
        if item_id not in self._boost_items and item_id not in self._placed and category not in self._boost_categories:
            return []  # most items
        if self._why is None:
            self._why = self._reasons_by_key()
        by_item, by_category = self._why
        rules, more = by_item.get(item_id, []), by_category.get(category)
        if more:
            rules = sorted(rules + more)
        out = [why for _, why in rules]
        why = self.demoted.get(item_id)
        if why is not None:
            out.append(f"demoted:{why}")
        return out

    def _reasons_by_key(self) -> tuple[dict[str, list[tuple[int, str]]], dict[str, list[tuple[int, str]]]]:
        """The ``rule:`` reasons of the boosts, promotes and pins (each with its place among
        them) by the item they name, and of the boosts by category: :meth:`reasons`' lookups."""
        by_item: dict[str, list[tuple[int, str]]] = {}
        by_category: dict[str, list[tuple[int, str]]] = {}
        for n, r in enumerate((*self.boosts, *self.promotes, *self.pins)):
            why = (n, f"rule:{r.rule_id}")
            if r.kind == "boost" and r.category is not None:
                by_category.setdefault(r.category, []).append(why)
                continue
            for item_id in dict.fromkeys(r.item_ids):
                by_item.setdefault(item_id, []).append(why)
        return by_item, by_category


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
    return plan.place(chosen, dict(pairs), _eligible(user, catalog), catalog.category_of, k)


def _eligible(user: UserState, catalog: Catalog) -> Callable[[list[str]], set[str]]:
    """Which of some items may be shown to the user at all: not bought, not out of stock (what
    :func:`admissible` lets through)."""
    bought, available = user.bought, catalog.available
    return lambda ids: {i for i in ids if i not in bought and available(i)}


def placed_at(
    plan: RulePlan,
    chosen: Sequence[tuple[str, float]],
    ids: np.ndarray,
    scores: np.ndarray,
    user: UserState,
    catalog: Catalog,
    k: int,
) -> tuple[list[tuple[str, float]], dict[str, int]]:
    """:func:`ruled`'s placements over a pool of dense ids (``catalog.item_ids``, each held once,
    as retrieval returns them) ranked by ``scores``, ``chosen`` being its admitted top ``k``: the
    plan's pins and promotes placed (:meth:`RulePlan.place`), only their items' scores looked up;
    and each placed item's pool position (-1: the pool lacks it)."""
    wanted = plan._placed_list
    dense = np.fromiter(map(catalog.item_ids.get, wanted, repeat(-1)), np.int32, len(wanted))
    at = kernels.compiled().find(ids, dense)
    where = at.tolist()
    found = dict(zip(wanted, where, strict=True))
    ranked = {i: v for i, p, v in zip(wanted, where, scores.take(at).tolist(), strict=True) if p >= 0}
    return plan.place(chosen, ranked, _eligible(user, catalog), catalog.category_of, k), found


class _Factors:
    """A plan's filters and boosts over dense ids: the matched item ids and category ids with
    their factors (0: filtered), for :meth:`RulePlan.rescore_ids`. A name without an id yet has
    the id -1, matching no candidate: none can hold it until the id spaces grow (:meth:`covers`)."""

    __slots__ = ("arrays", "category_ids", "item_ids", "sizes")

    def __init__(
        self, items: dict[str, float], categories: dict[str, float], item_ids: DenseIds, category_ids: DenseIds
    ) -> None:
        self.item_ids, self.category_ids = item_ids, category_ids
        self.sizes = (len(item_ids.names), len(category_ids.names))
        self.arrays = (
            np.fromiter(map(item_ids.get, items, repeat(-1)), np.int32, len(items)),
            np.fromiter(items.values(), np.float64, len(items)),
            np.fromiter(map(category_ids.get, categories, repeat(-1)), np.int32, len(categories)),
            np.fromiter(categories.values(), np.float64, len(categories)),
        )

    def covers(self, item_ids: DenseIds, category_ids: DenseIds) -> bool:
        """Whether these are still the plan's lookups in these id spaces."""
        return (
            item_ids is self.item_ids
            and category_ids is self.category_ids
            and (
                self.sizes == (len(item_ids.names), len(category_ids.names))
                or not ((self.arrays[0] < 0).any() or (self.arrays[2] < 0).any())
            )
        )


#: Factors per item id and per category id for :func:`_factors`, 1.0 on entry and on return
#: (:mod:`model.scratch`).
_BY_ITEM = Scratch(np.float64, 1.0, 1024)
_BY_CATEGORY = Scratch(np.float64, 1.0, 256)


def _factors(
    ids: Any,
    categories: Any,
    scores: Any,
    item_keys: Any,
    item_factors: Any,
    category_keys: Any,
    category_factors: Any,
    by_item: Any,
    by_category: Any,
) -> Any:
    """``scores`` times each candidate's category factor times its item factor, -inf where that
    product is 0 (compiled by ``model.kernels.warm``): :meth:`RulePlan.rescore`'s arithmetic in
    its order. The keys' factors (a key -1: none) are set in the scratch arrays ``by_*`` and reset
    to 1.0."""
    for j in range(category_keys.shape[0]):
        if category_keys[j] >= 0:
            by_category[category_keys[j]] = category_factors[j]
    for j in range(item_keys.shape[0]):
        if item_keys[j] >= 0:
            by_item[item_keys[j]] = item_factors[j]
    out = np.empty(ids.shape[0])
    for i in range(ids.shape[0]):
        f = by_category[categories[i]] * by_item[ids[i]]
        out[i] = -np.inf if f == 0.0 else scores[i] * f
    for j in range(category_keys.shape[0]):
        if category_keys[j] >= 0:
            by_category[category_keys[j]] = 1.0
    for j in range(item_keys.shape[0]):
        if item_keys[j] >= 0:
            by_item[item_keys[j]] = 1.0
    return out


def _find(ids: Any, wanted: Any) -> Any:
    """The first position in ``ids`` of each of ``wanted`` (-1: absent; compiled by
    ``model.kernels.warm``)."""
    out = np.full(wanted.shape[0], -1, np.int64)
    for j in range(wanted.shape[0]):
        for i in range(ids.shape[0]):
            if ids[i] == wanted[j]:
                out[j] = i
                break
    return out


def warm_up() -> None:
    """Run the compiled calls once (``model.kernels.warm``)."""
    ids, ones = np.array([0, 1], np.int32), np.ones(2)
    for scores in (ones.astype(np.float32), ones):
        kernels.compiled().factors(ids, ids, scores, ids[:1], ones[:1], ids[1:], ones[:1], ones, ones.copy())
    kernels.compiled().find(ids, ids[1:])


def _unfiltered(ranked: Iterable[tuple[str, float]]) -> Iterator[tuple[str, float]]:
    """The candidates no filter dropped (a filter sets a score to -inf)."""
    return (p for p in ranked if p[1] != -math.inf)
