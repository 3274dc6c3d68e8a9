"""Candidate filtering: the business rules every recommendation obeys, whatever ranked it, and
exploration: a place of the published list for an item few shoppers have engaged with yet, so that
a new item is shown (and can be clicked) the moment it arrives, not once popularity finds it."""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import numpy as np

from model import kernels
from model.scratch import Scratch
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


def admissible_at(
    ids: np.ndarray,
    scores: np.ndarray,
    user: UserState,
    catalog: Catalog,
    k: int,
    *,
    new_share: float = 0.0,
    filtered: bool = False,
) -> list[int]:
    """:func:`admissible` over a pool of dense ids (``catalog.item_ids``) ranked by descending
    ``scores``, ties in pool order (``model.ranking.Ranking``), without the candidates at -inf
    if ``filtered``: the pool positions of the items it chooses, in its order. One compiled pass,
    no Python per candidate: only the chosen items' names are ever needed."""
    slots = new_slots(new_share, k)
    item_ids = catalog.item_ids
    touched = user.recent_arrays(item_ids, catalog.category_ids).views()[0] if slots else _NONE
    bought = _NONE
    if user.bought:
        bought = np.array([i for i in map(item_ids.get, user.bought) if i is not None], np.int32)
    a = catalog.arrays  # after ``recent_arrays``, which may assign ids
    at = kernels.compiled().admit(
        ids, scores, filtered, a.present, a.in_stock, _FLAGS.at_least(len(item_ids.names)), bought, touched, k, slots
    )
    return at.tolist()


_NONE = np.zeros(0, np.int32)
_BOUGHT, _TOUCHED, _SEEN = 1, 2, 4


#: A flag byte per item id for :func:`_admit`, 0 on entry and on return (:mod:`model.scratch`).
_FLAGS = Scratch(np.uint8, 0, 1024)


def _before(scores: Any, i: int, j: int) -> bool:
    """Whether pool position ``i`` ranks before ``j``: a higher score, or the same and first; NaN
    below every score (where a stable sort of the negated scores puts it)."""
    a, b = scores[i], scores[j]
    if a != a or b != b:  # NaN
        return b != b and (a == a or i < j)
    return a > b or (a == b and i < j)


def _sift(heap: Any, n: int, at: int, scores: Any) -> None:
    """Restore the heap order of ``heap[:n]`` below ``at``."""
    while True:
        top, left = at, 2 * at + 1
        if left < n and _before(scores, heap[left], heap[top]):
            top = left
        if left + 1 < n and _before(scores, heap[left + 1], heap[top]):
            top = left + 1
        if top == at:
            return
        heap[at], heap[top] = heap[top], heap[at]
        at = top


