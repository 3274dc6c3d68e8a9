"""Per-user state: what the engine remembers about one shopper, bounded in size.

A user's state is read, changed and written back once per event, in the worker that owns the user's
partition. Everything in it is bounded (recent items, interests, bought items, event ids), so a user
who clicks a hundred thousand times costs no more bytes than one who clicks fifty times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np

from state.codec import decode, encode, encode_packed, pack
from state.decay import DecayedWeights
from state.dedup import AppliedLog
from state.feedback import Feedback
from state.recent_arrays import RecentArrays
from state.recent_packed import PackedRecent

ACTIONS: tuple[str, ...] = ("view", "click", "cart", "fav", "buy")
ACTION_INDEX: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}
#: How much an action says about interest: buy > cart > fav > click > view.
ACTION_WEIGHT: dict[str, float] = {"view": 1.0, "click": 2.0, "fav": 3.0, "cart": 4.0, "buy": 5.0}
#: A configured action weight is at most this.
ACTION_WEIGHT_MAX = 1_000.0

RECENT_MAX = 50
INTERESTS_MAX = 24
BOUGHT_MAX = 100


def action_weights(text: str) -> dict[str, float]:
    """Action weights from ``"view=1,click=2,..."``: the named actions take their weights (> 0,
    at most ``ACTION_WEIGHT_MAX``), the others keep :data:`ACTION_WEIGHT`'s. These weigh interests
    and popularity; the model's inputs keep the fixed :data:`ACTION_WEIGHT` they were trained on."""
    out = dict(ACTION_WEIGHT)
    named: set[str] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        action, sep, value = (s.strip() for s in part.partition("="))
        if not sep or action not in ACTION_INDEX:
            raise ValueError(f"expected action=weight with an action of {', '.join(ACTIONS)}, got {part!r}")
        if action in named:
            raise ValueError(f"{action!r} is given twice")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{action}: {value!r} is not a number") from None
        if not (math.isfinite(weight) and 0.0 < weight <= ACTION_WEIGHT_MAX):
            raise ValueError(f"{action}: the weight must be > 0 and <= {ACTION_WEIGHT_MAX:g}, got {value}")
        named.add(action)
        out[action] = weight
    return out


@dataclass(slots=True)
class RecentItem:
    item_id: str
    action: str
    ts: float
    category: str  # "" when unknown


@dataclass(slots=True)
class PublishedRecommendation:
    """The last recommendation published for the user: served by the API, and the reference for
    the online hit rate (was the next click among these items?)."""

    items: list[tuple[str, float]]
    interests: list[tuple[str, float]]
    model_version: int
    trigger_event_id: str
    event_ts: float
    published_ts: float
    reasons: list[list[str]] = field(default_factory=list)  # per item, why it is there; [] if unknown
    #: The experiment and arm that served it ("" outside an experiment) and its id, for attribution.
    experiment: str = ""
    arm: str = ""
    rec_id: str = ""

    def item_ids(self) -> list[str]:
        return [item_id for item_id, _ in self.items]

    def to_fields(self) -> list[object]:
        """Seven fields, and the experiment's as an eighth only inside one: a recommendation outside
        an experiment encodes as it did before experiments."""
        fields: list[object] = [
            self.items,  # msgpack packs their tuples as it packs lists
            self.interests,
            self.model_version,
            self.trigger_event_id,
            self.event_ts,
            self.published_ts,
            self.reasons,
        ]
        if self.arm:
            fields.append([self.experiment, self.arm, self.rec_id])
        return fields

    @classmethod
    def from_fields(cls, f: list[object]) -> PublishedRecommendation:
        """Also the six fields of states written before reasons were kept, and the seven of
        states written before experiments."""
        items, interests, version, trigger, event_ts, published_ts, *rest = f
        experiment, arm, rec_id = (str(x) for x in rest[1]) if len(rest) > 1 else ("", "", "")  # type: ignore[attr-defined]
        return cls(
            items=[(str(i), float(s)) for i, s in items],  # type: ignore[attr-defined]
            interests=[(str(c), float(w)) for c, w in interests],  # type: ignore[attr-defined]
            model_version=int(version),  # type: ignore[call-overload]
            trigger_event_id=str(trigger),
            event_ts=float(event_ts),  # type: ignore[arg-type]
            published_ts=float(published_ts),  # type: ignore[arg-type]
            reasons=[[str(r) for r in why] for why in rest[0]] if rest else [],  # type: ignore[attr-defined]
            experiment=experiment,
            arm=arm,
            rec_id=rec_id,
        )


