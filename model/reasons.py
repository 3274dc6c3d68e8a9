"""Why an item was recommended, read from what retrieval already computed for it.

Each candidate's feature row (``model.candidate_features``) records how retrieval found it: in
the user's history, co-visited with the user's recent items, following them in other shoppers'
streams, in a category the user is interested in, popular in its category or in the shop. The
recommended items' rows are read once, after ranking, with the merchandising rules that placed or
boosted them: no second pass over the catalog. Only for the chosen items, two lookups name more:
which recent item a co-visited one comes from, and whether the co-purchase index pairs one with
an item the user bought (:class:`Origins`).

A click's reasons are one compiled call (``_reasons``): it reads the chosen rows, does both
lookups and spells each item's reasons as word ids (:func:`_spell`); the words themselves are
built once per process and id (:class:`_Words`), so a click builds no string.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from model import covisitation, kernels
from model.candidate_features import FEATURE_INDEX
from model.covisitation import CovisIndex
from model.ranking import Ranking
from model.retrieval import CandidatePool, RetrievedPool
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


def reasons(
    pool: CandidatePool,
    ranking: Ranking,
    chosen: Sequence[tuple[str, float]],
    plan: RulePlan | None,
    explored: Collection[str] = (),
    user: UserState | None = None,
    origins: Origins | None = None,
) -> list[list[str]]:
    """Per chosen item: ``rule:<rule_id>`` of the rules that acted on it, ``demoted:*``, then
    ``viewed``, ``covisited:<item_id>`` (the user's recent item it is most co-visited with; plain
    ``covisited`` without ``user`` and ``origins``), ``bought_together`` (a co-purchase neighbour of
    an item the user bought), ``followed`` (comes after the user's recent items),
    ``interest:<category>``, ``popular_in:<category>`` and ``popular``, those that hold; ``explore``
    alone for the ``explored`` ones (``model.candidates.explore`` placed them, not the ranking or a
    rule). ``ranking``: the pool's ranking the items were chosen from, which already walked past
    them."""
    position = ranking.position
    places = [None if item_id in explored else position(item_id) for item_id, _ in chosen]
    found = [p for p in places if p is not None]
    n = len(found)
    if n:
        spelled, words, categories = _spelled(pool, found, user, origins)
    out = []
    j, start = 0, 2 * n  # the next of ``found``; where its words start in ``spelled``
    for (item_id, _), place in zip(chosen, places, strict=True):
        if place is not None:
            end = spelled[j]
            why = list(map(words.__getitem__, spelled[start:end]))
            if plan is not None:
                why[:0] = plan.reasons(item_id, categories[spelled[n + j]])
            out.append(why)
            j, start = j + 1, end
        elif item_id in explored:
            out.append(["explore"])
        else:  # placed by a rule, not retrieved
            out.append(plan.reasons(item_id, "") if plan is not None else [])
    return out


_NONE = np.zeros(0, np.int32)
_NO_FLAGS = np.zeros(0, np.bool_)


def _spelled(
    pool: CandidatePool, found: list[int], user: UserState | None, origins: Origins | None
) -> tuple[list[int], _Words, list[str]]:
    """:func:`_spell`'s output for the pool's candidates at ``found``, as a list, with the words
    and the category names its ids read. One compiled call when the pool was retrieved over the
    index's ids (the engine's); else the lookups by name (the click bench's reference index)."""
    at = np.array(found, np.int32)
    if isinstance(pool, RetrievedPool) and (origins is None or _shares_ids(pool, origins)):
        features, categories = pool.features, pool.category_ids
        names = pool.catalog.category_ids.names
        words = _Words.of(pool.catalog.item_ids.names, names)
        if user is None or origins is None:
            spelled = kernels.compiled().spell(at, features, categories.take(at), np.full(len(found), -1, np.int32), _NO_FLAGS)
            return spelled.tolist(), words, names
        index, purchases = origins.index, origins.purchases
        index.settle()
        slot, row_ids, row_w, row_len, scratch, *_ = index.arrays()
        bought, p_slot, p_row_ids, p_row_len = _NONE, slot, row_ids, row_len  # no purchase: no row read
        if user.bought and purchases is not None and len(purchases):
            bought = np.fromiter(map(index.ids.get, user.bought, repeat(-1)), np.int32, len(user.bought))
            purchases.settle()
            p_slot, p_row_ids, _, p_row_len, *_ = purchases.arrays()
        spelled = kernels.compiled().reasons(
            at, features, categories, pool.ids, pool.recent_ids, origins.sources, origins.per_source, bought,
            slot, row_ids, row_w, row_len, scratch, p_slot, p_row_ids, p_row_len,
        )  # fmt: skip
        return spelled.tolist(), words, names
    # By name: the words of this call only, over its own ids.
    items = [pool.items[i] for i in found]
    names = ["", *dict.fromkeys(c for c in pool.categories_at(found) if c)]
    category = {c: n for n, c in enumerate(names)}
    sources: list[str | None] = [None] * len(found)
    held: list[bool] = []
    if user is not None and origins is not None:
        covisited = [item for item, i in zip(items, found, strict=True) if pool.features[i, _COVIS] > 0.0]
        named = dict(zip(covisited, origins.index.sources_of(user, origins.sources, origins.per_source, covisited), strict=True))
        sources = [named.get(item) for item in items]
        if user.bought and origins.purchases is not None:
            held = origins.purchases.held_by(user.bought, items)
    known = list(dict.fromkeys(s for s in sources if s is not None))
    source = {s: n for n, s in enumerate(known)}
    spelled = kernels.compiled().spell(
        at,
        pool.features,
        np.array([category[c] for c in pool.categories_at(found)], np.int32),
        np.array([source[s] if s is not None else -1 for s in sources], np.int32),
        np.array(held, np.bool_),
    )
    return spelled.tolist(), _Words(known, names), names


def _shares_ids(pool: RetrievedPool, origins: Origins) -> bool:
    """Whether both indexes are over the ids the pool was retrieved with."""
    ids = origins.index.ids
    return pool.index is origins.index and (origins.purchases is None or origins.purchases.ids is ids)


class _Words(dict[int, str]):
    """Each reason by its word id, built on first use: the named ones over these item and
    category names (lists that only grow). At most :data:`WORDS_MAX` kept."""

    _all: dict[tuple[int, int], _Words] = {}  # by the names lists' ids (each _Words holds its lists)

    def __init__(self, items: list[str], categories: list[str]) -> None:
        super().__init__(enumerate(_PLAIN))
        self.items, self.categories = items, categories

    @classmethod
    def of(cls, items: list[str], categories: list[str]) -> _Words:
        """The words over these names, kept for the next call."""
        key = (id(items), id(categories))
        words = cls._all.get(key)
        if words is None:
            if len(cls._all) >= 4:  # other catalogs (tests build many): forget them
                cls._all.clear()
            words = cls._all[key] = cls(items, categories)
        return words

    def __missing__(self, word: int) -> str:
        if len(self) >= WORDS_MAX:
            self.clear()
            self.update(enumerate(_PLAIN))
        dense, kind = divmod(word - _NAMED, 3)
        text = self[word] = _NAMED_KINDS[kind] + (self.items if kind == 0 else self.categories)[dense]
        return text


def _spell(at: Any, features: Any, categories: Any, sources: Any, bought: Any) -> Any:
    """The word ids of the reasons of the candidates at ``at`` (rows of ``features``), whose
    category ids are ``categories`` (0: none), co-visitation sources ``sources`` (an item id, -1:
    none) and co-purchase flags ``bought`` (empty: none): first each one's end in the output, then
    each one's category id, then their words in order."""
    n = at.shape[0]
    out = np.empty(2 * n + 7 * n, np.int64)
    w = 2 * n
    for i in range(n):
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
        out[i] = w
        out[n + i] = category
    return out[:w]


def _reasons(
    at: Any, features: Any, categories: Any, ids: Any, recent: Any, n_sources: int, per_source: int, bought: Any,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, scratch: Any, p_slot: Any, p_row_ids: Any, p_row_len: Any,
) -> Any:  # fmt: skip
    """:func:`_spell` of a retrieved pool's candidates at ``at`` (its ``features``, category and item
    ids): each co-visited one's source among the last ``n_sources`` distinct of ``recent`` (oldest
    first), and whether a co-purchase row (``p_*``) of ``bought`` holds it. ``scratch`` is
    ``_sources_of``'s."""
    sources = np.empty(max(n_sources, 0), np.int32)
    n = 0
    for k in range(recent.shape[0] - 1, -1, -1):
        if n == sources.shape[0]:
            break
        item = recent[k]
        j = 0
        while j < n and sources[j] != item:
            j += 1
        if j == n:
            sources[n] = item
            n += 1
    m = at.shape[0]
    items = np.empty(m, np.int32)
    asked = np.empty(m, np.int32)
    cats = np.empty(m, np.int32)
    for i in range(m):
        items[i] = ids[at[i]]
        asked[i] = items[i] if features[at[i], _COVIS] > 0.0 else -1
        cats[i] = categories[at[i]]
    ranks = covisitation._sources_of(sources[:n], per_source, asked, slot, row_ids, row_w, row_len, scratch)
    named = np.full(m, -1, np.int32)
    for i in range(m):
        if ranks[i] >= 0:
            named[i] = sources[ranks[i]]
    held = covisitation._held_by(bought, items, p_slot, p_row_ids, p_row_len, scratch) if bought.shape[0] else np.zeros(0, np.bool_)
    return _spell(at, features, cats, named, held)


def warm_up() -> None:
    """Run the compiled calls once, on a tiny index (``model.kernels.warm``)."""
    index = CovisIndex(max_items=1, max_neighbors=1)
    index.pair("b", ["a"])
    index.settle()
    slot, row_ids, row_w, row_len, scratch, *_ = index.arrays()
    ids = index.ids.of(["a", "b"])
    features = np.ones((2, len(FEATURE_INDEX)), np.float32)
    at = np.arange(2, dtype=np.int32)
    k = kernels.compiled()
    k.reasons(at, features, ids, ids, ids, 1, 1, ids[:1], slot, row_ids, row_w, row_len, scratch, slot, row_ids, row_len)
    k.spell(at, features, ids, ids, np.ones(2, np.bool_))
    k.spell(at, features, ids, ids, np.zeros(0, np.bool_))
