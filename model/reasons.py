"""Why an item was recommended, read from what retrieval already computed for it.

Each candidate's feature row (``model.candidate_features``) records how retrieval found it: in
the user's history, co-visited with the user's recent items, following them in other shoppers'
streams, in a category the user is interested in, popular in its category or in the shop. The
recommended items' rows are read once, after ranking, with the merchandising rules that placed or
boosted them: no second pass over the catalog. Only for the chosen items, two lookups name more:
which recent item a co-visited one comes from, and whether the co-purchase index pairs one with
an item the user bought (:class:`Origins`).

A batch's reasons are one compiled call (``_reasons``) over the pools retrieval returned together:
it reads the chosen rows, does both lookups and spells each item's reasons as word ids
(:func:`_spell`); each word is built once per process and id (:class:`_Words`), not per click.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise, repeat
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
#: The reasons that name nothing, by word id; a named one's id is ``_NAMED + 3 * dense id + kind``
#: (kind 0: ``covisited:<item>``; 1 and 2: ``interest:`` and ``popular_in:<category>``).
_PLAIN = ("viewed", "covisited", "bought_together", "followed", "popular")
_VIEWED, _COVISITED, _BOUGHT, _FOLLOWED, _POPULAR_WORD = range(len(_PLAIN))
_NAMED = 8
_NAMED_KINDS = ("covisited:", "interest:", "popular_in:")
#: Words a process keeps at most per id space (then it forgets them all and builds them again).
WORDS_MAX = 1 << 16


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
    one call."""
    places = [c.ranking.positions([item_id for item_id, _ in c.items], c.explored) for c in batch]
    spelled: list[tuple[list[list[str]], list[str]]] = [([], [])] * len(batch)
    together: dict[int, list[int]] = {}  # users by the arrays their pools are part of
    for u, c in enumerate(batch):
        if isinstance(c.pool, RetrievedPool) and (origins is None or _shares_ids(c.pool, origins)):
            together.setdefault(id(c.pool.stacked[0]), []).append(u)
        else:
            spelled[u] = _by_name(c, places[u], origins)
    for users in together.values():
        stacked = _stacked([batch[u] for u in users], [places[u] for u in users], origins)
        for u, found in zip(users, stacked, strict=True):
            spelled[u] = found
    out = []
    for c, (whys, categories) in zip(batch, spelled, strict=True):
        plan, explored = c.plan, c.explored
        if plan is not None:  # its reasons first; an item not retrieved has the category ""
            for why, (item_id, _), category in zip(whys, c.items, categories, strict=True):
                why[:0] = plan.reasons(item_id, category)
        if explored:
            for n, (item_id, _) in enumerate(c.items):
                if item_id in explored:
                    whys[n] = ["explore"]
        out.append(whys)
    return out


_NONE = np.zeros(0, np.int32)


def _stacked(
    batch: Sequence[Chosen], places: Sequence[list[int]], origins: Origins | None
) -> list[tuple[list[list[str]], list[str]]]:
    """Per user, the reasons' words of each chosen item at ``places`` in its pool (-1: none) and,
    for a user with a plan, each one's category: one compiled call, for pools that are parts of
    the same arrays (``stacked``) and retrieved over the index's ids."""
    first = batch[0].pool
    assert isinstance(first, RetrievedPool)
    ids, categories, features, _ = first.stacked
    catalog = first.catalog
    at: list[int] = []
    users_at = [0]  # where each user's items start in ``at``
    starts: list[int] = []  # where each user's pool starts in the arrays
    recent: list[np.ndarray] = []
    bought: list[int] = []
    bought_at = [0]
    get = catalog.item_ids.get
    for c, where in zip(batch, places, strict=True):
        pool = c.pool
        assert isinstance(pool, RetrievedPool)
        at += where
        users_at.append(len(at))
        starts.append(pool.stacked[3])
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
    return _split(out, users_at, batch, _Words.of(catalog.item_ids.names, catalog.category_ids.names))


def _split(
    out: list[int], users_at: list[int], batch: Sequence[Chosen], words: _Words
) -> list[tuple[list[list[str]], list[str]]]:
    """:func:`_spell`'s output as each user's words per item (``users_at``: where each user's
    items start) and, for a user with a plan, its items' category names."""
    m = users_at[-1]
    texts = list(map(words.__getitem__, out[2 * m + 1 :]))
    bounds, categories = out[: m + 1], out[m + 1 : 2 * m + 1]
    names = words.category_names
    found = []
    for c, a, b in zip(batch, users_at, users_at[1:], strict=False):
        whys = [texts[start:end] for start, end in pairwise(bounds[a : b + 1])]
        found.append((whys, [names[x] for x in categories[a:b]] if c.plan is not None else []))
    return found


