"""Serving the multi-task network with numpy only: no TensorFlow in the worker.

:class:`NumpyNet` is the network's forward pass over a snapshot's weights, written against the same
weight names as ``model.network`` (a test checks the two agree). :class:`NeuralServingModel` is the
engine's :class:`~model.serving.ServingModel`: per agent batch it computes every user's tower outputs
in one matrix product, retrieves a few hundred candidates per user (``model.retrieval``), scores all
the users' candidates with one gather and one matrix product, and passes each ranking through
``model.candidates.admissible`` under the user's merchandising rules (``model.rules``), with the
share of each top k held for items new to the user and places for fresh items
(``model.candidates.explore``). Building it from a snapshot copies no weights,
so swapping in a new snapshot costs about the snapshot's decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise

import numpy as np

from model.candidates import EXPLORE_SLOTS, NEW_SHARE, admissible, admissible_at, explore
from model.config import TASKS, ModelConfig
from model.covisitation import CovisIndex
from model.features import (
    UserContext,
    UserRows,
    category_bucket,
    encode_rows,
    encode_texts,
    encode_users,
)
from model.ranking import Ranking
from model.reasons import Chosen, Origins, reasons
from model.related import observe_purchase
from model.retrieval import (
    CandidatePool,
    PoolBatch,
    RetrievalConfig,
    RetrievedPool,
    id_buckets_of,
    offsets_of,
    retrieve,
    retrieve_many,
)
from model.rules import RulePlan, placed_at, ruled
from model.serving import Recommendations
from model.snapshot import Snapshot, SnapshotStore
from state.catalog import Catalog, DenseIds
from state.user import UserState

WARM_START = "warmstart/warmstart.sgs"
_NO_IDS = np.zeros(0, np.int32)
_NO_VALUES = np.zeros(0)
#: The logit of a category bucket left out of a softmax (as in ``model.network``).
NEG_INF = -1e9


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class NumpyNet:
    """The network's forward pass in numpy (float32)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.config = snapshot.config
        self.w = snapshot.serving_weights()
        # The interest head's per-bucket constants for the last ``cat_ids`` array (held, so that
        # its identity is not reused): serving asks for all the catalog's categories every batch.
        self._columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _interest_columns(self, cat_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The category rows of ``cat_ids``, which of them are learned, and each bucket's column
        (-1 for a bucket not among ``cat_ids``)."""
        cached = self._columns
        if cached is None or cached[0] is not cat_ids:
            rows = self.w["category_table"][cat_ids]
            known = np.any(rows != 0, axis=1) & (cat_ids > 0)
            column = np.full(len(self.w["category_table"]), -1, np.int64)
            column[cat_ids] = np.arange(len(cat_ids))
            cached = self._columns = (cat_ids, rows, known, column)
        return cached[1], cached[2], cached[3]

    def towers(self, x: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each task tower's output [batch, tower], and the pooled text [batch, text_dim + 2]."""
        w, c = self.w, self.config
        d, dt = c.dim, c.text_dim
        items, cats, text = w["item_table"], w["category_table"], w["text_table"]
        hist = items[x["hist_items"], :d] + cats[x["hist_cats"], :d]
        hist_vec = np.einsum("brd,br->bd", hist, x["hist_weights"])
        if c.history_attention:
            hist_vec = np.concatenate([hist_vec, self._attended(hist, x["hist_actions"])], axis=-1)
        int_vec = np.einsum("bkd,bk->bd", cats[x["interest_cats"], :d], x["interest_weights"])
        text_pooled = np.einsum("btd,bt->bd", text[x["text_ids"]], x["text_weights"])
        shared = np.concatenate([hist_vec, int_vec, x["counts"], text_pooled[:, :dt]], axis=-1)
        if c.experts:
            experts = _relu(np.einsum("bx,kxh->bkh", shared, w["experts/kernel"]) + w["experts/bias"])
            logits = np.einsum("bx,txk->btk", shared, w["gates/kernel"]) + w["gates/bias"]
            gates = np.exp(logits - logits.max(axis=-1, keepdims=True))
            gates /= gates.sum(axis=-1, keepdims=True)
            mixed = np.einsum("btk,bkh->bth", gates, experts)
            task_in = {t: mixed[:, i] for i, t in enumerate(TASKS)}
        else:
            bottom = _relu(shared @ w["bottom/kernel"] + w["bottom/bias"])
            task_in = dict.fromkeys(TASKS, bottom)
        z = {t: _relu(task_in[t] @ w[f"{t}/tower/kernel"] + w[f"{t}/tower/bias"]) for t in TASKS}
        return z, text_pooled

    def _attended(self, hist: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``model.network``'s attended history [batch, dim] of ``hist`` [batch, history, dim]."""
        w = self.w
        seq = hist + w["history/position"][None] + w["history/action"][actions]
        query = seq[:, 0] @ w["history/query/kernel"] + w["history/query/bias"]
        filled = actions > 0
        logits = np.where(filled, np.einsum("brd,bd->br", seq, query) * hist.shape[-1] ** -0.5, NEG_INF)
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights *= filled / weights.sum(axis=-1, keepdims=True)
        return np.einsum("br,brd->bd", weights.astype(np.float32), seq)

    def item_vectors(self, item_ids: np.ndarray, cat_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each item's vector [n, dim] and bias [n]: its row plus its category's row, both views
        of one gathered array (``take`` and an in-place sum: a third of the time of fancy
        indexing and a sum of slices, the same float32 values)."""
        d = self.config.dim
        rows = self.w["item_table"].take(item_ids, axis=0)
        rows += self.w["category_table"].take(cat_ids, axis=0)
        return rows[:, :d], rows[:, d]

    def recommend(
        self,
        z_rec: np.ndarray,
        owner: np.ndarray,
        item_ids: np.ndarray,
        cat_ids: np.ndarray,
        features: np.ndarray,
    ) -> np.ndarray:
        """Logits of candidates [n] of several users: ``z_rec`` [users, tower], ``owner`` [n] the
        row of ``z_rec`` each candidate is scored for. One matrix product for all of a batch's
        users: a few hundred candidates per user are too few to outweigh numpy's cost per call."""
        w = self.w
        vec, bias = self.item_vectors(item_ids, cat_ids)
        user_vec = (z_rec @ w["recommend/user/kernel"] + w["recommend/user/bias"]).take(owner, axis=0)
        kernel = w["recommend/features/kernel"]
        nf = features.shape[1]
        # In place where a sum of [n, ...] arrays would allocate another: the same operations in
        # the same order, so the same float32 results.
        hidden = features @ kernel[:nf]
        hidden += (z_rec @ kernel[nf:] + w["recommend/features/bias"]).take(owner, axis=0)
        np.maximum(hidden, 0.0, out=hidden)
        logits = np.einsum("nd,nd->n", vec, user_vec)
        logits += bias
        logits += (hidden @ w["recommend/features/out"])[:, 0]
        logits += w["recommend/bias"][0]
        logits += features @ w["recommend/wide"]
        return logits

    def interest(
        self, z_int: np.ndarray, x: dict[str, np.ndarray], cat_ids: np.ndarray, *, unlearned: str = "neutral"
    ) -> np.ndarray:
        """Interest logits [users, len(cat_ids)] for distinct category buckets ``cat_ids``.

        A bucket whose row is all zero is a category the model has not learned (training leaves
        the rows of buckets it never saw at zero, and the warm start zeroes the category rows of
        its training shops). Its learnt part ``q . v + bias`` carries no evidence, so it is
        replaced by the mean learnt part of the learned buckets among ``cat_ids`` (``"neutral"``,
        serving: "a typical category"), or by ``NEG_INF`` (``"mask"``: what training's softmax does
        with a bucket its batch does not name). Either way the learnt multiples of the user's own
        interest and recent-category shares are added to every bucket, so for categories it has
        not learned the head follows the user's own decayed shares."""
        w, d = self.w, self.config.dim
        query = z_int @ w["interest/query/kernel"] + w["interest/query/bias"]
        rows, known, column = self._interest_columns(cat_ids)
        logits = query @ rows[:, :d].T + rows[:, d]
        if unlearned == "mask":
            logits[:, ~known] = NEG_INF
        elif known.any() and not known.all():
            logits[:, ~known] = logits[:, known].mean(axis=1, keepdims=True)
        # Each user's interests, then their history, added one by one in that order (``add.at``
        # is unbuffered: a category named twice gets both, in order).
        prior = w["interest/prior"]
        weights = np.concatenate([x["interest_weights"], x["hist_weights"]], axis=1)
        scaled = np.concatenate([prior[0] * x["interest_weights"], prior[1] * x["hist_weights"]], axis=1)
        cols = column[np.concatenate([x["interest_cats"], x["hist_cats"]], axis=1)]
        added = (cols >= 0) & (weights != 0)
        np.add.at(logits, (np.nonzero(added)[0], cols[added]), scaled[added])
        return logits

    def sentiment(
        self, z_sent: np.ndarray, text_pooled: np.ndarray, item_ids: np.ndarray, cat_ids: np.ndarray
    ) -> np.ndarray:
        w, dt = self.w, self.config.text_dim
        vec, _ = self.item_vectors(item_ids, cat_ids)
        hidden = _relu(
            np.concatenate([z_sent, vec, text_pooled[:, :dt]], axis=-1) @ w["sentiment/hidden/kernel"]
            + w["sentiment/hidden/bias"]
        )
        return (hidden @ w["sentiment/out"])[:, 0] + w["sentiment/bias"][0] + text_pooled[:, dt]

    def rating(self, z_rating: np.ndarray, text_pooled: np.ndarray) -> np.ndarray:
        w, dt = self.w, self.config.text_dim
        raw = (z_rating @ w["rating/out"])[:, 0] + w["rating/bias"][0] + text_pooled[:, dt + 1]
        return 3.0 + 2.0 * np.tanh(raw)


class _Buckets:
    """Category names with their distinct hash buckets (``unique``, sorted) and, for each bucket,
    the first name that maps to it: the interest head's columns."""

    __slots__ = ("_known_ids", "first", "known", "names", "unique")

    def __init__(self, names: Sequence[str], unique: np.ndarray, first: np.ndarray) -> None:
        self.names = names
        #: The names, and "" (an item of no known category, which has no column).
        self.known = frozenset(names) | {""}
        self.unique = unique
        self.first = first
        self._known_ids: tuple[object, np.ndarray] | None = None  # the id space, and a flag per id

    def holds(self, categories: np.ndarray, ids: DenseIds) -> bool:
        """Whether every one of ``categories`` (dense ids of ``ids``) is :attr:`known`."""
        kept = self._known_ids
        if kept is None or kept[0] is not ids:
            known = ids.of(self.known)  # names new to ``ids`` get ids (no state holds them yet)
            flags = np.zeros(len(ids.names), np.bool_)
            flags[known] = True
            kept = self._known_ids = (ids, flags)
        flags = kept[1]
        return bool(len(categories) == 0 or (categories.max() < len(flags) and flags[categories].all()))

    @classmethod
    def of(cls, names: Sequence[str], config: ModelConfig) -> _Buckets:
        buckets = np.fromiter((category_bucket(n, config) for n in names), np.int32, len(names))
        unique, first = np.unique(buckets, return_index=True)
        return cls(names, unique, first)


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """A batch of users as one model scored it at ``now``: inputs ``x``, tower outputs ``z``,
    each user's candidate pool and the pool's scores. Never modified once built."""

    users: Sequence[UserState]
    now: float
    x: dict[str, np.ndarray]
    z: dict[str, np.ndarray]
    pools: list[CandidatePool]
    scores: list[np.ndarray]


class NeuralServingModel:
    """The :class:`~model.serving.ServingModel` of the multi-task network."""

    def __init__(
        self,
        snapshot: Snapshot,
        catalog: Catalog,
        *,
        interest_half_life_s: float,
        index: CovisIndex | None = None,
        retrieval: RetrievalConfig | None = None,
        interests_shown: int = 5,
        purchases: CovisIndex | None = None,
        new_share: float = NEW_SHARE,
        explore_slots: int = EXPLORE_SLOTS,
    ) -> None:
        self.snapshot = snapshot
        self.net = NumpyNet(snapshot)
        self.config = snapshot.config
        self.catalog = catalog
        self.half_life = interest_half_life_s
        self.index = index if index is not None else CovisIndex(ids=catalog.item_ids)
        #: Co-purchases (``model.related``): served and named in reasons, not used for ranking; over
        #: the catalog's item ids by default, so that reasons read both indexes in one call.
        self.purchases = purchases if purchases is not None else CovisIndex(ids=catalog.item_ids)
        self.retrieval = retrieval or RetrievalConfig()
        self.interests_shown = interests_shown
        self.new_share = new_share  # of each top k held for items new to the user (admissible)
        self.explore_slots = explore_slots  # of each top k given to fresh items (explore)
        self._catalog_buckets: _Buckets | None = None
        #: What the chosen items' reasons name their sources from.
        self.origins = Origins(
            self.index, self.retrieval.covis_sources, self.retrieval.covis_per_source, self.purchases
        )

    @property
    def version(self) -> int:
        return self.snapshot.version

    def with_snapshot(self, snapshot: Snapshot) -> NeuralServingModel:
        """The same retrieval and co-purchase indexes and catalog with new weights."""
        return type(self)(
            snapshot,
            self.catalog,
            interest_half_life_s=self.half_life,
            index=self.index,
            retrieval=self.retrieval,
            interests_shown=self.interests_shown,
            purchases=self.purchases,
            new_share=self.new_share,
            explore_slots=self.explore_slots,
        )

    def observe_click(self, user: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        self.index.observe(user, item_id)
        if action == "buy":
            observe_purchase(self.purchases, user, item_id)

    def pool(
        self,
        user: UserState,
        now: float,
        extra: Sequence[str] = (),
        half_life_s: float | None = None,
        *,
        lazy: bool = False,
        alone_if_missed: bool = False,
    ) -> CandidatePool:
        """Retrieval for one user (also what training examples sample negatives from, with their
        interests' ``half_life_s``; default this model's); ``lazy``: rows only for the candidates
        asked for, ``alone_if_missed``: the extras alone if retrieval misses them all
        (:func:`~model.retrieval.retrieve`)."""
        half_life = self.half_life if half_life_s is None else half_life_s
        interests = user.interest_weights(now, half_life, self.config.interests)
        return retrieve(
            user, now, self.catalog, self.index, interests, self.retrieval, extra,
            lazy=lazy, alone_if_missed=alone_if_missed,
        )  # fmt: skip

    def pools(self, users: Sequence[UserState], now: float) -> list[CandidatePool]:
        """:meth:`pool` for each of ``users`` at ``now``, in one retrieval pass."""
        interests = [u.interest_weights(now, self.half_life, self.config.interests) for u in users]
        return list(retrieve_many(users, now, self.catalog, self.index, interests, self.retrieval))

    def user_inputs(self, users: Sequence[UserState], now: float) -> dict[str, np.ndarray]:
        """The users' inputs at ``now`` (their ``model.features.user_context``, encoded), read from
        the arrays kept with their states: no Python work per history item."""
        c, catalog = self.config, self.catalog
        item_ids, category_ids = catalog.item_ids, catalog.category_ids
        recent = [u.recent_arrays(item_ids, category_ids).views() for u in users]
        interests = [
            u.interest_arrays(u.interest_weights(now, self.half_life, c.interests), category_ids) for u in users
        ]
        # Each user's last ``c.history`` items, newest first, as places in the joined arrays.
        held = np.fromiter((len(v[0]) for v in recent), np.int64, len(users))
        lengths = np.minimum(held, c.history)
        starts = np.cumsum(lengths) - lengths
        at = np.repeat(np.cumsum(held) - 1 + starts, lengths) - np.arange(int(lengths.sum()))
        rows = UserRows(
            lengths,
            id_buckets_of(item_ids, c.item_buckets, np.concatenate([_NO_IDS, *(v[0] for v in recent)])[at]),
            id_buckets_of(category_ids, c.category_buckets, np.concatenate([_NO_IDS, *(v[3] for v in recent)])[at]),
            np.concatenate([_NO_VALUES, *(v[1] for v in recent)])[at],
            np.fromiter((len(i[0]) for i in interests), np.int64, len(users)),
            id_buckets_of(category_ids, c.category_buckets, np.concatenate([_NO_IDS, *(i[0] for i in interests)])),
            np.concatenate([_NO_VALUES, *(i[1] for i in interests)]),
            [n for u in users for n in (*u.counts, u.reviews)],
        )
        return encode_rows(rows, c) | encode_texts([""] * len(users), c)

    def _inputs(self, contexts: Sequence[UserContext], texts: Sequence[str]) -> dict[str, np.ndarray]:
        return encode_users(contexts, self.config) | encode_texts(texts, self.config)

    def recommend_many(
        self, users: Sequence[UserState], now: float, k: int, plans: Sequence[RulePlan | None] | None = None
    ) -> list[Recommendations]:
        if not users:
            return []
        return self.recommend_scored(self.score(users, now), k, plans)

    def score(
        self, users: Sequence[UserState], now: float, pools: Sequence[CandidatePool | None] | None = None
    ) -> ScoredBatch:
        """The batch's tower outputs, pools and scores; ``pools`` gives the pools already retrieved
        (by this model or one that :meth:`retrieves_like` it; None: retrieve that user's)."""
        x = self.user_inputs(users, now)
        z, _ = self.net.towers(x)
        found: list[CandidatePool | None] = list(pools) if pools is not None else [None] * len(users)
        missing = [n for n, p in enumerate(found) if p is None]
        for n, pool in zip(missing, self.pools([users[n] for n in missing], now), strict=True):
            found[n] = pool
        retrieved = [p for p in found if p is not None]
        return ScoredBatch(users, now, x, z, retrieved, self.score_pools(z["recommend"], retrieved))

    def recommend_scored(
        self, scored: ScoredBatch, k: int, plans: Sequence[RulePlan | None] | None = None, *, interests: bool = True
    ) -> list[Recommendations]:
        """Each user's top ``k`` of a batch this model scored, under ``plans``; the interest head's
        categories too unless ``interests`` is False (then none). The batch is only read, so it
        can be served again under other plans or another ``k``."""
        users = scored.users
        shown = self._interests(scored.z["interest"], scored.x, users) if interests else [[] for _ in users]
        chosen = self.choose(users, scored.pools, scored.scores, plans, k)
        return [Recommendations(items, shown[row], why) for row, (items, why) in enumerate(chosen)]

    def retrieves_like(self, other: NeuralServingModel) -> bool:
        """Whether ``other`` retrieves the same pool as this model for any user and moment: the
        same retrieval code and settings, catalog, co-visitation index and interests (their
        half-life and how many a snapshot's config keeps). The weights play no part."""
        return (
            type(self).pool is type(other).pool
            and type(self).pools is type(other).pools
            and self.catalog is other.catalog
            and self.index is other.index
            and self.retrieval == other.retrieval
            and self.half_life == other.half_life
            and self.config.interests == other.config.interests
        )

    def choose(
        self,
        users: Sequence[UserState],
        pools: Sequence[CandidatePool],
        scores: Sequence[np.ndarray],
        plans: Sequence[RulePlan | None] | None,
        k: int,
    ) -> list[tuple[list[tuple[str, float]], list[list[str]]]]:
        """Each user's top ``k`` of a scored pool under its rules, with its fresh items explored,
        and each item's reasons (the batch's in one pass)."""
        batch = []
        catalog = self.catalog
        for row, (user, pool, s) in enumerate(zip(users, pools, scores, strict=True)):
            plan = plans[row] if plans else None
            if plan is not None:
                if isinstance(pool, RetrievedPool) and pool.catalog is catalog:
                    s = plan.rescore_ids(pool.ids, pool.cat_ids, s, catalog.item_ids, catalog.category_ids)
                else:
                    s = plan.rescore(pool.items, pool.categories, s)
            ranking, items = self._admitted(user, pool, s, plan, k)
            items, explored = explore(
                items,
                user,
                self.catalog,
                k,
                self.explore_slots,
                allowed=plan.unasked if plan is not None else None,
                placed=plan.placed() if plan is not None else (),
            )
            batch.append(Chosen(pool, ranking, items, plan, explored, user))
        return [(c.items, why) for c, why in zip(batch, reasons(batch, self.origins), strict=True)]

    def _admitted(
        self, user: UserState, pool: CandidatePool, scores: np.ndarray, plan: RulePlan | None, k: int
    ) -> tuple[Ranking, list[tuple[str, float]]]:
        """The pool's ranking and the user's top ``k`` of it under the business filter and the
        rules' placements: over dense ids in one compiled pass, the placed items looked up alone
        (no Python per candidate), unless the pool holds names: then walked by :func:`ruled`."""
        if isinstance(pool, RetrievedPool) and pool.item_ids is self.catalog.item_ids:
            at = admissible_at(
                pool.ids, scores, user, self.catalog, k, new_share=self.new_share, filtered=plan is not None
            )
            names = self.catalog.item_ids.names
            items = [(names[d], s) for d, s in zip(pool.ids.take(at).tolist(), scores.take(at).tolist(), strict=True)]
            known = {i: p for (i, _), p in zip(items, at, strict=True)}
            if plan is not None and (plan.pins or plan.promotes):
                items, placed = placed_at(plan, items, pool.ids, scores, user, self.catalog, k)
                known.update(placed)
            return Ranking(lambda: pool.items, scores, known), items
        ranking = Ranking(pool.items, scores)
        return ranking, ruled(plan, ranking, user, self.catalog, k, new_share=self.new_share)

    def select(self, ranked: list[tuple[str, float]], user: UserState, k: int) -> list[tuple[str, float]]:
        """The top ``k`` of a ranking that the shop publishes: the business filter, with this
        model's share of items new to the user."""
        return admissible(ranked, user, self.catalog, k, new_share=self.new_share)

    def rank(self, z_rec: np.ndarray, pool: CandidatePool) -> list[tuple[str, float]]:
        """The pool's items by descending probability of engagement, for one user's ``z_rec``."""
        [scores] = self.score_pools(z_rec[None], [pool])
        return list(Ranking(pool.items, scores))

    def score_pools(self, z_rec: np.ndarray, pools: Sequence[CandidatePool]) -> list[np.ndarray]:
        """P(engagement) of each pool's candidates, for the users of ``z_rec`` [users, tower]."""
        c = self.config
        batch = PoolBatch.of(pools)
        if batch is not None:  # one retrieval pass's pools: its arrays as they are
            item_ids, cat_ids = batch.buckets(c.item_buckets, c.category_buckets)
            features, offsets = batch.features, batch.offsets
        else:
            buckets = [p.buckets(c.item_buckets, c.category_buckets) for p in pools]
            item_ids = np.concatenate([b[0] for b in buckets])
            cat_ids = np.concatenate([b[1] for b in buckets])
            features = np.concatenate([p.features for p in pools])
            offsets = offsets_of([p.features for p in pools])
        owner = np.repeat(np.arange(len(pools)), np.diff(offsets))
        probs = _sigmoid(self.net.recommend(z_rec, owner, item_ids, cat_ids, features))
        return [probs[s:e] for s, e in pairwise(offsets.tolist())]

    def _interests(
        self, z_int: np.ndarray, x: dict[str, np.ndarray], users: Sequence[UserState]
    ) -> list[list[tuple[str, float]]]:
        """The interest head's distribution over the categories the catalog or these users know,
        strongest first (the top ``interests_shown`` per user). One matrix product for the batch;
        what depends on the catalog's categories alone is kept while they stay the same, so that a
        batch costs no Python work per catalog category (100,000 items hold 5,000 of them)."""
        catalog_names = self.catalog.categories()
        buckets = self._catalog_buckets
        if buckets is None or buckets.names is not catalog_names:
            buckets = self._catalog_buckets = _Buckets.of(catalog_names, self.config)
        known = buckets.known
        held = known.issuperset
        category_ids = self.catalog.category_ids
        recent = [u.recent_arrays(self.catalog.item_ids, category_ids).views()[3] for u in users]
        if not (
            all(held(u.interests.weights) for u in users)
            and buckets.holds(np.concatenate([_NO_IDS, *recent]), category_ids)
        ):
            extra = [
                c
                for c in dict.fromkeys(
                    [*(c for u in users for c in u.interests.weights), *(r.category for u in users for r in u.recent)]
                )
                if c not in known
            ]
            if extra:  # categories of these users that the catalog does not hold (yet)
                buckets = _Buckets.of((*catalog_names, *extra), self.config)
        names, unique, first = buckets.names, buckets.unique, buckets.first
        if not names:
            return [[] for _ in users]
        logits = self.net.interest(z_int, x, unique)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        shown = min(self.interests_shown, len(unique))
        top = np.argpartition(-p, shown - 1, axis=1)[:, :shown]
        weights = np.take_along_axis(p, top, axis=1)
        best = np.argsort(-weights, axis=1, kind="stable")
        heads = np.take_along_axis(first[top], best, axis=1).tolist()
        weights = np.take_along_axis(weights, best, axis=1).tolist()
        return [
            [(names[head], weight) for head, weight in zip(hs, ws, strict=True)]
            for hs, ws in zip(heads, weights, strict=True)
        ]

    @property
    def sentiment_threshold(self) -> float:
        return self.config.sentiment_threshold

    def sentiment_logits(self, texts: Sequence[str]) -> np.ndarray:
        """The sentiment head's logit of each review text, scored without user or item context,
        before calibration."""
        x = self._inputs([UserContext.empty()] * len(texts), texts)
        z, text_pooled = self.net.towers(x)
        zeros = np.zeros(len(texts), np.int32)
        return self.net.sentiment(z["sentiment"], text_pooled, zeros, zeros)

    def sentiment_many(self, texts: Sequence[str]) -> list[float]:
        """Calibrated P(positive) of each review text (``ModelConfig.sentiment_calibration``)."""
        if not texts:
            return []
        slope, intercept = self.config.sentiment_calibration
        return [float(p) for p in _sigmoid(slope * self.sentiment_logits(texts) + intercept)]

    def rating_many(self, texts: Sequence[str]) -> list[float]:
        """Predicted 1-5 rating of each review text."""
        if not texts:
            return []
        x = self._inputs([UserContext.empty()] * len(texts), texts)
        z, text_pooled = self.net.towers(x)
        return [float(r) for r in self.net.rating(z["rating"], text_pooled)]


def serving_from_snapshot(
    snapshot: Snapshot,
    catalog: Catalog,
    *,
    interest_half_life_s: float,
    index: CovisIndex | None = None,
    new_share: float = NEW_SHARE,
    explore_slots: int = EXPLORE_SLOTS,
    purchases: CovisIndex | None = None,
) -> NeuralServingModel:
    """The engine's factory. Pass the previous model's ``index`` (and ``purchases``) to keep
    retrieval history across snapshot swaps (or use :meth:`NeuralServingModel.with_snapshot`), or
    the indexes a worker loaded from its checkpoints."""
    return NeuralServingModel(
        snapshot,
        catalog,
        interest_half_life_s=interest_half_life_s,
        index=index,
        purchases=purchases,
        new_share=new_share,
        explore_slots=explore_slots,
    )


def load_warm_start() -> Snapshot:
    """The pretrained snapshot shipped in the package (see model/README.md for how it was made)."""
    data = resources.files("model").joinpath(WARM_START).read_bytes()
    return Snapshot.from_bytes(data)


def latest_or_warm_start(directory: str) -> Snapshot:
    """The newest valid snapshot in ``directory``, or the shipped warm start when there is none
    (or only ones older than the warm start)."""
    warm = load_warm_start()
    stored = SnapshotStore(directory).latest()
    return stored if stored is not None and stored.version >= warm.version else warm
