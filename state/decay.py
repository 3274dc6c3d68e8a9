"""Exponentially decayed weights: recent behaviour counts more than old behaviour.

Weights are stored at one reference time and halve every ``half_life`` seconds after it. Events may
arrive slightly out of order; an older event adds its amount already decayed to the reference time,
so the result does not depend on arrival order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import itemgetter

#: Default half-lives: a shopper's category interests fade over hours, an item's popularity a
#: little slower (the engine's settings, training and evaluation all start from these).
INTEREST_HALF_LIFE_S = 3 * 3600.0
POPULARITY_HALF_LIFE_S = 6 * 3600.0

_VALUE = itemgetter(0)


def decay_factor(elapsed_s: float, half_life_s: float) -> float:
    if elapsed_s <= 0.0:
        return 1.0
    return math.exp2(-elapsed_s / half_life_s)


@dataclass(slots=True)
class DecayedWeights:
    """Change ``weights`` only through :meth:`add` and :meth:`keep_largest`, which forget the
    remembered :meth:`strongest`."""

    weights: dict[str, float] = field(default_factory=dict)
    ts: float = 0.0
    #: The last :meth:`strongest`: its moment, half-life, number of keys and list.
    _strongest: tuple[float, float, int, list[tuple[str, float]]] | None = field(
        default=None, repr=False, compare=False
    )

    def add(self, key: str, amount: float, ts: float, half_life_s: float) -> None:
        self._strongest = None
        if ts > self.ts:
            if self.weights:
                factor = decay_factor(ts - self.ts, half_life_s)
                for k in self.weights:
                    self.weights[k] *= factor
            self.ts = ts
        else:
            amount *= decay_factor(self.ts - ts, half_life_s)
        self.weights[key] = self.weights.get(key, 0.0) + amount

    def at(self, now: float, half_life_s: float) -> dict[str, float]:
        """The weights as they stand at ``now``."""
        factor = decay_factor(now - self.ts, half_life_s)
        return {k: w * factor for k, w in self.weights.items()}

    def shares(self, now: float, half_life_s: float) -> list[tuple[str, float]]:
        """Every key with its share of the total at ``now``, strongest first, ties in key order
        ([] when the total is 0): :meth:`strongest` of them all."""
        return self.strongest(now, half_life_s, len(self.weights))

    def strongest(self, now: float, half_life_s: float, n: int) -> list[tuple[str, float]]:
        """The first ``n`` of :meth:`shares`, only they divided. Remembered for the last ``now``
        and ``n`` (any ``n`` holding every key is one) until the weights change: one event reads
        them for its features, its retrieval, its rules and its training example, and what is
        derived from the list can be kept with it (it is shared: do not change it)."""
        n = min(n, len(self.weights))
        memo = self._strongest
        if memo is not None and memo[0] == now and memo[1] == half_life_s and memo[2] == n:
            return memo[3]
        # :meth:`at`'s values and their sum in the same order, ranked by value (a stable sort).
        factor = decay_factor(now - self.ts, half_life_s)
        decayed = [w * factor for w in self.weights.values()]
        total = sum(decayed)
        out: list[tuple[str, float]] = []
        if not total <= 0.0:  # as NaN compares
            ranked = sorted(zip(decayed, self.weights, strict=True), key=_VALUE, reverse=True)
            out = [(k, w / total) for w, k in ranked[:n]]
        self._strongest = (now, half_life_s, n, out)
        return out

    def total(self) -> float:
        return sum(self.weights.values())

    def keep_largest(self, n: int) -> None:
        if len(self.weights) > n:
            self._strongest = None
            kept = sorted(self.weights.items(), key=lambda kv: kv[1], reverse=True)[:n]
            self.weights = dict(kept)

    def to_fields(self) -> list[object]:
        return [self.weights, self.ts]

    @classmethod
    def from_fields(cls, fields: list[object]) -> DecayedWeights:
        weights, ts = fields
        return cls(weights=dict(weights), ts=float(ts))  # type: ignore[call-overload,arg-type]
