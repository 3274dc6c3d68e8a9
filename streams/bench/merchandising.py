"""What merchandising rules and reasons cost the click path, in process.

The same clicks go batch by batch, in turn, through three copies of the click path of
:mod:`streams.bench.clickpath`: the reference (no rule, reasons not computed: ``model.scoring``'s
``reasons`` replaced by an empty answer for its batches only), the engine with no rule (reasons
on), and the engine with six rules in force for every shopper (a category filter, a category
boost, an item boost, a pin, a promote, an interest-segment boost). CPU per click is the median
over batches, as in ``shopguide bench --only click``. Run: ``python -m streams.bench.merchandising``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import model.scoring
from model.rules import Rule, RuleBook, Segment
from state.user import RECENT_MAX
from streams.bench.clickpath import BATCH, Replay, as_batches, build_replay, shopper_clicks
from streams.bench.shop import SimulatedShop
from streams.processors.base import Incoming


def busy_rules(shop: SimulatedShop) -> RuleBook:
    """Six rules in force for every shopper of ``shop``, touching its popular items."""
    book = RuleBook()
    for rule in (
        Rule("filter-c1", "filter", category=shop.category(1)),
        Rule("boost-c2", "boost", category=shop.category(2), factor=1.5),
        Rule("boost-items", "boost", item_ids=tuple(shop.item_id(i) for i in range(0, 40, 3)), factor=2.0),
        Rule("pin", "pin", item_ids=(shop.item_id(7),), position=3),
        Rule("promote", "promote", item_ids=tuple(shop.item_id(i) for i in (11, 23, 35, 47)), slots=2),
        Rule("segment", "boost", category=shop.category(3), factor=1.2, segment=Segment(interest=shop.category(3))),
    ):
        book.put(rule)
    return book


@contextmanager
def _without_reasons() -> Iterator[None]:
    scoring = vars(model.scoring)
    real = scoring["reasons"]
    scoring["reasons"] = lambda pool, order, chosen, plan: []
    try:
        yield
    finally:
        scoring["reasons"] = real


def _per_click_us(replays: Sequence[Replay], batches: Sequence[list[Incoming]]) -> list[float]:
    """Median CPU microseconds per click of each replay; replay 0 runs without reasons."""
    spent: list[list[float]] = [[] for _ in replays]
    for batch in batches:
        for k, replay in enumerate(replays):
            with _without_reasons() if k == 0 else nullcontext():
                t0 = time.process_time()
                replay.feed(batch)
                spent[k].append(1e6 * (time.process_time() - t0) / len(batch))
    return [statistics.median(s) for s in spent]


def measure(shop: SimulatedShop, clicks: int, shoppers: int) -> dict[str, Any]:
    """CPU per click of new and of returning shoppers (histories filled first, not timed) through
    the reference, the engine without rules and the engine under :func:`busy_rules`."""
    warm = RECENT_MAX * shoppers
    new = as_batches(shopper_clicks(shop, clicks + BATCH, clicks + BATCH, "new-"))
    returning = list(shopper_clicks(shop, warm + clicks, shoppers, "ret-", new[-1][-1].timestamp_ms / 1000.0 + 1.0))
    replays = [build_replay(shop), build_replay(shop), build_replay(shop)]
    replays[2].clicks.rules = busy_rules(shop)
    _per_click_us(replays, new[:1])  # lazy set-ups
    new_us = _per_click_us(replays, new[1:])
    _per_click_us(replays, as_batches(returning[:warm]))
    returning_us = _per_click_us(replays, as_batches(returning[warm:]))
    out: dict[str, Any] = {"clicks": clicks, "returning_shoppers": shoppers, "catalog_items": shop.items}
    for kind, us in (("new", new_us), ("returning", returning_us)):
        out[f"{kind}_reference_us"] = round(us[0], 1)
        out[f"{kind}_reasons_us"] = round(us[1] - us[0], 1)
        out[f"{kind}_rules_and_reasons_us"] = round(us[2] - us[0], 1)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=2048)
    parser.add_argument("--shoppers", type=int, default=256)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args(argv)
    shop = SimulatedShop(100_000, args.items)
    print(json.dumps(measure(shop, args.clicks, args.shoppers), indent=2))


if __name__ == "__main__":
    main()
