"""What merchandising rules and reasons cost the click path, in process.

The same clicks go batch by batch, in turn, through three copies of the click path of
:mod:`streams.bench.clickpath`: the reference (no rule, reasons not computed: ``model.scoring``'s
``reasons`` replaced by an empty answer for its batches only), the engine with no rule (reasons
on), and the engine with six rules in force for every shopper (a category filter, a category
boost, an item boost, a pin, a promote, an interest-segment boost). CPU per click is the median
over batches, as in ``shopguide bench --only click``.

With ``--propagation N``, how soon a rule reaches every worker's recommendations instead: two
workers on the embedded broker, one shopper in each of the four partitions clicking every 50 ms;
N times a pin rule is put (each time another item) and, per shopper, the seconds from the
broker's acknowledgement of the rule to the publication of the first recommendation that shows
it. Run: ``python -m streams.bench.merchandising [--propagation 20]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import model.scoring
from model.rules import Rule, RuleBook, Segment
from state.user import RECENT_MAX
from streams.bench.clickpath import BATCH, Replay, as_batches, build_replay, shopper_clicks
from streams.bench.measure import percentiles
from streams.bench.shop import SimulatedShop
from streams.events import Click, Item
from streams.partitioning import partition_for
from streams.processors.base import Incoming
from streams.testing.harness import Cluster, fresh_settings
from streams.tools.broker import EmbeddedBroker, free_port
from streams.tools.rule_commands import send_rules


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


def propagation(rounds: int, work: Path) -> dict[str, Any]:
    """Seconds from a rule's acknowledgement to the first recommendation showing it, per shopper
    and round (see the module's description)."""
    found: dict[int, str] = {}
    for n in itertools.count():
        found.setdefault(partition_for(f"prop-{n}", 4), f"prop-{n}")
        if len(found) == 4:
            break
    shoppers = list(found.values())
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        cluster = Cluster(fresh_settings(broker, work / "one"))
        stop = threading.Event()
        try:
            cluster.start_worker()
            cluster.start_worker(web_port=free_port(), data_dir=work / "two")
            for n in range(40):
                item = Item(f"prop-item-{n}", "c", ts=time.time())
                cluster.producer.send(cluster.topics.items, item.item_id.encode(), item.to_json())
            cluster.producer.flush()
            cluster.wait_catalog(40)
            clicking = threading.Thread(target=_click, args=(cluster, shoppers, stop), daemon=True)
            clicking.start()
            seconds: list[float] = []
            for r in range(rounds):
                pinned = f"prop-item-{r % 40}"
                rule = {"rule_id": "prop", "kind": "pin", "item_id": pinned, "position": 1}
                send_rules(cluster.settings, [("prop", json.dumps(rule).encode())])
                acked = time.time()
                for user in shoppers:

                    def shows(m: Any, user: str = user, pinned: str = pinned, acked: float = acked) -> bool:
                        return (
                            isinstance(m, dict)
                            and m["user_id"] == user
                            and m["published_ts"] >= acked
                            and bool(m["items"])
                            and m["items"][0]["item_id"] == pinned
                        )

                    first = min(m["published_ts"] for m in cluster.recommendations.wait_for(shows, 1, 60))
                    seconds.append(first - acked)
            return {"rounds": rounds, "workers": 2, "shoppers": len(shoppers), "seconds": percentiles(seconds)}
        finally:
            stop.set()
            cluster.close()


def _click(cluster: Cluster, shoppers: Sequence[str], stop: threading.Event) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        for user in shoppers:
            click = Click(f"{user}-{n}", user, f"prop-item-{n % 40}", "view", time.time(), "c")
            cluster.producer.send(cluster.topics.clicks, user.encode(), click.to_json())
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=2048)
    parser.add_argument("--shoppers", type=int, default=256)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--propagation", type=int, default=0, help="rounds of the propagation measurement")
    args = parser.parse_args(argv)
    if args.propagation:
        with tempfile.TemporaryDirectory(prefix="shopguide-rules-") as work:
            print(json.dumps(propagation(args.propagation, Path(work)), indent=2))
        return
    shop = SimulatedShop(100_000, args.items)
    print(json.dumps(measure(shop, args.clicks, args.shoppers), indent=2))


if __name__ == "__main__":
    main()
