"""Experiments: shoppers split deterministically into arms that are served differently.

An experiment (``shopguide.experiments``, validated by ``streams.events.parse_experiment``) lists
arms with shares summing to 1; every worker keeps the experiments in an :class:`ExperimentBook`.
A shopper's arm is a pure function of the experiment id and the user id (:func:`bucket`, a keyed
BLAKE2b hash, the same in every process and Python version), so any worker, before or after a
restart or a rebalance, puts a shopper in the same arm. An arm says which model serves it
(``current``, a ``pinned`` snapshot version, or the model of a ``trainer`` variant,
:mod:`model.trainer_variants`) and whether the shop's merchandising rules apply.

One arm may be the experiment's ``shadow``: it serves nobody (its share is 0) and is scored on
the same batches as the served arms, its top items written aside for comparison.

Several experiments may be defined at once; the one with the smallest id is in force and the
others wait, so that every shopper is in at most one arm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

CURRENT = "current"
PINNED = "pinned:"
TRAINER = "trainer:"
RULES = ("all", "none")
#: The shares of an experiment's arms sum to 1 within this.
SHARE_TOLERANCE = 1e-9
#: An experiment has at most this many arms (they label metrics: their number must stay small).
ARMS_MAX = 10
_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    share: float
    model: str = CURRENT  # "current", "pinned:<version>" or "trainer:<variant>"
    rules: str = "all"  # "all" or "none": whether the shop's merchandising rules apply

    @property
    def pinned(self) -> int | None:
        """The snapshot version this arm is served with, or None for the current one."""
        return int(self.model[len(PINNED) :]) if self.model.startswith(PINNED) else None

    @property
    def variant(self) -> str | None:
        """The trainer variant whose model serves this arm, or None."""
        return self.model[len(TRAINER) :] if self.model.startswith(TRAINER) else None


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    arms: tuple[Arm, ...]
    shadow: str | None = None

    def problem(self) -> str | None:
        """Why this experiment is inconsistent (None if it is not): the checks that need all its
        arms at once."""
        names = [a.name for a in self.arms]
        if not self.arms:
            return "field 'arms': at least one arm is needed"
        if len(self.arms) > ARMS_MAX:
            return f"field 'arms': at most {ARMS_MAX} arms, got {len(self.arms)}"
        if len(set(names)) != len(names):
            return "field 'arms': arm names must be unique"
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            return f"field 'arms': the shares must sum to 1, got {total!r}"
        if self.shadow is not None:
            shadow = [a for a in self.arms if a.name == self.shadow]
            if not shadow:
                return f"field 'shadow': {self.shadow!r} is not one of the arms"
            if shadow[0].share != 0.0:
                return f"field 'shadow': the shadow arm {self.shadow!r} serves nobody, its share must be 0"
        if any(a.share == 0.0 for a in self.arms if a.name != self.shadow):
            return "field 'arms': only the shadow arm may have a share of 0"
        return None

    @property
    def served(self) -> tuple[Arm, ...]:
        return tuple(a for a in self.arms if a.name != self.shadow)

    @property
    def shadow_arm(self) -> Arm | None:
        return next((a for a in self.arms if a.name == self.shadow), None)

    def arm_of(self, user_id: str) -> Arm:
        """The served arm ``user_id`` is in: the first whose cumulative share passes the user's
        point in [0, 1)."""
        point = bucket(self.experiment_id, user_id)
        edge = 0.0
        served = self.served
        for arm in served:
            edge += arm.share
            if point < edge:
                return arm
        return served[-1]  # a point within the shares' rounding of 1


def bucket(experiment_id: str, user_id: str) -> float:
    """The user's point in [0, 1) for this experiment: stable across processes and restarts
    (unlike ``hash()``), independent between experiments."""
    digest = hashlib.blake2b(f"{experiment_id}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class ExperimentBook:
    """The experiments every worker knows, by id; the smallest id is the one in force."""

    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._active: Experiment | None = None

    def __len__(self) -> int:
        return len(self._experiments)

    def put(self, experiment: Experiment) -> None:
        self._experiments[experiment.experiment_id] = experiment
        self._refresh()

    def delete(self, experiment_id: str) -> None:
        self._experiments.pop(experiment_id, None)
        self._refresh()

    def experiments(self) -> list[Experiment]:
        return [self._experiments[k] for k in sorted(self._experiments)]

    def variant_arm(self, experiment_id: str | None, arm: str | None) -> bool:
        """Whether that arm of that experiment is served by a trainer variant's model."""
        experiment = self._experiments.get(experiment_id) if experiment_id is not None else None
        return experiment is not None and any(a.name == arm and a.variant is not None for a in experiment.arms)

    @property
    def active(self) -> Experiment | None:
        return self._active

    def arms_of(self, user_ids: Sequence[str]) -> list[Arm] | None:
        """Each user's arm under the experiment in force, or None when there is none."""
        active = self._active
        if active is None:
            return None
        return [active.arm_of(u) for u in user_ids]

    def _refresh(self) -> None:
        self._active = self._experiments[min(self._experiments)] if self._experiments else None


def rec_id(user_id: str, trigger_event_id: str) -> str:
    """A recommendation's id: unique per user and triggering event, the same when the event is
    answered again."""
    return hashlib.blake2b(f"{user_id}\x00{trigger_event_id}".encode(), digest_size=12).hexdigest()
