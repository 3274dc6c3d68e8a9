"""Candidate retrieval and the cheap per-candidate features the ranker reads, as one compiled
kernel over dense item ids.

Ranking every item of a 100,000-item catalog per event is out of the question, so each
recommendation first gathers a few hundred candidates from bounded sources (the user's own recent
items, items co-visited with them, popular items in the user's categories, popular items overall),
then the model ranks only those. Retrieval cost depends on these bounds, not on the catalog size.

The same kernel builds the candidates and features for serving and for training examples, so the
ranker learns on exactly the distribution it is later asked to rank. It reads the catalog's and
the co-visitation index's arrays over one shared id space (``Catalog.item_ids``); its float
operations are those of the Python formulas it replaced (float64, then rounded to float32), so
rows are equal bit for bit to theirs (tests/model/test_retrieval_kernel.py compares them with
``streams/bench/reference_retrieval.py``).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection, Iterable, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np

from model import covisitation, kernels
from model.candidate_features import FEATURE_INDEX, N_CANDIDATE_FEATURES
from model.covisitation import CovisIndex
from model.features import id_buckets
from model.scratch import Scratch
from state.catalog import Catalog, DenseIds
from state.user import UserState


@dataclass(frozen=True, slots=True)
class RetrievalConfig:
    """How many candidates each source offers. Co-visitation reads the user's last 10 distinct
    items and keeps the 200 strongest: a MovieLens user rates films in runs, and with 5 sources
    and 100 candidates the pool held 40% of the next positives of the tuning prefix (with 10 and
    200, 48%). A sparse shop's pools barely grow (a simulated shop's: 112 -> 119 candidates).
    The "after" feature still reads 5 sources: fewer, nearer items say more about what comes
    next."""

    history: int = 50
    covis_sources: int = 10
    covis_per_source: int = 30
    covis_max: int = 200
    after_sources: int = 5
    categories: int = 3
    per_category: int = 20
    popular: int = 50


#: The pool's sources, each with the candidate feature that is non-zero exactly on the candidates
#: it offered: the user's history, the ``covis_max`` strongest co-visited items, the popular
#: items of the user's categories, the shop's popular list.
SOURCE_FEATURES: dict[str, str] = {
    "history": "seen",
    "covisitation": "covis_rank",
    "category_popular": "category_rank",
    "popular": "popularity_rank",
}
_SOURCE_COLUMNS = tuple((source, FEATURE_INDEX[feature]) for source, feature in SOURCE_FEATURES.items())


def sources_of(row: np.ndarray) -> list[str]:
    """The sources that offered a candidate, read off its feature row (none for an item added
    to a pool from outside, such as a training example's positive that retrieval missed)."""
    return [source for source, column in _SOURCE_COLUMNS if row[column] != 0.0]


class CandidatePool:
    """Candidates for one user at one moment, their categories and feature rows
    [len(items), N_CANDIDATE_FEATURES] (float32), given as they are. :func:`retrieve` returns a
    :class:`RetrievedPool`, which holds them as dense ids."""

    __slots__ = ("_categories", "_features", "_items", "retrieved")

    def __init__(
        self,
        items: list[str] | None,
        categories: list[str] | None,
        features: np.ndarray,
        retrieved: int = -1,
    ) -> None:
        self._items = items
        self._categories = categories
        self._features = features
        #: How many of ``items`` retrieval found (the rest are ``extra`` items); -1: all of them.
        self.retrieved = retrieved

    @property
    def items(self) -> list[str]:
        return self._items  # type: ignore[return-value]

    @property
    def categories(self) -> list[str]:
        return self._categories  # type: ignore[return-value]

    @property
    def features(self) -> np.ndarray:
        """[len(items), N_CANDIDATE_FEATURES], float32."""
        return self._features

    def category(self, i: int) -> str:
        return self.categories[i]

    def item(self, i: int) -> str:
        return self.items[i]

    def categories_at(self, positions: Sequence[int]) -> list[str]:
        """The categories of the candidates at these positions."""
        categories = self.categories
        return [categories[i] for i in positions]

    def position(self, item_id: str) -> int:
        """Where the pool holds ``item_id`` (it holds each item once); ValueError if nowhere."""
        return self.items.index(item_id)

    def eligible(self, catalog: Catalog, excluded: Collection[str]) -> list[int]:
        """The positions of the candidates other than ``excluded`` that ``catalog`` does not say
        are out of stock (``Catalog.available``), in order."""
        available = catalog.available
        return [i for i, item in enumerate(self.items) if item not in excluded and available(item)]

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        """The feature rows of these candidates, exactly as :attr:`features` holds them."""
        return self._features[list(indices)]

    def was_retrieved(self, i: int) -> bool:
        return self.retrieved < 0 or i < self.retrieved

    def with_extra(self, more: Iterable[str]) -> CandidatePool:
        """This pool plus the ``more`` items it does not hold yet, appended as extras (not
        retrieved), with exactly the features ``retrieve(..., extra=more)`` would give them."""
        have = set(self.items)
        if all(item in have for item in more):
            return self
        raise ValueError("this pool was not built by retrieve(); it cannot add items")

    def picked(self, positions: Sequence[int], more: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
        """The items, categories and feature rows of the candidates at ``positions``, then of the
        ``more`` items as :meth:`with_extra` features them (a click's positive and negatives)."""
        pool = self.with_extra(more) if more else self
        at = [*positions, *map(pool.position, more)]
        return [pool.item(i) for i in at], pool.categories_at(at), pool.rows(at)

    def buckets(self, item_buckets: int, category_buckets: int) -> tuple[np.ndarray, np.ndarray]:
        """The candidates' item and category buckets (``model.features.bucket``), int32."""
        n = len(self.items)
        items = np.fromiter(map(id_buckets(item_buckets).__getitem__, self.items), np.int32, n)
        return items, np.fromiter(map(id_buckets(category_buckets).__getitem__, self.categories), np.int32, n)


class RetrievedPool(CandidatePool):
    """What :func:`retrieve` found, as dense ids: item and category names are materialised only
    when asked for (a ranking reads its top k, a training example a handful). A pool retrieved
    with ``lazy`` rows computes the feature rows and categories of the candidates asked for only,
    from the sources it keeps; it must be read before the index or the catalog change."""

    __slots__ = ("_cat_ids", "_cut", "_extra_rows", "_ids", "_in_batch", "_request", "_sources")

    def __init__(
        self,
        request: _Request,
        ids: np.ndarray,
        retrieved: int,
        cat_ids: np.ndarray,
        features: np.ndarray | None,
        sources: tuple[Any, ...] | None = None,
        extra_rows: np.ndarray | None = None,
        in_batch: tuple[PoolBatch, int] | None = None,
        *,
        cut: bool = False,
    ) -> None:
        super().__init__(None, None, features, retrieved)  # type: ignore[arg-type] # filled on demand
        self._request = request
        #: Cut to its extras (``alone_if_missed``): it neither adds items nor tells eligible ones.
        self._cut = cut
        #: The :func:`retrieve_many` call's arrays this pool is a slice of, and its place in them.
        self._in_batch = in_batch
        self._ids = ids
        self._cat_ids = cat_ids  # -1: not computed yet (lazy rows)
        self._sources = sources
        #: Lazy rows: the rows of the candidates from ``retrieved`` on, as retrieval computed them.
        self._extra_rows = extra_rows

    @property
    def ids(self) -> np.ndarray:
        """The candidates' dense ids (``Catalog.item_ids``), int32."""
        return self._ids

    @property
    def cat_ids(self) -> np.ndarray:
        """The candidates' category ids (``Catalog.category_ids``), int32."""
        return self._known_cats()

    @property
    def item_ids(self) -> DenseIds:
        """The id space of :attr:`ids` (its catalog's)."""
        return self._request.catalog.item_ids

    @property
    def index(self) -> CovisIndex:
        """The co-visitation index it was retrieved from."""
        return self._request.index

    @property
    def catalog(self) -> Catalog:
        """The catalog it was retrieved from (whose ids ``ids`` and the category ids are)."""
        return self._request.catalog

    @property
    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Its item ids, category ids and feature rows as parts of the arrays of the pools retrieved
        with it in one kernel call (:func:`retrieve_many`), and where in them it starts: so that
        a batch's pools are read in one call. A pool retrieved alone is its own arrays, at 0."""
        if self._in_batch is not None:
            batch, k = self._in_batch
            return batch.ids, batch.cat_ids, batch.features, int(batch.offsets[k])
        features = self.features
        return self._ids, self._known_cats(), features, 0

    @property
    def recent_ids(self) -> np.ndarray:
        """The dense ids of the user's recent items retrieval read, oldest first, int32."""
        return self._request.args[0]

    @property
    def features(self) -> np.ndarray:
        if self._features is None:
            self._cat_ids, self._features = self._request.rows(self._sources, self._ids)
        return self._features

    @property
    def items(self) -> list[str]:
        if self._items is None:
            self._items = _PerId.of(self._request.catalog.item_ids).take(self._ids).tolist()
        return self._items

    @property
    def categories(self) -> list[str]:
        if self._categories is None:
            self._categories = _PerId.of(self._request.catalog.category_ids).take(self._known_cats()).tolist()
        return self._categories

    def category(self, i: int) -> str:
        if self._cat_ids[i] < 0:
            self.rows([i])
        return self._request.catalog.category_ids.names[int(self._cat_ids[i])]

    def item(self, i: int) -> str:
        return self._request.catalog.item_ids.names[int(self._ids[i])]

    def categories_at(self, positions: Sequence[int]) -> list[str]:
        if self._categories is not None:
            return super().categories_at(positions)
        cats = self._cat_ids.take(positions)
        if (cats < 0).any():
            self.rows(positions)
            cats = self._cat_ids.take(positions)
        return _PerId.of(self._request.catalog.category_ids).take(cats).tolist()

    def rows(self, indices: Sequence[int]) -> np.ndarray:
        if self._features is not None:
            return super().rows(indices)
        kept, first = self._extra_rows, self.retrieved
        if kept is not None and indices and all(first <= i < first + len(kept) for i in indices):
            return kept[[i - first for i in indices]]
        at = np.array(indices, np.int64)
        cats, rows = self._request.rows(self._sources, self._ids[at])
        self._cat_ids[at] = cats
        return rows

    def _known_cats(self) -> np.ndarray:
        if self._features is None and (self._cat_ids < 0).any():  # lazy rows: compute them all
            self._cat_ids, self._features = self._request.rows(self._sources, self._ids)
        return self._cat_ids

    def _require_whole(self) -> None:
        if self._cut:
            raise ValueError("this pool was cut to its extras (alone_if_missed): only they can be read")

    def position(self, item_id: str) -> int:
        dense = self._request.catalog.item_ids.get(item_id, -1)
        ids, first = self._ids, self.retrieved
        if first < len(ids) and ids[first] == dense:  # the first extra (each id is held once)
            return first
        hits = ids == dense
        found = int(hits.argmax())
        if not hits[found]:
            raise ValueError(f"{item_id!r} is not in the pool")
        return found

    def eligible(self, catalog: Catalog, excluded: Collection[str]) -> list[int]:
        self._require_whole()
        if catalog.item_ids is not self._request.catalog.item_ids:
            return super().eligible(catalog, excluded)
        a, get = catalog.arrays, catalog.item_ids.get
        known = np.fromiter((get(item, -1) for item in excluded), np.int32, len(excluded))
        flags = _FLAGS.at_least(len(catalog.item_ids.names))
        return kernels.compiled().eligible(self._ids, a.present, a.in_stock, known, flags).tolist()

    def with_extra(self, more: Iterable[str]) -> CandidatePool:
        self._require_whole()
        extra = self._request.catalog.item_ids.of(more)
        if self._sources is None:
            if all((self._ids == e).any() for e in extra.tolist()):
                return self
            return self._request.run(np.concatenate([self._ids[self.retrieved :], extra]))
        flags = _FLAGS.at_least(len(self._request.catalog.item_ids.names))
        flags[self._ids] = True
        new = []
        for e in extra.tolist():
            if not flags[e]:
                flags[e] = True
                new.append(e)
        flags[self._ids] = False
        flags[new] = False
        if not new:
            return self
        ids = np.concatenate([self._ids, np.array(new, np.int32)])
        cats = np.concatenate([self._cat_ids, np.full(len(new), -1, np.int32)])
        return RetrievedPool(self._request, ids, self.retrieved, cats, None, self._sources, self._extra_rows)

    def picked(self, positions: Sequence[int], more: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
        if self._sources is None:
            return super().picked(positions, more)
        # Lazy rows: a row depends on its item and the sources only, so the rows of the picked
        # candidates and of the extras come from one kernel call, by dense id.
        catalog = self._request.catalog
        item_ids = catalog.item_ids
        ids = self._ids.take(positions).tolist() + [item_ids[item] for item in more]
        cats, rows = self._request.rows(self._sources, np.array(ids, np.int32))
        names, categories = item_ids.names, catalog.category_ids.names
        return [names[i] for i in ids], [categories[c] for c in cats.tolist()], rows

    def buckets(self, item_buckets: int, category_buckets: int) -> tuple[np.ndarray, np.ndarray]:
        catalog = self._request.catalog
        items = _PerId.of(catalog.item_ids, item_buckets).take(self._ids)
        return items, _PerId.of(catalog.category_ids, category_buckets).take(self._known_cats())


class _PerId:
    """A fact of every id of a :class:`DenseIds`, as an array indexed by dense id, extended as
    ids are added (an id's string never changes), its capacity doubling: the id's bucket among
    ``buckets`` (int32), or for ``buckets`` 0 its name (object, so that a pool's names are one
    ``take``)."""

    _all: dict[tuple[int, int], _PerId] = {}  # by id() of the DenseIds (held weakly) and buckets

    def __init__(self, ids: DenseIds, buckets: int) -> None:
        self.ids, self.buckets, self.n = weakref.ref(ids), buckets, 0
        self.values = np.zeros(0, np.int32 if buckets else object)

    @classmethod
    def of(cls, ids: DenseIds, buckets: int = 0) -> np.ndarray:
        found = cls._all.get((id(ids), buckets))
        if found is None or found.ids() is not ids:
            found = cls._all[id(ids), buckets] = cls(ids, buckets)
        return found.values if found.n == len(ids.names) else found._extend(ids)

    def _extend(self, ids: DenseIds) -> np.ndarray:
        more = ids.names[self.n :]
        if self.n + len(more) > len(self.values):
            grown = np.zeros(max(self.n + len(more), 2 * len(self.values), 1024), self.values.dtype)
            grown[: self.n] = self.values[: self.n]
            self.values = grown
        end = self.n + len(more)
        if self.buckets:
            bucket = id_buckets(self.buckets).__getitem__
            self.values[self.n : end] = np.fromiter(map(bucket, more), np.int32, len(more))
        else:
            self.values[self.n : end] = more
        self.n = end
        return self.values


def id_buckets_of(ids: DenseIds, buckets: int, dense: np.ndarray) -> np.ndarray:
    """The buckets (``model.features.bucket`` among ``buckets``) of these dense ids of ``ids``, int32."""
    return _PerId.of(ids, buckets).take(dense)


def retrieve(
    user: UserState,
    now: float,
    catalog: Catalog,
    index: CovisIndex,
    interests: list[tuple[str, float]],
    config: RetrievalConfig = RetrievalConfig(),
    extra: Iterable[str] = (),
    *,
    lazy: bool = False,
    alone_if_missed: bool = False,
) -> RetrievedPool:
    """Gather candidates and their features. ``interests`` are the user's decayed category
    shares at ``now``; ``extra`` items (a training positive) are added if not retrieved, so that
    they get the very features they would have had as candidates. ``index`` must share the
    catalog's item ids (``CovisIndex(ids=catalog.item_ids)``). With ``lazy``, rows are computed
    only for the candidates asked for (a training example reads a handful of a few hundred), and
    ``with_extra`` adds items without retrieving again; the pool must then be read before the
    index or the catalog change. With ``alone_if_missed`` too, a pool that would hold none of
    ``extra`` among its retrieved candidates holds the extras alone (``retrieved`` 0), and only
    their rows can be read: all a training example reads of a click retrieval missed, found
    without ranking or pooling the candidates."""
    if index.ids is not catalog.item_ids:
        raise ValueError("retrieval needs a co-visitation index over the catalog's item ids")
    if alone_if_missed and not lazy:
        raise ValueError("alone_if_missed is for lazy pools")
    request = _Request(user, now, catalog, index, interests, config)
    extra_ids = catalog.item_ids.of(extra)
    return request.candidates(extra_ids, alone_if_missed) if lazy else request.run(extra_ids)


def retrieve_many(
    users: Sequence[UserState],
    now: float,
    catalog: Catalog,
    index: CovisIndex,
    interests: Sequence[list[tuple[str, float]]],
    config: RetrievalConfig = RetrievalConfig(),
) -> list[RetrievedPool]:
    """:func:`retrieve` for several users at one moment, without extras (``interests[n]`` are
    ``users[n]``'s): the same pools, from one call of the kernel instead of one per user."""
    if index.ids is not catalog.item_ids:
        raise ValueError("retrieval needs a co-visitation index over the catalog's item ids")
    if not users:
        return []
    requests = [_Request(u, now, catalog, index, i, config) for u, i in zip(users, interests, strict=True)]
    return _run_many(requests)


class _Request:
    """One user's retrieval at one moment, as the kernel's arguments (kept to add extras)."""

    __slots__ = ("args", "catalog", "index")

    def __init__(
        self,
        user: UserState,
        now: float,
        catalog: Catalog,
        index: CovisIndex,
        interests: list[tuple[str, float]],
        config: RetrievalConfig,
    ) -> None:
        self.catalog, self.index = catalog, index
        category_ids = catalog.category_ids
        r_ids, r_w, r_ts, r_cat = user.recent_arrays(catalog.item_ids, category_ids).views()
        m = len(r_ids)
        last_cat = int(r_cat[-1]) if m else 0  # the newest recent item's category id ("" is 0)
        wanted = [c for c, _ in interests[: config.categories]]
        if last_cat:
            last_category = category_ids.names[last_cat]
            if last_category not in wanted:
                wanted.append(last_category)
        popular, cat_items, cat_ranks = catalog.popular_lists(wanted, config.per_category, config.popular)
        share_cats, shares = user.interest_arrays(interests, category_ids)
        c = config
        self.args = (
            r_ids, r_w, r_ts, r_cat, popular, cat_items, cat_ranks, share_cats, shares, last_cat,
            c.history, c.covis_sources, c.covis_per_source, c.covis_max, c.after_sources, now, math.log1p(m) / 4.0,
        )  # fmt: skip

    def run(self, extra: np.ndarray) -> RetrievedPool:
        catalog, index = self.catalog, self.index
        index.settle()
        a = catalog.arrays
        scratch = _scratch(len(catalog.item_ids.names), len(catalog.category_ids.names))
        ids, retrieved, cats, features = kernels.compiled().retrieve(
            *self.args, extra.astype(np.int32), *index.arrays(), a.present, a.pop_log, a.category, *scratch
        )
        return RetrievedPool(self, ids, int(retrieved), cats, features)

    def candidates(self, extra: np.ndarray, alone_if_missed: bool = False) -> RetrievedPool:
        """:meth:`run` with the rows of the extra candidates only, and the sources kept (the other
        rows on demand); ``alone_if_missed``: :func:`retrieve`'s."""
        catalog, index = self.catalog, self.index
        index.settle()
        a = catalog.arrays
        scratch = _scratch(len(catalog.item_ids.names), len(catalog.category_ids.names))
        ids, retrieved, cat_ids, rows, sources, whole = kernels.compiled().candidates(
            *self.args, extra.astype(np.int32, copy=False), alone_if_missed,
            *index.arrays(), a.present, a.pop_log, a.category, *scratch,
        )  # fmt: skip
        return RetrievedPool(self, ids, retrieved, cat_ids, None, sources, rows, cut=not whole)

    def rows(self, sources: tuple[Any, ...] | None, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The category ids and rows of ``ids`` from ``sources`` (what :meth:`candidates` kept)."""
        if sources is None:
            raise ValueError("this pool holds its rows already")
        catalog, index = self.catalog, self.index
        index.settle()
        a = catalog.arrays
        scratch = _scratch(len(catalog.item_ids.names), len(catalog.category_ids.names))
        r = self.args
        count, pending = index.arrays()[5:]
        return kernels.compiled().rows(
            np.ascontiguousarray(ids, np.int32), *sources, r[4], r[5], r[6], r[7], r[8], r[3], r[9], r[15], r[16],
            count, pending, a.present, a.pop_log, a.category, *scratch,
        )  # fmt: skip


#: Which of a request's arguments are arrays, grouped by the offsets they share when several
#: requests are concatenated: the recent items, the popular list, the categories' popular items
#: and their ranks, the interest shares.
_GROUPS = ((0, 1, 2, 3), (4,), (5, 6), (7, 8))


def _run_many(requests: Sequence[_Request]) -> list[RetrievedPool]:
    """Each request's pool (without extras), from one kernel call over their concatenated
    arguments. The requests share a catalog, an index and bounds."""
    first = requests[0]
    catalog, index = first.catalog, first.index
    index.settle()
    a = catalog.arrays
    scratch = _scratch(len(catalog.item_ids.names), len(catalog.category_ids.names))
    columns = list(zip(*(r.args for r in requests), strict=True))
    grouped: list[np.ndarray] = []
    for group in _GROUPS:
        for j in group:
            grouped.append(np.concatenate(columns[j]))
        grouped.append(offsets_of(columns[group[0]]))
    per_request = (
        np.array(columns[9], np.int64),
        np.array(columns[15], np.float64),
        np.array(columns[16], np.float64),
    )
    none = np.zeros(0, np.int32)
    ids, retrieved, cats, features, at = kernels.compiled().retrieve_many(
        *grouped, *per_request, *first.args[10:15], none, np.zeros(len(requests) + 1, np.int64),
        *index.arrays(), a.present, a.pop_log, a.category, *scratch,
    )  # fmt: skip
    batch = PoolBatch(ids, cats, features, at, first.catalog)
    bounds = at.tolist()
    return [
        RetrievedPool(request, ids[s:e], int(got), cats[s:e], features[s:e], in_batch=(batch, k))
        for k, (request, s, e, got) in enumerate(
            zip(requests, bounds[:-1], bounds[1:], retrieved.tolist(), strict=True)
        )
    ]


@dataclass(frozen=True, slots=True, eq=False)
class PoolBatch:
    """The concatenated candidates (dense ids), category ids and rows of the pools of one
    :func:`retrieve_many` call; pool ``k``'s are ``[offsets[k]:offsets[k + 1]]``."""

    ids: np.ndarray
    cat_ids: np.ndarray
    features: np.ndarray
    offsets: np.ndarray
    catalog: Catalog

    @staticmethod
    def of(pools: Sequence[CandidatePool]) -> PoolBatch | None:
        """The batch ``pools`` are, all of it in order, or None (pools retrieved otherwise, a
        part of a batch, pools of several): scoring then reads the batch's arrays as they are
        instead of concatenating the pools'."""
        first = pools[0] if pools else None
        if not isinstance(first, RetrievedPool) or first._in_batch is None:
            return None
        batch = first._in_batch[0]
        if len(pools) != len(batch.offsets) - 1:
            return None
        for k, pool in enumerate(pools):
            place = pool._in_batch if isinstance(pool, RetrievedPool) else None
            if place is None or place[0] is not batch or place[1] != k:
                return None
        return batch

    def buckets(self, item_buckets: int, category_buckets: int) -> tuple[np.ndarray, np.ndarray]:
        """Every candidate's item and category bucket (:meth:`CandidatePool.buckets`), int32."""
        catalog = self.catalog
        items = _PerId.of(catalog.item_ids, item_buckets).take(self.ids)
        return items, _PerId.of(catalog.category_ids, category_buckets).take(self.cat_ids)


def offsets_of(arrays: Sequence[Sized]) -> np.ndarray:
    """Where each of ``arrays`` starts in their concatenation, and their total length last."""
    out = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([len(x) for x in arrays], out=out[1:])
    return out


#: The kernels' scratch arrays (:mod:`model.scratch`): per item id -1 (``mark``) or False
#: (``_eligible``'s flags), per category id 0.
_MARK = Scratch(np.int32, -1, 1024)
_SHARES = Scratch(np.float64, 0.0, 256)
_RECENT = Scratch(np.float64, 0.0, 256)
_FLAGS = Scratch(np.bool_, False, 1024)


def _scratch(items: int, categories: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _MARK.at_least(items), _SHARES.at_least(categories), _RECENT.at_least(categories)


def _eligible(ids: Any, present: Any, in_stock: Any, excluded: Any, flags: Any) -> Any:
    """The positions of ``ids`` not in ``excluded`` (-1: none) and not out of stock (present and
    not in stock), in order; ``flags`` (per item id) is False on entry and on return."""
    for e in excluded:
        if e >= 0:
            flags[e] = True
    out = np.empty(ids.shape[0], np.int64)
    n = 0
    for i in range(ids.shape[0]):
        item = ids[i]
        if not flags[item] and (in_stock[item] or not present[item]):
            out[n] = i
            n += 1
    for e in excluded:
        if e >= 0:
            flags[e] = False
    return out[:n]


def _mark(source: Any, n: int, mark: Any) -> None:
    """``mark[source[j]] = j`` for the first ``n`` ids of ``source`` (the first occurrence wins)."""
    for j in range(n):
        if mark[source[j]] < 0:
            mark[source[j]] = j


def _take(source: Any, k: int, mark: Any, ids: Any, n: int) -> int:
    """Append to ``ids[:n]`` each of the first ``k`` of ``source`` not marked yet, marking it;
    the new length."""
    for j in range(k):
        item = source[j]
        if mark[item] < 0:
            mark[item] = 0
            ids[n] = item
            n += 1
    return n


def _rank_of(source: Any, n: int, ids: Any, mark: Any) -> Any:
    """For each of ``ids``, the position of its first occurrence among the first ``n`` of
    ``source``, -1 if absent; ``mark`` (per id) holds -1 on entry and on return."""
    _mark(source, n, mark)
    at = np.empty(ids.shape[0], np.int64)
    for i in range(ids.shape[0]):
        at[i] = mark[ids[i]]
    for j in range(n):
        mark[source[j]] = -1
    return at


def _retrieve(
    r_ids: Any, r_w: Any, r_ts: Any, r_cat: Any, popular: Any, cat_items: Any, cat_ranks: Any,
    share_cats: Any, shares: Any, last_cat: int,
    history: int, covis_sources: int, covis_per_source: int, covis_max: int, after_sources: int,
    now: float, user_size: float, extra: Any,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, at: Any, count: Any, pending: Any,
    present: Any, pop_log: Any, item_cat: Any,
    mark: Any, cat_share: Any, cat_recent: Any,
) -> Any:  # fmt: skip
    """The candidates (dense ids: the first ``history`` distinct recent items newest first, the
    ``covis_max`` strongest co-visited items, the wanted categories' popular items, the popular
    items, each once; then ``extra``), how many were retrieved (not extra), their category ids
    and their feature rows, in the order of ``model.candidate_features.CANDIDATE_FEATURES``:
    :func:`_sources`, then :func:`_rows` of every candidate. The recent items (``r_*``) are
    oldest first; ``mark``, ``cat_share`` and ``cat_recent`` are scratch (-1, 0, 0 on entry and
    on return)."""
    found = _sources(
        r_ids, r_w, r_ts, r_cat, popular, cat_items,
        history, covis_sources, covis_per_source, covis_max, after_sources, extra,
        slot, row_ids, row_w, row_len, at, mark,
    )  # fmt: skip
    ids = found[0]
    h_ids, h_pos, h_n, h_w, h_ts, h_cat, cv_ids, cv_w, ranked, af_ids, af_w, af_rank = found[2:]
    cats, out = _rows(
        ids, h_ids, h_pos, h_n, h_w, h_ts, h_cat, cv_ids, cv_w, ranked, af_ids, af_w, af_rank,
        popular, cat_items, cat_ranks, share_cats, shares, r_cat, last_cat, now, user_size,
        count, pending, present, pop_log, item_cat, mark, cat_share, cat_recent,
    )  # fmt: skip
    return ids, found[1], cats, out


def _sources(
    r_ids: Any, r_w: Any, r_ts: Any, r_cat: Any, popular: Any, cat_items: Any,
    history: int, covis_sources: int, covis_per_source: int, covis_max: int, after_sources: int, extra: Any,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, at: Any, mark: Any,
) -> Any:  # fmt: skip
    """The candidates of :func:`_retrieve` and how many were retrieved, with what their rows are
    computed from: :func:`_gathered`, then :func:`_pooled`."""
    gathered = _gathered(
        r_ids, r_w, r_ts, r_cat, covis_sources, covis_per_source, after_sources, slot, row_ids, row_w, row_len, at, mark
    )
    return _pooled(gathered, popular, cat_items, history, covis_max, extra, mark)


def _gathered(
    r_ids: Any, r_w: Any, r_ts: Any, r_cat: Any, covis_sources: int, covis_per_source: int, after_sources: int,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, at: Any, mark: Any,
) -> Any:  # fmt: skip
    """What a pool and its rows are computed from, before anything is ranked: the history
    (distinct items newest first, each at its last visit: position from the newest, visits,
    strongest action, time, category), the co-visitation scores and the followers' scores."""
    m = r_ids.shape[0]
    h_ids = np.empty(m, np.int32)
    h_pos = np.empty(m, np.float64)
    h_n = np.empty(m, np.float64)
    h_w = np.empty(m, np.float64)
    h_ts = np.empty(m, np.float64)
    h_cat = np.empty(m, np.int32)
    n_h = 0
    for pos in range(m):
        k = m - 1 - pos
        item = r_ids[k]
        j = mark[item]
        if j < 0:
            mark[item] = n_h
            h_ids[n_h], h_pos[n_h], h_n[n_h] = item, pos, 1.0
            h_w[n_h], h_ts[n_h], h_cat[n_h] = r_w[k], r_ts[k], r_cat[k]
            n_h += 1
        else:
            h_n[j] += 1.0
            h_w[j] = max(h_w[j], r_w[k])
    for j in range(n_h):
        mark[h_ids[j]] = -1
    h_ids = h_ids[:n_h]
    cv_ids, cv_w = covisitation._scores(h_ids[:covis_sources], covis_per_source, slot, row_ids, row_w, row_len, at)
    af_ids, af_w = covisitation._following(h_ids[:after_sources], slot, row_ids, row_w, row_len, at)
    return h_ids, h_pos[:n_h], h_n[:n_h], h_w[:n_h], h_ts[:n_h], h_cat[:n_h], cv_ids, cv_w, af_ids, af_w


def _pooled(gathered: Any, popular: Any, cat_items: Any, history: int, covis_max: int, extra: Any, mark: Any) -> Any:
    """The candidates from what :func:`_gathered` found (the first ``history`` distinct recent
    items, the ``covis_max`` strongest co-visited items, the wanted categories' popular items,
    the popular items, each once; then ``extra``), how many were retrieved, and what their rows
    are computed from: the history, the co-visitation scores, the ``covis_max`` strongest of
    them, and the followers with their ranks."""
    h_ids, h_pos, h_n, h_w, h_ts, h_cat, cv_ids, cv_w, af_ids, af_w = gathered
    n_h = h_ids.shape[0]
    ranked = cv_ids[np.argsort(-cv_w, kind="mergesort")[:covis_max]]
    af_order = np.argsort(-af_w, kind="mergesort")
    af_rank = np.empty(af_ids.shape[0], np.int64)
    for r in range(af_order.shape[0]):
        af_rank[af_order[r]] = r

    total = min(n_h, history) + ranked.shape[0] + cat_items.shape[0] + popular.shape[0] + extra.shape[0]
    ids = np.empty(total, np.int32)
    n = _take(h_ids, min(n_h, history), mark, ids, 0)
    n = _take(ranked, ranked.shape[0], mark, ids, n)
    n = _take(cat_items, cat_items.shape[0], mark, ids, n)
    n = _take(popular, popular.shape[0], mark, ids, n)
    retrieved = n
    n = _take(extra, extra.shape[0], mark, ids, n)
    for i in range(n):
        mark[ids[i]] = -1
    return ids[:n], retrieved, h_ids, h_pos, h_n, h_w, h_ts, h_cat, cv_ids, cv_w, ranked, af_ids, af_w, af_rank


def _stable_rank(w: Any, i: int) -> int:
    """The place of ``w[i]`` in a stable sort of ``w`` by ``-w`` (``np.argsort(-w, kind="mergesort")``)."""
    r = 0
    for j in range(w.shape[0]):
        if w[j] > w[i] or (w[j] == w[i] and j < i):
            r += 1
    return r


def _first(ids: Any, item: int) -> int:
    """The position of the first ``item`` in ``ids``, -1 if none."""
    for j in range(ids.shape[0]):
        if ids[j] == item:
            return j
    return -1


def _found(item: int, gathered: Any, popular: Any, cat_items: Any, history: int, covis_max: int) -> bool:
    """Whether :func:`_pooled` retrieves ``item`` (holds it before the extras), without pooling."""
    h_ids, cv_ids, cv_w = gathered[0], gathered[6], gathered[7]
    if 0 <= _first(h_ids, item) < history or _first(cat_items, item) >= 0 or _first(popular, item) >= 0:
        return True
    c = _first(cv_ids, item)
    return c >= 0 and _stable_rank(cv_w, c) < covis_max


def _candidates(
    r_ids: Any, r_w: Any, r_ts: Any, r_cat: Any, popular: Any, cat_items: Any, cat_ranks: Any,
    share_cats: Any, shares: Any, last_cat: int,
    history: int, covis_sources: int, covis_per_source: int, covis_max: int, after_sources: int,
    now: float, user_size: float, extra: Any, alone_if_missed: bool,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, at: Any, count: Any, pending: Any,
    present: Any, pop_log: Any, item_cat: Any,
    mark: Any, cat_share: Any, cat_recent: Any,
) -> Any:  # fmt: skip
    """:func:`_sources` (the candidates, how many were retrieved), their category ids (-1 but for
    the extra candidates) and the rows of the extra candidates only (a training example's
    positive, when retrieval did not find it, is all it reads), the sources the other rows
    are computed from (:func:`_kept_rows`), packed in three arrays: each array a kernel returns
    costs its caller the boxing of a numpy array, and whether the pool is whole. With
    ``alone_if_missed``, when retrieval finds none of ``extra``, the candidates are the extras
    alone (none retrieved) with their rows, found without ranking or pooling anything, and the
    pool is not whole: its sources hold no ranking."""
    gathered = _gathered(
        r_ids, r_w, r_ts, r_cat, covis_sources, covis_per_source, after_sources, slot, row_ids, row_w, row_len, at, mark
    )
    h_ids, h_pos, h_n, h_w, h_ts, h_cat, cv_ids, cv_w, af_ids, af_w = gathered
    missed = alone_if_missed
    for j in range(extra.shape[0]):
        if missed and _found(extra[j], gathered, popular, cat_items, history, covis_max):
            missed = False
    if missed:
        ids = np.empty(extra.shape[0], np.int32)
        n = _take(extra, extra.shape[0], mark, ids, 0)
        ids = ids[:n]
        for i in range(n):
            mark[ids[i]] = -1
        ranked = np.empty(0, np.int32)  # none of ``ids`` ranks among the co-visited
        af_rank = np.full(af_ids.shape[0], -1, np.int64)  # only the ranks ``ids`` read
        for i in range(n):
            a = _first(af_ids, ids[i])
            if a >= 0:
                af_rank[a] = _stable_rank(af_w, a)
        retrieved = 0
    else:
        found = _pooled(gathered, popular, cat_items, history, covis_max, extra, mark)
        ids, retrieved, ranked, af_rank = found[0], found[1], found[10], found[13]
    extra_cats, out = _rows(
        ids[retrieved:], h_ids, h_pos, h_n, h_w, h_ts, h_cat, cv_ids, cv_w, ranked, af_ids, af_w, af_rank,
        popular, cat_items, cat_ranks, share_cats, shares, r_cat, last_cat, now, user_size,
        count, pending, present, pop_log, item_cat, mark, cat_share, cat_recent,
    )  # fmt: skip
    cats = np.full(ids.shape[0], -1, np.int32)
    cats[retrieved:] = extra_cats
    n_h, n_cv, n_r, n_af = h_ids.shape[0], cv_ids.shape[0], ranked.shape[0], af_ids.shape[0]
    ints = np.concatenate((h_ids, h_cat, cv_ids, ranked, af_ids))
    floats = np.concatenate((h_pos, h_n, h_w, h_ts, cv_w, af_w))
    return ids, retrieved, cats, out, (ints, floats, af_rank, n_h, n_cv, n_r, n_af), not missed


def _kept_rows(
    ids: Any, ints: Any, floats: Any, af_rank: Any, n_h: int, n_cv: int, n_r: int, n_af: int,
    popular: Any, cat_items: Any, cat_ranks: Any, share_cats: Any, shares: Any, r_cat: Any,
    last_cat: int, now: float, user_size: float,
    count: Any, pending: Any, present: Any, pop_log: Any, item_cat: Any,
    mark: Any, cat_share: Any, cat_recent: Any,
) -> Any:  # fmt: skip
    """:func:`_rows` from the sources as :func:`_candidates` packed them."""
    c, r, a = 2 * n_h, 2 * n_h + n_cv, 2 * n_h + n_cv + n_r
    w = 4 * n_h
    return _rows(
        ids, ints[:n_h], floats[:n_h], floats[n_h : 2 * n_h], floats[2 * n_h : 3 * n_h], floats[3 * n_h : w],
        ints[n_h:c], ints[c:r], floats[w : w + n_cv], ints[r:a], ints[a : a + n_af],
        floats[w + n_cv : w + n_cv + n_af], af_rank,
        popular, cat_items, cat_ranks, share_cats, shares, r_cat, last_cat, now, user_size,
        count, pending, present, pop_log, item_cat, mark, cat_share, cat_recent,
    )  # fmt: skip


def _rows(
    ids: Any, h_ids: Any, h_pos: Any, h_n: Any, h_w: Any, h_ts: Any, h_cat: Any,
    cv_ids: Any, cv_w: Any, ranked: Any, af_ids: Any, af_w: Any, af_rank: Any,
    popular: Any, cat_items: Any, cat_ranks: Any, share_cats: Any, shares: Any, r_cat: Any,
    last_cat: int, now: float, user_size: float,
    count: Any, pending: Any, present: Any, pop_log: Any, item_cat: Any,
    mark: Any, cat_share: Any, cat_recent: Any,
) -> Any:  # fmt: skip
    """The category ids and feature rows of ``ids`` (any items, candidates or not) from what
    :func:`_sources` found: a row depends on its item and the sources only, not on which other
    rows are computed with it."""
    n = ids.shape[0]
    m = r_cat.shape[0]
    h_at = _rank_of(h_ids, h_ids.shape[0], ids, mark)
    cv_at = _rank_of(cv_ids, cv_ids.shape[0], ids, mark)
    cr_at = _rank_of(ranked, ranked.shape[0], ids, mark)
    af_at = _rank_of(af_ids, af_ids.shape[0], ids, mark)
    pop_at = _rank_of(popular, popular.shape[0], ids, mark)
    cat_at = _rank_of(cat_items, cat_items.shape[0], ids, mark)
    for j in range(share_cats.shape[0]):
        cat_share[share_cats[j]] = shares[j]
    for k in range(m):
        cat_recent[r_cat[k]] += 1.0
    n_recent = max(1, m)
    top_log = pop_log[popular[0]] if popular.shape[0] > 0 else 0.0
    top_known = math.isfinite(top_log)

    cats = np.empty(n, np.int32)
    out = np.empty((n, N_CANDIDATE_FEATURES), np.float32)
    for i in range(n):
        item = ids[i]
        h = h_at[i]
        category = item_cat[item] if present[item] else 0
        if category == 0 and h >= 0:
            category = h_cat[h]
        cats[i] = category
        row = out[i]
        if h < 0:
            row[0] = row[1] = row[2] = row[3] = row[4] = row[5] = 0.0
        else:
            age = now - h_ts[h]
            age = age if age > 0.0 else 0.0
            row[0] = 1.0
            row[1] = 1.0 / (1.0 + h_pos[h])
            row[2] = math.log1p(h_n[h]) / 2.0
            row[3] = h_w[h] / 5.0
            row[4] = math.exp(-age / 600.0)
            row[5] = math.exp(-age / 86_400.0)
        c = cv_at[i]
        if c < 0:
            row[6] = row[7] = 0.0
        else:
            row[6] = math.log1p(cv_w[c])
            r = cr_at[i]
            row[7] = 0.0 if r < 0 else 1.0 / (1.0 + r)
        if category != 0:
            row[8] = cat_share[category]
            row[9] = 1.0 if category == last_cat else 0.0
            row[13] = cat_recent[category] / n_recent
            row[15] = 1.0
        else:
            row[8] = row[9] = row[13] = row[15] = 0.0
        pop = 0.0
        if present[item] and math.isfinite(pop_log[item]):
            # The popular list is re-ranked at most once a second: in a new shop its head
            # may still be an item without activity (-inf) when this one has some.
            if top_known:
                pop = 1.0 + (pop_log[item] - top_log) / 20.0
                pop = pop if pop > 0.0 else 0.0
            else:
                pop = 1.0
        row[10] = pop
        r = pop_at[i]
        row[11] = 0.0 if r < 0 else 1.0 / (1.0 + r)
        r = cat_at[i]
        row[12] = 0.0 if r < 0 else 1.0 / (1.0 + cat_ranks[r])
        row[14] = user_size
        a = af_at[i]
        if a < 0:
            row[16] = row[17] = 0.0
        else:
            row[16] = math.log1p(af_w[a])
            row[17] = 1.0 / (1.0 + af_rank[a])
        row[18] = math.log1p(count[item] + pending[item]) / 5.0
    for j in range(share_cats.shape[0]):
        cat_share[share_cats[j]] = 0.0
    for k in range(m):
        cat_recent[r_cat[k]] = 0.0
    return cats, out


def _retrieve_many(
    r_ids: Any, r_w: Any, r_ts: Any, r_cat: Any, r_at: Any, popular: Any, pop_at: Any,
    cat_items: Any, cat_ranks: Any, cat_at: Any, share_cats: Any, shares: Any, share_at: Any,
    last_cat: Any, now: Any, user_size: Any,
    history: int, covis_sources: int, covis_per_source: int, covis_max: int, after_sources: int,
    extra: Any, extra_at: Any,
    slot: Any, row_ids: Any, row_w: Any, row_len: Any, at: Any, count: Any, pending: Any,
    present: Any, pop_log: Any, item_cat: Any,
    mark: Any, cat_share: Any, cat_recent: Any,
) -> Any:  # fmt: skip
    """:func:`_retrieve` for each of several requests whose arrays are concatenated (request
    ``k``'s recent items are ``r_*[r_at[k]:r_at[k + 1]]``, its popular list
    ``popular[pop_at[k]:pop_at[k + 1]]``, and so on; ``last_cat``, ``now`` and ``user_size`` hold
    one value per request): every request's candidates, category ids and rows, concatenated
    (request ``k``'s are ``[offsets[k]:offsets[k + 1]]``), how many of each request's were
    retrieved, and the offsets."""
    n_req = last_cat.shape[0]
    parts = []
    for k in range(n_req):
        r0, r1, c0, c1, s0, s1 = r_at[k], r_at[k + 1], cat_at[k], cat_at[k + 1], share_at[k], share_at[k + 1]
        parts.append(
            _retrieve(
                r_ids[r0:r1], r_w[r0:r1], r_ts[r0:r1], r_cat[r0:r1], popular[pop_at[k] : pop_at[k + 1]],
                cat_items[c0:c1], cat_ranks[c0:c1], share_cats[s0:s1], shares[s0:s1], last_cat[k],
                history, covis_sources, covis_per_source, covis_max, after_sources,
                now[k], user_size[k], extra[extra_at[k] : extra_at[k + 1]],
                slot, row_ids, row_w, row_len, at, count, pending, present, pop_log, item_cat,
                mark, cat_share, cat_recent,
            )
        )  # fmt: skip
    offsets = np.zeros(n_req + 1, np.int64)
    for k in range(n_req):
        offsets[k + 1] = offsets[k] + parts[k][0].shape[0]
    total = offsets[n_req]
    ids = np.empty(total, np.int32)
    retrieved = np.empty(n_req, np.int64)
    cats = np.empty(total, np.int32)
    out = np.empty((total, N_CANDIDATE_FEATURES), np.float32)
    for k in range(n_req):
        p_ids, p_retrieved, p_cats, p_out = parts[k]
        s, e = offsets[k], offsets[k + 1]
        ids[s:e] = p_ids
        retrieved[k] = p_retrieved
        cats[s:e] = p_cats
        out[s:e] = p_out
    return ids, retrieved, cats, out, offsets


def warm_up() -> None:
    """Run every kernel once on a tiny catalog and index (``model.kernels.warm``)."""
    from state.item import ItemState

    catalog = Catalog(3600.0)
    state = ItemState()
    state.apply_catalog("c", "", 1.0, True, 0.0)
    catalog.upsert("a", state)
    index = CovisIndex(max_items=1, max_neighbors=1, ids=catalog.item_ids)
    user = UserState()
    user.apply_click("a", "click", 1.0, "c", 3600.0)
    index.observe(user, "b")
    index.pair("b", ["a"])
    index.scores(user, 1, 1)
    index.following(user, 1)
    index.sources_of(user, 1, 1, ["b", "a"])
    index.held_by(["a"], ["b", "a"])
    retrieve(user, 2.0, catalog, index, [("c", 1.0)], extra=["z"])
    retrieve(user, 2.0, catalog, index, [("c", 1.0)], extra=["z"], lazy=True, alone_if_missed=True).rows([0])
    lazy = retrieve(user, 2.0, catalog, index, [("c", 1.0)], extra=["z"], lazy=True)
    lazy.rows([len(lazy.items) - 1])
    lazy.with_extra(["y"]).rows([0, 1])
    lazy.eligible(catalog, {"a"})
    retrieve_many([user, UserState()], 2.0, catalog, index, [[("c", 1.0)], []])