@dataclass(slots=True)
class UserState:
    counts: list[int] = field(default_factory=lambda: [0] * len(ACTIONS))
    recent: list[RecentItem] = field(default_factory=list)  # oldest first
    interests: DecayedWeights = field(default_factory=DecayedWeights)
    bought: list[str] = field(default_factory=list)  # oldest first, unique
    reviews: int = 0
    last: PublishedRecommendation | None = None
    applied: AppliedLog = field(default_factory=AppliedLog)
    feedback: Feedback = field(default_factory=Feedback)  # dislikes and ignored items, no engagement
    #: ``recent`` over a process's dense ids, built by :meth:`recent_arrays`; resident only.
    _arrays: RecentArrays | None = field(default=None, init=False, repr=False, compare=False)
    #: ``recent``'s items as stored, packed once each (:meth:`to_bytes`); resident only.
    _packed: PackedRecent | None = field(default=None, init=False, repr=False, compare=False)
    #: The last :meth:`interest_arrays` (its list, id space and arrays); resident only.
    _interest_arrays: tuple[object, object, np.ndarray, np.ndarray] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def apply_click(
        self,
        item_id: str,
        action: str,
        ts: float,
        category: str,
        half_life_s: float,
        weights: Mapping[str, float] = ACTION_WEIGHT,
    ) -> None:
        """Fold one click into the state. ``category`` is "" when neither the event nor the
        catalog knows it; ``weights``: each action's weight in the interests."""
        self.counts[ACTION_INDEX[action]] += 1
        self.feedback.acted(item_id)
        newest = RecentItem(item_id, action, ts, category)
        self.recent.append(newest)
        if len(self.recent) > RECENT_MAX:
            del self.recent[: len(self.recent) - RECENT_MAX]
        arrays = self._arrays
        if arrays is not None and arrays.last is (self.recent[-2] if len(self.recent) > 1 else None):
            arrays.append(item_id, ACTION_WEIGHT[action], ts, category, len(self.recent), newest)
        if category:
            self.interests.add(category, weights[action], ts, half_life_s)
            self.interests.keep_largest(INTERESTS_MAX)
        if action == "buy":
            if item_id in self.bought:
                self.bought.remove(item_id)
            self.bought.append(item_id)
            if len(self.bought) > BOUGHT_MAX:
                del self.bought[: len(self.bought) - BOUGHT_MAX]

    def recent_arrays(self, item_ids: dict[str, int], category_ids: dict[str, int]) -> RecentArrays:
        """:attr:`recent` as arrays over these dense ids (``Catalog.item_ids``, ``category_ids``;
        ids assigned to names new to them), with :data:`ACTION_WEIGHT`'s weights: kept with the
        state and extended by :meth:`apply_click`, built again when ``recent`` was changed
        otherwise or other ids are asked for."""
        arrays, recent = self._arrays, self.recent
        if (
            arrays is None
            or arrays.item_ids is not item_ids
            or arrays.category_ids is not category_ids
            or len(arrays) != len(recent)
            or arrays.last is not (recent[-1] if recent else None)
        ):
            arrays = self._arrays = RecentArrays(
                item_ids,
                category_ids,
                [r.item_id for r in recent],
                [ACTION_WEIGHT[r.action] for r in recent],
                [r.ts for r in recent],
                [r.category for r in recent],
                RECENT_MAX,
                recent[-1] if recent else None,
            )
        return arrays

    def apply_review(self) -> None:
        self.reviews += 1

    def action_counts(self) -> dict[str, int]:
        return dict(zip(ACTIONS, self.counts, strict=True))

    def interest_weights(self, now: float, half_life_s: float, n: int) -> list[tuple[str, float]]:
        """The ``n`` strongest categories at ``now``, normalised to sum to 1 over all categories:
        the same list until the interests change or another moment is asked for (shared: do not
        change it)."""
        return self.interests.strongest(now, half_life_s, n)

    def interest_arrays(
        self, interests: list[tuple[str, float]], category_ids: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``interests`` as category ids over ``category_ids`` (int32; ids assigned to names new
        to it) and shares (float64), kept for the last list asked for: serving's inputs and its
        retrieval read the same list (:meth:`interest_weights`)."""
        kept = self._interest_arrays
        if kept is not None and kept[0] is interests and kept[1] is category_ids:
            return kept[2], kept[3]
        n = len(interests)
        ids = np.fromiter(map(category_ids.__getitem__, map(itemgetter(0), interests)), np.int32, n)
        shares = np.fromiter(map(itemgetter(1), interests), np.float64, n)
        self._interest_arrays = (interests, category_ids, ids, shares)
        return ids, shares

    def last_ts(self) -> float:
        return self.recent[-1].ts if self.recent else 0.0

    def to_bytes(self) -> bytes:
        """Seven fields, and the feedback as an eighth only when there is any: a state without
        feedback encodes as it did before feedback was kept. The recent items are packed once
        each and kept with the state (a click packs one), the rest on every call. A state's
        first store packs the list in one call instead: a state decoded for one event and dropped
        (not resident) would pay a call per item for parts it never reuses."""
        rest = [
            self.interests.to_fields(),
            self.bought,
            self.reviews,
            self.last.to_fields() if self.last is not None else None,
            self.applied.to_fields(),
        ]
        if self.feedback:
            rest.append(self.feedback.to_fields())
        if self._packed is None:
            self._packed = PackedRecent(_recent_fields)
            return encode([self.counts, list(map(_recent_fields, self.recent)), *rest])
        return encode_packed([pack(self.counts), self._packed.array(self.recent)], rest)

    @classmethod
    def from_bytes(cls, data: bytes) -> UserState:
        counts, recent, interests, bought, reviews, last, applied, *rest = decode(data, "user")
        return cls(
            counts=list(counts),
            recent=[RecentItem(i, ACTIONS[a], t, c) for i, a, t, c in recent],
            interests=DecayedWeights.from_fields(interests),
            bought=list(bought),
            reviews=int(reviews),
            last=PublishedRecommendation.from_fields(last) if last is not None else None,
            applied=AppliedLog.from_fields(applied),
            feedback=Feedback.from_fields(rest[0]) if rest else Feedback(),
        )


def _recent_fields(item: RecentItem) -> list[object]:
    """A recent item as stored."""
    return [item.item_id, ACTION_INDEX[item.action], item.ts, item.category]
