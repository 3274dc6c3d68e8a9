"""Serving one batch of shoppers split into experiment arms.

Each arm names its model (the current one, a pinned snapshot version or a trainer variant's) and
whether the shop's merchandising rules apply. The batch's users are grouped by model and each group is scored in one
batched call, each user under the plan of their arm's rules: arms that differ in rules only cost one
call, as without an experiment (a scoring call has costs per batch as well as per user). Without
an experiment the batch is served exactly as before.

A batch's arms share its scorings (:class:`BatchScorings`): the shadow arm, served after the others
on the same users, reuses their pools (retrieval and feature rows do not depend on the weights),
and when its model scored the very same users it reuses the scores too and only ranks them under
its own rules and k.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from model.experiments import Arm
from model.retrieval import CandidatePool
from model.rules import RuleBook, RulePlan
from model.scoring import NeuralServingModel, ScoredBatch
from model.serving import Recommendations, ServingModel
from state.user import UserState

#: Pinned snapshot versions a worker holds at most (each costs the snapshot's weights in memory).
PINNED_MAX = 4
#: The model serving a pinned version, or None when the worker does not hold it.
Pinned = Callable[[int], ServingModel | None]
#: The model of a trainer variant, or None when the worker has none of it yet.
Variants = Callable[[str], ServingModel | None]


def _none(key: str) -> ServingModel | None:
    return None


def arm_model(arm: Arm, current: ServingModel, pinned: Pinned, variants: Variants = _none) -> tuple[ServingModel, bool]:
    """The model serving ``arm`` and whether it is the one asked for (False: a pinned version
    or a variant's model this worker does not hold, served with the current model instead)."""
    if arm.variant is not None:
        model = variants(arm.variant)
        return (model, True) if model is not None else (current, False)
    version = arm.pinned
    if version is None or version == current.version:
        return current, True
    held = pinned(version)
    return (held, True) if held is not None else (current, False)


def serve(
    current: ServingModel,
    pinned: Pinned,
    rules: RuleBook,
    user_ids: Sequence[str],
    users: Sequence[UserState],
    arms: Sequence[Arm] | None,
    *,
    now: float,
    k: int,
    half_life_s: float,
    scorings: BatchScorings | None = None,
    interests: bool = True,
    variants: Variants = _none,
) -> list[tuple[Recommendations, ServingModel, bool]]:
    """Per user: the recommendation, the model that made it, and whether that model is the one
    the user's arm asked for (always True outside an experiment, ``arms`` None). Inside one,
    ``scorings`` holds what the batch's arms scored already, reused and added to; the interest
    head's categories are left out when ``interests`` is False."""
    if arms is None:
        plans = rules.plans(user_ids, users, now, half_life_s)
        return [(rec, current, True) for rec in current.recommend_many(users, now, k, plans)]
    chosen = [arm_model(arm, current, pinned, variants) for arm in arms]
    scorings = scorings if scorings is not None else BatchScorings()
    groups: dict[int, tuple[ServingModel, list[int]]] = {}  # by model: a variant's versions count on their own
    for n, (model, _) in enumerate(chosen):
        groups.setdefault(id(model), (model, []))[1].append(n)
    out: list[tuple[Recommendations, ServingModel, bool] | None] = [None] * len(users)
    for model, rows in groups.values():
        states = [users[n] for n in rows]
        plans = _plans(rules, [user_ids[n] for n in rows], states, [arms[n] for n in rows], now, half_life_s)
        recs = scorings.recommend(model, states, now, k, plans, interests=interests)
        for n, rec in zip(rows, recs, strict=True):
            out[n] = (rec, model, chosen[n][1])
    return [entry for entry in out if entry is not None]


class BatchScorings:
    """What the arms of one batch scored so far, for the arms served after them. A model that
    scored the very same users serves them again from its scoring under other plans or another k;
    one that :meth:`~model.scoring.NeuralServingModel.retrieves_like` a model that scored some of
    them takes their pools instead of retrieving again. Scorings are only read, never modified;
    the users' states must not change between the arms in what serving reads (the last
    recommendation is not read). Other models (test doubles) are asked as usual."""

    def __init__(self) -> None:
        self._scored: list[tuple[NeuralServingModel, ScoredBatch]] = []

    def recommend(
        self,
        model: ServingModel,
        users: Sequence[UserState],
        now: float,
        k: int,
        plans: Sequence[RulePlan | None] | None,
        *,
        interests: bool,
    ) -> list[Recommendations]:
        if not isinstance(model, NeuralServingModel) or not users:
            return model.recommend_many(users, now, k, plans)
        scored = next((s for m, s in self._scored if m is model and _same(s, users, now)), None)
        if scored is None:
            scored = model.score(users, now, self._pools(model, users, now))
            self._scored.append((model, scored))
        return model.recommend_scored(scored, k, plans, interests=interests)

    def _pools(self, model: NeuralServingModel, users: Sequence[UserState], now: float) -> list[CandidatePool | None]:
        """Each user's pool already retrieved at ``now`` by a model retrieving like ``model``."""
        known: dict[int, CandidatePool] = {}
        for other, scored in self._scored:
            if scored.now == now and other.retrieves_like(model):
                known.update(zip(map(id, scored.users), scored.pools, strict=True))
        return [known.get(id(user)) for user in users]


def _same(scored: ScoredBatch, users: Sequence[UserState], now: float) -> bool:
    return (
        scored.now == now
        and len(scored.users) == len(users)
        and all(a is b for a, b in zip(scored.users, users, strict=True))
    )


class PinnedModels:
    """The models of the snapshot versions experiments pin, at most ``limit`` held or loading (the
    oldest dropped first). A version is held when this worker served it after an experiment
    pinned it, or once loaded from the stored snapshots: a version asked for and not held is passed
    to ``load`` once (a background load, which ends in :meth:`offer` or :meth:`unfound`) and
    served meanwhile by the current model (counted by the caller), as is every version asked for
    beyond the limit."""

    def __init__(self, limit: int = PINNED_MAX, load: Callable[[int], None] = lambda version: None) -> None:
        self._limit = limit
        self._load = load
        self._models: dict[int, ServingModel] = {}
        self._loading: set[int] = set()
        self._unfound: set[int] = set()

    def __call__(self, version: int) -> ServingModel | None:
        model = self._models.get(version)
        if (
            model is None
            and version not in self._loading
            and version not in self._unfound
            and len(self._models) + len(self._loading) < self._limit
        ):
            self._loading.add(version)
            self._load(version)
        return model

    def versions(self) -> list[int]:
        return sorted(self._models)

    def offer(self, model: ServingModel, wanted: Collection[int]) -> None:
        """Keep ``model`` (served, or loaded) if its version is ``wanted``; forget the versions no
        longer wanted, held, loading or not found."""
        self._loading.discard(model.version)
        for version in [v for v in self._models if v not in wanted]:
            del self._models[version]
        self._loading &= set(wanted)
        self._unfound &= set(wanted)
        if model.version in wanted:
            self._models[model.version] = model
            while len(self._models) > self._limit:
                del self._models[min(self._models)]

    def unfound(self, version: int) -> None:
        """``version`` could not be loaded: it is not asked for again while it stays wanted."""
        self._loading.discard(version)
        self._unfound.add(version)


def _plans(
    rules: RuleBook,
    user_ids: Sequence[str],
    users: Sequence[UserState],
    arms: Sequence[Arm],
    now: float,
    half_life_s: float,
) -> list[RulePlan | None] | None:
    """Each user's plan under their arm's rules (None when no user has one)."""
    out: list[RulePlan | None] = [None] * len(users)
    for shop_rules in (True, False):
        rows = [n for n, arm in enumerate(arms) if (arm.rules == "all") == shop_rules]
        if not rows:
            continue
        plans = rules.plans(
            [user_ids[n] for n in rows], [users[n] for n in rows], now, half_life_s, shop_rules=shop_rules
        )
        if plans is not None:
            for n, plan in zip(rows, plans, strict=True):
                out[n] = plan
    return out if any(p is not None for p in out) else None
