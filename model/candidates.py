"""Candidate filtering: the business rules every recommendation obeys, whatever ranked it."""

from __future__ import annotations

from collections.abc import Iterable

from state.catalog import Catalog
from state.user import UserState


def admissible(
    candidates: Iterable[tuple[str, float]], user: UserState, catalog: Catalog, k: int
) -> list[tuple[str, float]]:
    """The first ``k`` candidates, in order, that the user has not bought, that are not out of
    stock and that have not appeared before in the list."""
    bought = set(user.bought)
    seen: set[str] = set()
    out: list[tuple[str, float]] = []
    for item_id, score in candidates:
        if item_id in seen or item_id in bought or not catalog.available(item_id):
            continue
        seen.add(item_id)
        out.append((item_id, score))
        if len(out) == k:
            break
    return out
