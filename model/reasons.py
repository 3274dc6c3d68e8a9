"""Why an item was recommended, read from what retrieval already computed for it.

Each candidate's feature row (``model.candidate_features``) records how retrieval found it: in
the user's history, co-visited with the user's recent items, following them in other shoppers'
streams, in a category the user is interested in, popular in its category or in the shop. The
recommended items' rows are read once, after ranking, with the merchandising rules that placed or
boosted them: no second pass over the catalog. Only for the chosen items, two lookups name more:
which recent item a co-visited one comes from, and whether the co-purchase index pairs one with
an item the user bought (:class:`Origins`).

A batch's reasons are one compiled call (``_reasons``) over the pools retrieval returned together:
it reads the chosen rows, does both lookups and gives each item's reasons as one integer
(:func:`_codes`: which reasons hold, the source's and the category's ids); each code's list is
built once per process (:class:`_Lists`) and shared by every item that has it, not per click.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from model import covisitation, kernels
from model.candidate_features import FEATURE_INDEX
from model.covisitation import CovisIndex
from model.ranking import Ranking
from model.retrieval import CandidatePool, RetrievedPool, offsets_of
from model.rules import RulePlan
from state.user import UserState

_SEEN, _COVIS, _AFTER, _INTEREST, _IN_CATEGORY, _POPULAR = (
    FEATURE_INDEX[name] for name in ("seen", "covis", "after", "interest", "category_rank", "popularity_rank")
)
#: An item's code (:func:`_codes`): a bit per reason that holds, in the order they are listed, the
#: co-visited source's dense item id + 1 from bit :data:`_SOURCE` (0: not named) and, when
#: ``interest:`` or ``popular_in:`` holds, the category's dense id from bit :data:`_CATEGORY`.
_VIEWED, _COVISITED, _BOUGHT, _FOLLOWED, _INTEREST_BIT, _POPULAR_IN, _POPULAR_BIT = (1 << n for n in range(7))
_SOURCE, _CATEGORY = 7, 39
#: Category ids a code holds (the 24 bits above ``_CATEGORY``).
CATEGORIES_MAX = 1 << 24
#: The codes of an item with no feature row (no reason) and of an explored one.
_NO_ROW, _EXPLORED = 0, -1
#: Lists a process keeps at most per id space (then it forgets them all and builds them again).
LISTS_MAX = 1 << 16


@dataclass(frozen=True, slots=True)
class Origins:
    """Where the chosen items' sources are looked up: the co-visitation index retrieval read, with
    the bounds it read it with (``RetrievalConfig.covis_sources`` and ``covis_per_source``), and
    the co-purchase index (``model.related``)."""

    index: CovisIndex
    sources: int
    per_source: int
    purchases: CovisIndex | None = None


@dataclass(frozen=True, slots=True)
class Chosen:
    """One user's chosen items as their reasons read them: the pool they were chosen from and its
    ranking (which already walked past them), the rules' plan, the items exploration placed
    (``model.candidates.explore``: not the ranking or a rule) and the user (None: sources not named)."""

    pool: CandidatePool
    ranking: Ranking
    items: list[tuple[str, float]]
    plan: RulePlan | None = None
    explored: Collection[str] = ()
    user: UserState | None = None


def reasons(batch: Sequence[Chosen], origins: Origins | None = None) -> list[list[list[str]]]:
    """Per user of ``batch``, per chosen item: ``rule:<rule_id>`` of the rules that acted on it,
    ``demoted:*``, then ``viewed``, ``covisited:<item_id>`` (the user's recent item it is most
    co-visited with; plain ``covisited`` without the user or ``origins``), ``bought_together`` (a
    co-purchase neighbour of an item the user bought), ``followed`` (comes after the user's recent
    items), ``interest:<category>``, ``popular_in:<category>`` and ``popular``, those that hold;
    ``explore`` alone for the explored ones. The pools a kernel call retrieved together are read in
    one call. Items with the same reasons share one list: do not change them."""
    places = [c.ranking.positions([item_id for item_id, _ in c.items], c.explored) for c in batch]
    found: list[tuple[list[list[str]], list[str]]] = [([], [])] * len(batch)
    together: dict[int, tuple[list[int], list[int]]] = {}  # users and their pools' starts, by arrays
    for u, c in enumerate(batch):
        if isinstance(c.pool, RetrievedPool):
            ids, _, _, start = c.pool.stacked
            users, starts = together.setdefault(id(ids), ([], []))
            users.append(u)
            starts.append(start)
    for users, starts in together.values():
        first = batch[users[0]].pool
        assert isinstance(first, RetrievedPool)
        if origins is None or _shares_ids(first, origins):  # the same index for all of one call
            stacked = _stacked([batch[u] for u in users], [places[u] for u in users], starts, origins)
            for u, lists in zip(users, stacked, strict=True):
                found[u] = lists
        else:
            for u in users:
                found[u] = _by_name(batch[u], places[u], origins)
    for u, c in enumerate(batch):
        if not isinstance(c.pool, RetrievedPool):
            found[u] = _by_name(c, places[u], origins)
    for c, (whys, categories) in zip(batch, found, strict=True):
        plan = c.plan
        if plan is not None:  # its reasons first; an item not retrieved has the category ""
            for n, ((item_id, _), category) in enumerate(zip(c.items, categories, strict=True)):
                ruled = plan.reasons(item_id, category)
                if ruled and item_id not in c.explored:
                    whys[n] = [*ruled, *whys[n]]
    return [whys for whys, _ in found]


_NONE = np.zeros(0, np.int32)


def _stacked(
    batch: Sequence[Chosen], places: Sequence[list[int]], starts: list[int], origins: Origins | None
) -> list[tuple[list[list[str]], list[str]]]:
    """Per user, the reasons of each chosen item at ``places`` in its pool (-1: none, -2:
    explored) and, for a user with a plan, each one's category: one compiled call, for pools
    that are parts of the same arrays (``stacked``, each user's from ``starts``) and retrieved
    over the index's ids."""
    first = batch[0].pool
    assert isinstance(first, RetrievedPool)
    ids, categories, features, _ = first.stacked
    catalog = first.catalog
    at: list[int] = []
    users_at = [0]  # where each user's items start in ``at``
    recent: list[np.ndarray] = []
    bought: list[int] = []
    bought_at = [0]
    get = catalog.item_ids.get
    for c, where in zip(batch, places, strict=True):
        pool = c.pool
        assert isinstance(pool, RetrievedPool)
        at += where
        users_at.append(len(at))
        user = c.user if origins is not None else None
        recent.append(pool.recent_ids if user is not None else _NONE)
        if user is not None and user.bought:
            bought += map(get, user.bought, repeat(-1))
        bought_at.append(len(bought))
    index = origins.index if origins is not None else _no_index()
    purchases = origins.purchases if origins is not None else None
    index.settle()
    slot, row_ids, row_w, row_len, scratch, *_ = index.arrays()
    p_slot, p_row_ids, p_row_len = slot, row_ids, row_len  # no purchase: no row read
    if bought and purchases is not None and len(purchases):
        purchases.settle()
        p_slot, p_row_ids, _, p_row_len, *_ = purchases.arrays()
    else:
        bought, bought_at = [], [0] * len(bought_at)
    lengths = offsets_of(recent)
    out = kernels.compiled().reasons(
        np.array(at, np.int64), np.array(users_at, np.int64), np.array(starts, np.int64), features, categories, ids,
        np.concatenate(recent), lengths, np.array(bought, np.int32), np.array(bought_at, np.int64),
        origins.sources if origins is not None else 0, origins.per_source if origins is not None else 0,
        slot, row_ids, row_w, row_len, scratch, p_slot, p_row_ids, p_row_len,
    ).tolist()  # fmt: skip
    return _split(out, users_at, batch, _Lists.of(catalog.item_ids.names, catalog.category_ids.names))


def _split(
    out: list[int], users_at: list[int], batch: Sequence[Chosen], lists: _Lists
) -> list[tuple[list[list[str]], list[str]]]:
    """:func:`_codes`' output (the codes, then the category ids) as each user's reasons per item
    (``users_at``: where each user's items start) and, for a user with a plan, its items' category
    names."""
    m = users_at[-1]
    whys = list(map(lists.__getitem__, out[:m]))
    names = lists.category_names
    return [
        (whys[a:b], [names[x] for x in out[m + a : m + b]] if c.plan is not None else [])
        for c, a, b in zip(batch, users_at, users_at[1:], strict=False)
    ]


def _by_name(c: Chosen, where: list[int], origins: Origins | None) -> tuple[list[list[str]], list[str]]:
    """:func:`_stacked` for one user whose pool holds names or whose indexes do not share its ids (the
    click bench's reference): the lookups by name, the lists of this call only."""
    pool, user = c.pool, c.user
    found = [i for i in where if i >= 0]
    items = [pool.items[i] for i in found]
    categories = pool.categories_at(found)
    names = ["", *dict.fromkeys(x for x in categories if x)]
    category = dict(zip(found, (names.index(x) for x in categories), strict=True))
    sources: dict[int, str | None] = {}
    held: dict[int, bool] = {}
    if user is not None and origins is not None:
        covisited = [(i, item) for i, item in zip(found, items, strict=True) if pool.features[i, _COVIS] > 0.0]
        asked = [item for _, item in covisited]
        named = origins.index.sources_of(user, origins.sources, origins.per_source, asked)
        sources = dict(zip((i for i, _ in covisited), named, strict=True))
        if user.bought and origins.purchases is not None:
            held = dict(zip(found, origins.purchases.held_by(user.bought, items), strict=True))
    known = list(dict.fromkeys(s for s in sources.values() if s is not None))
    source = {s: n for n, s in enumerate(known)}
    cats = np.array([category.get(i, 0) for i in where], np.int32)
    codes = kernels.compiled().codes(
        np.array(where, np.int64),
        pool.features,
        cats,
        np.array([source.get(sources.get(i) or "", -1) for i in where], np.int32),
        np.array([held.get(i, False) for i in where] if held else [], np.bool_),
    )
    [spelled] = _split([*codes.tolist(), *cats.tolist()], [0, len(where)], [c], _Lists(known, names))
    return spelled


def _shares_ids(pool: RetrievedPool, origins: Origins) -> bool:
    """Whether both indexes are over the ids the pool was retrieved with."""
    ids = origins.index.ids
    return pool.index is origins.index and (origins.purchases is None or origins.purchases.ids is ids)


@functools.cache
def _no_index() -> CovisIndex:
    """An empty index, for a kernel call that names no source."""
    return CovisIndex(max_items=1, max_neighbors=1)


def forget_lists() -> None:
    """Drop the lists built so far: the next reasons build theirs again, as a process's first do."""
    _Lists.all.clear()


class _Lists(dict[int, list[str]]):
    """Each item's reasons by its code (:func:`_codes`), built on first use: the named ones over
    these item and category names (lists that only grow). At most :data:`LISTS_MAX` kept."""

    all: dict[tuple[int, int], _Lists] = {}  # by the names lists' ids (each _Lists holds its lists)

    def __init__(self, items: list[str], categories: list[str]) -> None:
        if len(categories) > CATEGORIES_MAX:
            raise ValueError(f"reasons: at most {CATEGORIES_MAX} categories, got {len(categories)}")
        super().__init__(((_NO_ROW, []), (_EXPLORED, ["explore"])))
        self.item_names, self.category_names = items, categories

    @classmethod
    def of(cls, items: list[str], categories: list[str]) -> _Lists:
        """The lists over these names, kept for the next call."""
        key = (id(items), id(categories))
        lists = cls.all.get(key)
        if lists is None or len(categories) > CATEGORIES_MAX:
            if len(cls.all) >= 4:  # other catalogs (tests build many): forget them
                cls.all.clear()
            lists = cls.all[key] = cls(items, categories)
        return lists

    def __missing__(self, code: int) -> list[str]:
        if len(self) >= LISTS_MAX:
            self.clear()
            self.update(((_NO_ROW, []), (_EXPLORED, ["explore"])))
        why = []
        if code & _VIEWED:
            why.append("viewed")
        if code & _COVISITED:
            source = (code >> _SOURCE) & 0xFFFFFFFF
            why.append(f"covisited:{self.item_names[source - 1]}" if source else "covisited")
        if code & _BOUGHT:
            why.append("bought_together")
        if code & _FOLLOWED:
            why.append("followed")
        if code & (_INTEREST_BIT | _POPULAR_IN):
            category = self.category_names[code >> _CATEGORY]
            if code & _INTEREST_BIT:
                why.append(f"interest:{category}")
            if code & _POPULAR_IN:
                why.append(f"popular_in:{category}")
        if code & _POPULAR_BIT:
            why.append("popular")
        self[code] = why
        return why


def _codes(at: Any, features: Any, categories: Any, sources: Any, bought: Any) -> Any:
    """The reasons' codes of the candidates whose feature rows are ``features[at]`` (-1: no row, no
    reason; -2: explored), category ids ``categories`` (0: none), co-visitation sources
    ``sources`` (an item id, -1: none) and co-purchase flags ``bought`` (empty: none)."""
    n = at.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        if at[i] < 0:
            out[i] = _EXPLORED if at[i] == -2 else _NO_ROW
            continue
        row = features[at[i]]
        code = 0
        if row[_SEEN] != 0.0:
            code |= _VIEWED
        if row[_COVIS] != 0.0:
            code |= _COVISITED | (int(sources[i]) + 1) << _SOURCE
        if bought.shape[0] and bought[i]:
            code |= _BOUGHT
        if row[_AFTER] != 0.0:
            code |= _FOLLOWED
        category = categories[i]
        if category > 0:
            if row[_INTEREST] != 0.0:
                code |= _INTEREST_BIT
            if row[_IN_CATEGORY] != 0.0:
                code |= _POPULAR_IN
            if code & (_INTEREST_BIT | _POPULAR_IN):
                code |= int(category) << _CATEGORY
        if row[_POPULAR] != 0.0:
            code |= _POPULAR_BIT
        out[i] = code
    return out


def _reasons(
    at: Any, users_at: Any, starts: Any, features: Any, categories: Any, ids: Any, recent: Any, recent_at: Any,
    bought: Any, bought_at: Any, n_sources: int, per_source: int,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, scratch: Any, p_slot: Any, p_row_ids: Any, p_row_len: Any,
) -> Any:  # fmt: skip
    """:func:`_codes` of the chosen candidates of stacked pools, user after user (``users_at``: where
    each user's places ``at`` start, -1: none, -2: explored; ``starts``: where each user's pool starts in
    ``features``, ``categories`` and ``ids``): each co-visited one's source among the user's last
    ``n_sources`` distinct recent items (``recent``, oldest first, each user's from ``recent_at``),
    and whether a co-purchase row (``p_*``) of one of the user's ``bought`` items (from
    ``bought_at``) holds it. ``scratch`` is ``_sources_of``'s. The codes, then the category ids."""
    m = at.shape[0]
    rows = at.copy()  # where not retrieved or explored, as ``at`` says
    items = np.full(m, -1, np.int32)
    cats = np.zeros(m, np.int32)  # 0: no category (the id of "")
    named = np.full(m, -1, np.int32)
    held = np.zeros(m if bought.shape[0] else 0, np.bool_)
    sources = np.empty(max(n_sources, 0), np.int32)
    for u in range(users_at.shape[0] - 1):
        a, b = users_at[u], users_at[u + 1]
        n = 0
        for k in range(recent_at[u + 1] - 1, recent_at[u] - 1, -1):
            if n == sources.shape[0]:
                break
            item = recent[k]
            j = 0
            while j < n and sources[j] != item:
                j += 1
            if j == n:
                sources[n] = item
                n += 1
        asked = np.full(b - a, -1, np.int32)
        for i in range(a, b):
            if at[i] < 0:
                continue
            rows[i] = starts[u] + at[i]
            items[i] = ids[rows[i]]
            cats[i] = categories[rows[i]]
            if n and features[rows[i], _COVIS] > 0.0:
                asked[i - a] = items[i]
        if n:
            ranks = covisitation._sources_of(sources[:n], per_source, asked, slot, row_ids, row_w, row_len, scratch)
            for i in range(a, b):
                if ranks[i - a] >= 0:
                    named[i] = sources[ranks[i - a]]
        if bought_at[u + 1] > bought_at[u]:
            mine = covisitation._held_by(
                bought[bought_at[u] : bought_at[u + 1]], items[a:b], p_slot, p_row_ids, p_row_len, scratch
            )
            held[a:b] = mine
    out = np.empty(2 * m, np.int64)
    out[:m] = _codes(rows, features, cats, named, held)
    out[m:] = cats
    return out


def warm_up() -> None:
    """Run the compiled calls once, on a tiny index (``model.kernels.warm``)."""
    index = CovisIndex(max_items=1, max_neighbors=1)
    index.pair("b", ["a"])
    index.settle()
    slot, row_ids, row_w, row_len, scratch, *_ = index.arrays()
    ids = index.ids.of(["a", "b"])
    features = np.ones((2, len(FEATURE_INDEX)), np.float32)
    at, bounds = np.arange(2, dtype=np.int64), np.array([0, 2], np.int64)
    k = kernels.compiled()
    k.reasons(
        at, bounds, bounds[:1], features, ids, ids, ids, bounds, ids[:1], np.array([0, 1], np.int64), 1, 1,
        slot, row_ids, row_w, row_len, scratch, slot, row_ids, row_len,
    )  # fmt: skip
    k.codes(at, features, ids, ids, np.ones(2, np.bool_))
