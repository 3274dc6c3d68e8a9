"""How long new items wait for their first click, with exploration and without: the Taobao
stream through the click path in process (``python -m streams.bench.exploration``).

The logged stream has neither item arrivals nor clicks caused by recommendations, so the replay
adds the smallest model of both, the same for both runs:

* an item arrives (a catalog record with no engagement, as from the items topic) just before its
  first event in the stream; that event is its arrival, not a click on it;
* its first click is its next logged event, or, sooner, a simulated one: each recommendation the
  click path publishes is clicked on each of its items that arrived in the replay with
  probability ``click_p`` (by default the replay's online hit rate of the engine, 0.054, spread
  over the 10 places), by a seeded draw; a simulated click counts as an engagement in the catalog
  (popularity and freshness), not in any shopper's state.

It reports, per run, the median wait (s) of the new items clicked in the replay, the share of
new items clicked at all, the median over all new items with the ones never clicked counted as
waiting until the end (a lower bound), and the online hit rate of the logged clicks (was a
shopper's next logged click among their last recommendation?). The model is the shipped warm
start, which does not learn here: both runs rank alike and differ only in the explored place.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from itertools import islice
from typing import Any

from model.offline.datasets import Interaction, default_path, read_taobao
from model.scoring import NeuralServingModel, load_warm_start
from state.catalog import Catalog
from state.item import ItemState
from streams.bench.clickpath import as_batches
from streams.events import Click
from streams.metrics import Metrics
from streams.processors.users import ActivityCounts, ClickProcessor
from streams.settings import Settings
from streams.testing.memory_store import MemoryStore
from streams.topics import Topics

CLICK_P = 0.054 / 10
#: Clicks per batch: an item's arrival precedes the batch of its first event (a few seconds of
#: the stream at most).
BATCH = 16


def replay(events: list[Interaction], slots: int, click_p: float = CLICK_P, seed: int = 0) -> dict[str, Any]:
    """One run over ``events`` with ``slots`` explored places per recommendation."""
    settings, rng = Settings(), random.Random(seed)
    topics, clock = Topics(settings), [events[0].ts]
    catalog = Catalog(settings.popularity_half_life_s, clock=lambda: clock[0], fresh_below=settings.explore_below)
    model = NeuralServingModel(
        load_warm_start(), catalog, interest_half_life_s=settings.interest_half_life_s, explore_slots=slots
    )
    metrics = Metrics()
    clicks = ClickProcessor(
        topics,
        1,
        metrics,
        MemoryStore(),
        catalog,
        lambda: model,
        ActivityCounts(),
        top_k=settings.top_k,
        interest_half_life_s=settings.interest_half_life_s,
        coalesce_after_s=1e12,
        clock=lambda: clock[0],
    )
    arrived: dict[str, float] = {}
    first_click: dict[str, float] = {}
    shown_new = 0
    stream = [Click(f"tb-{n}", e.user_id, e.item_id, e.action, e.ts, e.category) for n, e in enumerate(events)]
    pending = iter(stream)
    for batch in as_batches(stream, BATCH):
        for click in islice(pending, len(batch)):
            clock[0] = max(clock[0], click.ts)
            if click.item_id not in arrived:
                arrived[click.item_id] = click.ts
                state = ItemState()
                state.apply_catalog(click.category or "", "", None, True, click.ts)
                catalog.upsert(click.item_id, state)
            elif click.item_id not in first_click:
                first_click[click.item_id] = click.ts
        for out in clicks.process(batch):
            if out.topic != topics.recommendations or out.value is None:
                continue
            rec = json.loads(out.value)
            for item in rec["items"]:
                item_id = item["item_id"]
                if item_id in first_click or item_id not in arrived:
                    continue
                shown_new += 1
                if rng.random() < click_p:
                    first_click[item_id] = rec["event_ts"]
                    catalog.bump(item_id, catalog.category_of(item_id), "click", rec["event_ts"])
    hits = metrics.registry.get_sample_value("shopguide_online_hits_total") or 0.0
    trials = metrics.registry.get_sample_value("shopguide_online_trials_total") or 0.0
    end = events[-1].ts
    waits = [first_click[i] - t for i, t in arrived.items() if i in first_click]
    bounded = [first_click.get(i, end) - t for i, t in arrived.items()]
    return {
        "explore_slots": slots,
        "events": len(events),
        "new_items": len(arrived),
        "clicked_share": len(waits) / len(arrived),
        "median_wait_s_clicked": statistics.median(waits) if waits else None,
        "median_wait_s_all_lower_bound": statistics.median(bounded),
        "online_hit_rate": hits / trials if trials else None,
        "trials": int(trials),
        "new_item_impressions": shown_new,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.exploration")
    parser.add_argument("--count", type=int, default=12_000, help="Taobao events replayed (0: all)")
    parser.add_argument("--click-p", type=float, default=CLICK_P, help="P(a shown new item is clicked)")
    args = parser.parse_args()
    rows = (e for e in read_taobao(default_path("taobao")) if isinstance(e, Interaction))
    events = list(islice(rows, args.count) if args.count else rows)
    print(json.dumps([replay(events, slots, args.click_p) for slots in (0, 1)], indent=2))


if __name__ == "__main__":
    main()