def _by_name(c: Chosen, where: list[int], origins: Origins | None) -> tuple[list[list[str]], list[str]]:
    """:func:`_stacked` for one user whose pool holds names or whose indexes do not share its ids (the
    click bench's reference): the lookups by name, the words of this call only."""
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
    out = (
        kernels.compiled()
        .spell(
            np.array(where, np.int64),
            pool.features,
            np.array([category.get(i, 0) for i in where], np.int32),
            np.array([source.get(sources.get(i) or "", -1) for i in where], np.int32),
            np.array([held.get(i, False) for i in where] if held else [], np.bool_),
        )
        .tolist()
    )
    [spelled] = _split(out, [0, len(where)], [c], _Words(known, names))
    return spelled


def _shares_ids(pool: RetrievedPool, origins: Origins) -> bool:
    """Whether both indexes are over the ids the pool was retrieved with."""
    ids = origins.index.ids
    return pool.index is origins.index and (origins.purchases is None or origins.purchases.ids is ids)


@functools.cache
def _no_index() -> CovisIndex:
    """An empty index, for a kernel call that names no source."""
    return CovisIndex(max_items=1, max_neighbors=1)


def forget_words() -> None:
    """Drop the words built so far: the next reasons build theirs again, as a process's first do."""
    _Words.all.clear()


class _Words(dict[int, str]):
    """Each reason by its word id, built on first use: the named ones over these item and
    category names (lists that only grow). At most :data:`WORDS_MAX` kept."""

    all: dict[tuple[int, int], _Words] = {}  # by the names lists' ids (each _Words holds its lists)

    def __init__(self, items: list[str], categories: list[str]) -> None:
        super().__init__(enumerate(_PLAIN))
        self.item_names, self.category_names = items, categories

    @classmethod
    def of(cls, items: list[str], categories: list[str]) -> _Words:
        """The words over these names, kept for the next call."""
        key = (id(items), id(categories))
        words = cls.all.get(key)
        if words is None:
            if len(cls.all) >= 4:  # other catalogs (tests build many): forget them
                cls.all.clear()
            words = cls.all[key] = cls(items, categories)
        return words

    def __missing__(self, word: int) -> str:
        if len(self) >= WORDS_MAX:
            self.clear()
            self.update(enumerate(_PLAIN))
        dense, kind = divmod(word - _NAMED, 3)
        text = self[word] = _NAMED_KINDS[kind] + (self.item_names if kind == 0 else self.category_names)[dense]
        return text


def _spell(at: Any, features: Any, categories: Any, sources: Any, bought: Any) -> Any:
    """The word ids of the reasons of the candidates whose feature rows are ``features[at]`` (-1: no
    row, no reason), category ids ``categories`` (0: none), co-visitation sources ``sources`` (an
    item id, -1: none) and co-purchase flags ``bought`` (empty: none): first each one's start
    among the words and the end of the last, then each one's category id, then the words."""
    n = at.shape[0]
    out = np.empty(2 * n + 1 + 7 * n, np.int64)
    w = 2 * n + 1
    for i in range(n):
        out[i] = w - (2 * n + 1)
        out[n + 1 + i] = categories[i]
        if at[i] < 0:
            continue
        row = features[at[i]]
        category = categories[i]
        if row[_SEEN] != 0.0:
            out[w] = _VIEWED
            w += 1
        if row[_COVIS] != 0.0:
            out[w] = _NAMED + 3 * sources[i] if sources[i] >= 0 else _COVISITED
            w += 1
        if bought.shape[0] and bought[i]:
            out[w] = _BOUGHT
            w += 1
        if row[_AFTER] != 0.0:
            out[w] = _FOLLOWED
            w += 1
        if category > 0:
            if row[_INTEREST] != 0.0:
                out[w] = _NAMED + 3 * category + 1
                w += 1
            if row[_IN_CATEGORY] != 0.0:
                out[w] = _NAMED + 3 * category + 2
                w += 1
        if row[_POPULAR] != 0.0:
            out[w] = _POPULAR_WORD
            w += 1
    out[n] = w - (2 * n + 1)
    return out[:w]


def _reasons(
    at: Any, users_at: Any, starts: Any, features: Any, categories: Any, ids: Any, recent: Any, recent_at: Any,
    bought: Any, bought_at: Any, n_sources: int, per_source: int,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, scratch: Any, p_slot: Any, p_row_ids: Any, p_row_len: Any,
) -> Any:  # fmt: skip
    """:func:`_spell` of the chosen candidates of stacked pools, user after user (``users_at``: where
    each user's places ``at`` start, -1: none; ``starts``: where each user's pool starts in
    ``features``, ``categories`` and ``ids``): each co-visited one's source among the user's last
    ``n_sources`` distinct recent items (``recent``, oldest first, each user's from ``recent_at``),
    and whether a co-purchase row (``p_*``) of one of the user's ``bought`` items (from
    ``bought_at``) holds it. ``scratch`` is ``_sources_of``'s."""
    m = at.shape[0]
    rows = np.full(m, -1, np.int64)
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
    return _spell(rows, features, cats, named, held)


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
    k.spell(at, features, ids, ids, np.ones(2, np.bool_))