def _admit(
    ids: Any,
    scores: Any,
    filtered: bool,
    present: Any,
    in_stock: Any,
    flags: Any,
    bought: Any,
    touched: Any,
    k: int,
    slots: int,
) -> Any:
    """:func:`admissible`'s walk over ``ids`` by descending ``scores`` (ties in pool order), the
    flags of ``bought`` and ``touched`` ids set in ``flags`` and cleared again: the chosen pool
    positions (compiled by ``model.kernels.warm``). The order comes from a heap, popped as far
    as the walk goes: a few dozen of hundreds of candidates are ever sorted."""
    for d in bought:
        flags[d] |= _BOUGHT
    for d in touched:
        flags[d] |= _TOUCHED
    out = np.empty(max(k, 0), np.int64)
    fresh = np.zeros(max(k, 0), np.bool_)
    spare = np.empty(max(slots, 0) + 1, np.int64)
    n = fresh_in_out = n_spare = 0
    heap = np.arange(len(ids))
    size = len(heap)
    for at in range(size // 2 - 1, -1, -1):
        _sift(heap, size, at, scores)
    while size:
        p = heap[0]
        size -= 1
        heap[0] = heap[size]
        _sift(heap, size, 0, scores)
        if filtered and scores[p] == -np.inf:
            continue
        d = ids[p]
        if flags[d] & (_SEEN | _BOUGHT) or (present[d] and not in_stock[d]):
            continue
        flags[d] |= _SEEN
        is_new = not flags[d] & _TOUCHED
        if n < k:
            out[n], fresh[n] = p, is_new
            n += 1
            fresh_in_out += is_new
        elif is_new:
            spare[n_spare] = p
            n_spare += 1
        if n == k and fresh_in_out + n_spare >= slots:
            break
    for d in ids:
        flags[d] = 0
    for d in bought:
        flags[d] = 0
    for d in touched:
        flags[d] = 0
    # The worst-ranked seen items give way to the best-ranked new ones beyond the top k.
    for s in range(min(n_spare, max(0, slots - fresh_in_out))):
        last = n - 1
        while fresh[last]:
            last -= 1
        out[last : n - 1], fresh[last : n - 1] = out[last + 1 : n].copy(), fresh[last + 1 : n].copy()
        out[n - 1], fresh[n - 1] = spare[s], True
    return out[:n]


def warm_up() -> None:
    """Run the compiled walk once (``model.kernels.warm``)."""
    ids = np.array([0, 1, 1], np.int32)
    flags = np.zeros(2, np.uint8)
    kernels.compiled().admit(ids, np.zeros(3, np.float32), True, flags > 0, flags == 0, flags, ids[:1], ids[1:], 1, 1)
    kernels.compiled().admit(ids, np.zeros(3), False, flags > 0, flags == 0, flags, ids[:1], ids[1:], 1, 1)


_ITEM_ID = operator.attrgetter("item_id")

#: Places of a published top k given to fresh items (``Catalog.fresh``), unless the shop sets another.
EXPLORE_SLOTS = 1
#: Fresh items come from this many of the shopper's strongest interests.
EXPLORE_CATEGORIES = 3
#: Explored items are drawn from the newest this many fresh items of a category (each looked at
#: once at most: a bounded cost per click); the new ones first, while they have few engagements.
EXPLORE_WINDOW = 16


def explore_categories(user: UserState) -> list[str]:
    """Where a shopper's explored items come from: their strongest interests (the order of decayed
    weights does not change with time), else the category of their last click."""
    weights = user.interests.weights
    if weights:
        return sorted(weights, key=weights.__getitem__, reverse=True)[:EXPLORE_CATEGORIES]
    last = user.recent[-1].category if user.recent else ""
    return [last] if last else []


def explore_seed(user: UserState) -> int:
    """The draw of a shopper's explored items: a hash of their last click, so that a replay
    explores the same items and every click may show another."""
    if not user.recent:
        return 0
    last = user.recent[-1]
    # CRC32's low bits barely differ between similar ids; Fibonacci hashing spreads them.
    return (zlib.crc32(f"{last.item_id}|{last.ts!r}".encode()) * 0x9E3779B97F4A7C15 % 2**64) >> 32


def explore(
    chosen: Sequence[tuple[str, float]],
    user: UserState,
    catalog: Catalog,
    k: int,
    slots: int,
    *,
    allowed: Callable[[str, str], bool] | None = None,
    placed: Collection[str] = (),
) -> tuple[list[tuple[str, float]], list[str]]:
    """``chosen`` (at most ``k``) with up to ``slots`` fresh items of the shopper's
    :func:`explore_categories` at its end, and those items. A fresh item is explored if it is in
    stock, not in ``chosen``, not bought or recently touched by the shopper and ``allowed(item,
    category)`` (the shop's filters); it shows the score 0.0 (it was not ranked). The shopper's
    history is read only for items with engagements: the click path counts a shopper's clicks in
    the catalog before it recommends. Explored items
    take the places of the lowest-ranked items not in ``placed`` (the shop's pins and promotes,
    which keep theirs). Which fresh items: a draw seeded by :func:`explore_seed` among the newest
    :data:`EXPLORE_WINDOW` of each category, the categories in turn."""
    if slots <= 0:
        return list(chosen), []
    categories = explore_categories(user)
    if not categories:
        return list(chosen), []
    seed = explore_seed(user)
    shown = {i for i, _ in chosen}
    bought = user.bought
    available, engaged = catalog.available, catalog.arrays.engagements
    ids = catalog.item_ids
    touched: set[str] | None = None  # the shopper's recent items, gathered on first need
    picks: list[str] = []
    start, first = seed % len(categories), seed // len(categories)
    for category in categories[start:] + categories[:start]:
        fresh = catalog.fresh(category)
        n = min(len(fresh), EXPLORE_WINDOW)
        for p in range(n):
            item_id = fresh[-1 - (first + p) % n]
            if item_id in shown or item_id in picks or not available(item_id) or item_id in bought:
                continue
            # Unengaged (the shopper's own clicks count at once): no need to read their history.
            if engaged[ids[item_id]]:
                if touched is None:
                    touched = set(map(_ITEM_ID, user.recent))
                if item_id in touched:
                    continue
            if allowed is not None and not allowed(item_id, category):
                continue
            picks.append(item_id)
            if len(picks) == slots:
                break
        if len(picks) == slots:
            break
    out = list(chosen)
    for m, item_id in enumerate(picks):
        if len(out) >= k:  # the lowest-ranked item neither placed nor explored (the last m are)
            last = next((n for n in range(len(out) - 1 - m, -1, -1) if out[n][0] not in placed), None)
            if last is None:
                return out, picks[:m]
            del out[last]
        out.append((item_id, 0.0))
    return out, picks
