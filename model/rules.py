"""Merchandising rules: pin, filter, boost and promote, applied to a user's ranked candidates.

A shop's merchandisers publish rules (``shopguide.rules``, validated by ``streams.events.parse_rule``);
every worker keeps them in a :class:`RuleBook`. Per user and batch the book gives the
:class:`RulePlan` of the rules in force for that user (time window and segment), and serving applies
it around :func:`model.candidates.admissible`: filters and boosts change the ranked list before it,
pins and promotes place items in the chosen list after it. Items the user bought or that are out of
stock stay excluded whatever a rule says (injected items pass ``admissible`` too), and a filter
wins over a pin or a promote of the same item. With no rule in force, nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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


class RuleBook:
    """The rules in force on this worker, by id: the latest record of each key of the rules topic."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def __len__(self) -> int:
        return len(self._rules)

    def put(self, rule: Rule) -> None:
        self._rules[rule.rule_id] = rule

    def delete(self, rule_id: str) -> None:
        self._rules.pop(rule_id, None)

    def rules(self) -> list[Rule]:
        return [self._rules[k] for k in sorted(self._rules)]

    def plans(
        self, user_ids: Sequence[str], users: Sequence[UserState], now: float, half_life_s: float
    ) -> list[RulePlan | None] | None:
        """Each user's plan (None for a user no rule is for), or None when no rule is in force."""
        live = [r for r in self.rules() if r.in_force(now)]
        if not live:
            return None
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
            out.append(RulePlan(mine) if mine else None)
        return out


class RulePlan:
    """The rules in force for one user (ties between pins of one position and overlapping
    promotes go to the smaller rule id). Filters and boosts are folded into lookups by item
    and by category, so that a candidate costs a dictionary lookup or two."""

    __slots__ = (
        "_boost_categories",
        "_boost_items",
        "_filter_categories",
        "_filter_items",
        "boosts",
        "filters",
        "pins",
        "promotes",
    )

    def __init__(self, rules: Iterable[Rule]) -> None:
        rules = list(rules)
        self.filters = [r for r in rules if r.kind == "filter"]
        self.boosts = [r for r in rules if r.kind == "boost"]
        # Applied by position, and at one position the smaller id last: it ends up on top.
        self.pins = sorted((r for r in rules if r.kind == "pin"), key=lambda r: r.rule_id, reverse=True)
        self.pins.sort(key=lambda r: r.position)
        self.promotes = [r for r in rules if r.kind == "promote"]
        self._filter_items = {i for f in self.filters for i in f.item_ids}
        self._filter_categories = {f.category for f in self.filters if f.category is not None}
        self._boost_items: dict[str, float] = {}
        self._boost_categories: dict[str, float] = {}
        for b in self.boosts:
            for key, table in ((b.category, self._boost_categories), *((i, self._boost_items) for i in b.item_ids)):
                if key is not None:
                    table[key] = table.get(key, 1.0) * b.factor

    def excluded(self, item_id: str, category: str) -> bool:
        return item_id in self._filter_items or category in self._filter_categories

    def rerank(
        self, ranked: Sequence[tuple[str, float]], category_of: Callable[[str], str]
    ) -> Iterable[tuple[str, float]]:
        """The ranked list without filtered items, boosted scores multiplied by their factors (all
        the boosts that match), in descending score order (ties keep their order). Without
        boosts, lazily: ``admissible`` reads only as far as it needs."""
        drop, drop_categories = self._filter_items, self._filter_categories
        by_item, by_category = self._boost_items, self._boost_categories
        if not by_item and not by_category:
            if not drop_categories:
                return (p for p in ranked if p[0] not in drop)
            return (p for p in ranked if p[0] not in drop and category_of(p[0]) not in drop_categories)
        out = []
        for item_id, score in ranked:
            if item_id in drop:
                continue
            if by_category or drop_categories:
                category = category_of(item_id)
                if category in drop_categories:
                    continue
                score *= by_category.get(category, 1.0)
            out.append((item_id, score * by_item.get(item_id, 1.0)))
        out.sort(key=lambda p: -p[1])
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
        """``rule:<rule_id>`` of each rule that boosted, promoted or pinned the item."""
        return [
            f"rule:{r.rule_id}"
            for r in (*self.boosts, *self.promotes, *self.pins)
            if (r.kind == "boost" and r.matches(item_id, category)) or (r.kind != "boost" and item_id in r.item_ids)
        ]


def ruled(
    plan: RulePlan | None, ranked: Sequence[tuple[str, float]], user: UserState, catalog: Catalog, k: int
) -> list[tuple[str, float]]:
    """The user's top ``k`` of ``ranked`` (best first): :func:`admissible`, with a ``plan``'s
    filters and boosts applied before it and its pins and promotes after it, on items it admits."""
    if plan is None:
        return admissible(ranked, user, catalog, k)
    if not plan.promotes and not plan.pins:
        return admissible(plan.rerank(ranked, catalog.category_of), user, catalog, k)
    reranked = list(plan.rerank(ranked, catalog.category_of))
    chosen = admissible(reranked, user, catalog, k)

    def eligible(ids: list[str]) -> set[str]:
        return {i for i, _ in admissible(((i, 0.0) for i in ids), user, catalog, len(ids))}

    wanted = {i for r in (*plan.promotes, *plan.pins) for i in r.item_ids}
    return plan.place(chosen, {i: s for i, s in reranked if i in wanted}, eligible, catalog.category_of, k)
