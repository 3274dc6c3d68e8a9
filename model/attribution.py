"""Attribution of shoppers' actions to the experiment arm whose recommendation they acted on.

A click, cart or buy on an item of the shopper's last recommendation counts for that
recommendation's arm, and for the first reason the item was there for. Each recommendation is
followed by at most one attributed action (the engine's next answer replaces it), so the rate of an
action is a proportion of recommendations, with a Wilson score interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from state.user import PublishedRecommendation

#: The actions attributed to a recommendation.
ATTRIBUTED = ("click", "cart", "buy")
#: z of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def reason_kind(reasons: Sequence[str]) -> str:
    """The kind of an item's first reason (``interest:tea`` -> ``interest``), ``none`` without
    one: a metric label of a few values, whatever the catalog's categories or rule ids."""
    return reasons[0].partition(":")[0] if reasons else "none"


def attribution(last: PublishedRecommendation | None, item_id: str, action: str) -> str | None:
    """The reason kind an action on ``item_id`` is attributed to, or None when it is not
    attributed (not an attributed action, no recommendation of an arm, not one of its items)."""
    if last is None or not last.arm or action not in ATTRIBUTED:
        return None
    for n, (recommended, _) in enumerate(last.items):
        if recommended == item_id:
            return reason_kind(last.reasons[n] if n < len(last.reasons) else [])
    return None


@dataclass(slots=True)
class ArmFigures:
    recommendations: int = 0
    actions: dict[str, int] = field(default_factory=dict)


class Tally:
    """Recommendations and attributed actions per (experiment, arm), since the process started."""

    def __init__(self) -> None:
        self._arms: dict[tuple[str, str], ArmFigures] = {}

    def recommended(self, experiment: str, arm: str, n: int = 1) -> None:
        self._figures(experiment, arm).recommendations += n

    def attributed(self, experiment: str, arm: str, action: str, n: int = 1) -> None:
        actions = self._figures(experiment, arm).actions
        actions[action] = actions.get(action, 0) + n

    def report(self) -> dict[str, dict[str, dict[str, object]]]:
        """Per experiment and arm: recommendations, attributed actions, their rates and 95% Wilson
        intervals."""
        out: dict[str, dict[str, dict[str, object]]] = {}
        for (experiment, arm), f in sorted(self._arms.items()):
            rates = {}
            for action in ATTRIBUTED:
                n = f.actions.get(action, 0)
                low, high = wilson(n, f.recommendations)
                rate = n / f.recommendations if f.recommendations else 0.0
                rates[action] = {"actions": n, "rate": round(rate, 6), "ci95": [round(low, 6), round(high, 6)]}
            out.setdefault(experiment, {})[arm] = {"recommendations": f.recommendations, "attributed": rates}
        return out

    def add_report(self, report: Mapping[str, Any]) -> None:
        """Add the counts of another tally's :meth:`report` (another worker's): its
        recommendations and attributed actions per experiment and arm. ValueError if it is not
        one (counts that are not non-negative integers, missing fields)."""
        try:
            for experiment, arms in report.items():
                for arm, figures in arms.items():
                    recommendations = figures["recommendations"]
                    actions = {action: a["actions"] for action, a in figures["attributed"].items()}
                    if not all(type(n) is int and n >= 0 for n in (recommendations, *actions.values())):
                        raise ValueError(f"counts of {experiment}/{arm} are not non-negative integers")
                    self.recommended(str(experiment), str(arm), recommendations)
                    for action, n in actions.items():
                        if action in ATTRIBUTED:
                            self.attributed(str(experiment), str(arm), action, n)
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a tally report: {exc!r}") from exc

    def _figures(self, experiment: str, arm: str) -> ArmFigures:
        figures = self._arms.get((experiment, arm))
        if figures is None:
            figures = self._arms[(experiment, arm)] = ArmFigures()
        return figures
