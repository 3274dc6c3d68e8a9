"""Candidate filtering: the business rules every recommendation obeys, whatever ranked it."""

from __future__ import annotations

import math
from collections.abc import Iterable

from state.catalog import Catalog
from state.user import UserState

#: The share of a published top k held for items new to the shopper, unless the shop sets another.
NEW_SHARE = 0.3


def new_slots(new_share: float, k: int) -> int:
    """Places of a top ``k`` held for new items: ``new_share`` of ``k``, rounded up (0.3 of 10 is
    3, 0.3 of 5 is 2)."""
    if not 0.0 <= new_share <= 1.0:
        raise ValueError(f"new_share must be between 0 and 1, got {new_share}")
    return math.ceil(round(new_share * k, 9))


def admissible(
    candidates: Iterable[tuple[str, float]], user: UserState, catalog: Catalog, k: int, *, new_share: float = 0.0
) -> list[tuple[str, float]]:
    """The first ``k`` candidates, in order, that the user has not bought, that are not out of
    stock and that have not appeared before in the list.

    With ``new_share``, at least :func:`new_slots` of them (or every one the candidates hold, if
    fewer) are new to the user, i.e. not among the items the state remembers them touching (their
    recent items; bought ones are out anyway): the best-ranked new candidates beyond the first
    ``k`` take the places of the worst-ranked items the user has already seen. The list stays in
    the candidates' order, so a returning shopper is shown what else the ranking rates, not only
    what they looked at before."""
    slots = new_slots(new_share, k)
    touched = {r.item_id for r in user.recent} if slots else set()
    bought = set(user.bought)
    seen: set[str] = set()
    out: list[tuple[str, float]] = []
    fresh: list[bool] = []  # out[i] is new to the user
    fresh_in_out = 0  # sum(fresh)
    spare: list[tuple[str, float]] = []  # new candidates beyond the first k, best first
    for item_id, score in candidates:
        if item_id in seen or item_id in bought or not catalog.available(item_id):
            continue
        seen.add(item_id)
        is_new = item_id not in touched
        if len(out) < k:
            out.append((item_id, score))
            fresh.append(is_new)
            fresh_in_out += is_new
        elif is_new:
            spare.append((item_id, score))
        if len(out) == k and fresh_in_out + len(spare) >= slots:
            break
    # The worst-ranked seen items give way to the best-ranked new ones beyond the top k.
    for new in spare[: max(0, slots - fresh_in_out)]:
        last_seen = len(fresh) - 1 - fresh[::-1].index(False)
        del out[last_seen], fresh[last_seen]
        out.append(new)
        fresh.append(True)
    return out
