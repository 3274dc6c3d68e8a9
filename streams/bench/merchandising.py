"""What merchandising rules and reasons cost the click path, in process.

What a click pays after scoring (:func:`measure`): choosing the items, their reasons, and encoding
the message and the user's state, without rules, with six rules in force for every shopper (a
category filter, a category boost, an item boost, a pin, a promote, an interest-segment boost),
and with no rule but negative feedback from every shopper (:func:`heavy_feedback`), on the click
path of :mod:`streams.bench.clickpath` (warm-start model, simulated shop).

With ``--propagation N``, how soon a rule reaches every worker's recommendations instead: two
workers on the embedded broker, one shopper in each of the four partitions clicking every 50 ms;
N times a pin rule is put (each time another item) and, per shopper, the seconds from the
broker's acknowledgement of the rule to the publication of the first recommendation that shows
it. Run: ``python -m streams.bench.merchandising [--propagation 20]``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from model.arms import BatchScorings, serve
from model.experiments import rec_id
from model.ranking import Ranking
from model.reasons import Chosen, forget_lists, reasons
from model.rules import Rule, RuleBook, Segment
from model.scoring import NeuralServingModel
from state.user import RECENT_MAX, PublishedRecommendation, UserState
from streams import messages
from streams.bench.clickpath import AB, HALF_LIFE_S, as_batches, build_replay, shopper_clicks
from streams.bench.measure import percentiles
from streams.bench.shop import SimulatedShop
from streams.engine.collector import fewer_collections, freeze_loaded
from streams.events import Click, Item
from streams.partitioning import partition_for
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


def heavy_feedback(user: UserState, ranked: Sequence[str], now: float) -> UserState:
    """A copy of ``user`` at the bounds of ``state.feedback`` for one click: who disliked their five
    best-ranked items (each with the next five as neighbours) and was shown the next 100 once, 20
    of them three times."""
    fed = UserState.from_bytes(user.to_bytes())
    for item_id in ranked[:5]:
        fed.feedback.dislike(item_id, now, ranked[5:10])
    fed.feedback.show(ranked[10:110])
    for _ in range(2):
        fed.feedback.show(ranked[10:30])
    return fed


def measure(shop: SimulatedShop, shoppers: int, repeats: int) -> dict[str, Any]:
    """:func:`_measure` with the cycle collector and BLAS as in a worker: fewer young collections,
    what was loaded frozen before the timed runs (:mod:`streams.engine.collector`; thawed after)
    and one BLAS thread (a second one spins between the interest head's small products, CPU time a
    worker does not spend)."""
    thresholds = fewer_collections()
    try:
        with threadpool_limits(limits=1):
            return _measure(shop, shoppers, repeats)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _measure(shop: SimulatedShop, shoppers: int, repeats: int) -> dict[str, Any]:
    """CPU microseconds per click of what follows scoring, for ``shoppers`` returning shoppers
    with full histories (fed through the click path first, not timed): the serving model's
    :meth:`~model.scoring.NeuralServingModel.choose` (ranking, ``admissible``, reasons) and the
    encoding of the message and the user's state, with no rule in force and under
    :func:`busy_rules`; and, of the first, the reasons' share: ``model.reasons.reasons`` on the same
    items (from rankings already walked past them, as ``choose`` leaves them; also without naming
    sources, ``reasons_unnamed_us``: the feature rows' reasons alone), and encoding with their
    reasons against without; and what the explored place adds
    (``choose`` with no rule, with the model's exploration and without). The variants run in turn
    ``repeats`` times on the same scored pools; each keeps its fastest run, the one a busy machine
    disturbed least."""
    replay = build_replay(shop)
    for batch in as_batches(shopper_clicks(shop, RECENT_MAX * shoppers, shoppers, "ret-")):
        replay.feed(batch)
    serving = replay.clicks.model()
    if not isinstance(serving, NeuralServingModel):
        raise TypeError("the click path's model is not the network")
    ids = [f"ret-{k}" for k in range(shoppers)]
    users = [UserState.from_bytes(replay.clicks.users.get(user_id, None) or b"") for user_id in ids]
    now, k = replay.clock[0], replay.clicks.top_k
    scored = serving.score(users, now)  # the batch's pools from one retrieval call, as a worker's
    pools, scores = scored.pools, scored.scores
    chosen = serving.choose(users, pools, scores, None, k)
    orders = [np.argsort(-s, kind="stable").tolist() for s in scores]
    busy = busy_rules(shop)
    fed = [heavy_feedback(u, [p.items[i] for i in o], now) for u, p, o in zip(users, pools, orders, strict=True)]

    def served(book: RuleBook, who: list[UserState] = users) -> None:
        plans = book.plans(ids, who, now, HALF_LIFE_S)
        for n, (items, why) in enumerate(serving.choose(who, pools, scores, plans, k)):
            encode(n, items, why, who)

    def encode(
        n: int, items: list[tuple[str, float]], why: list[list[str]], who: list[UserState] = users, arm: str = ""
    ) -> int:
        who[n].last = rec = PublishedRecommendation(items, [], 1, "e", now, now, why)
        if arm:
            rec.experiment, rec.arm, rec.rec_id = AB.experiment_id, arm, rec_id(ids[n], f"e{n}")
        return len(messages.recommendation(ids[n], rec)) + len(who[n].to_bytes())

    # Arms: the served batch (choose, the interest head) and its encoding with and without an
    # experiment in force (two arms on the current model, the second without the shop's rules):
    # bucketing, grouping the batch by arm, each arm's plans, rec_id and the arm's fields.
    def unsplit() -> None:
        plans = RuleBook().plans(ids, users, now, HALF_LIFE_S)
        for n, rec in enumerate(serving.recommend_scored(scored, k, plans)):
            encode(n, rec.items, rec.reasons)

    scorings = BatchScorings()  # holding the batch as scored: the arms reuse it
    scorings.recommend(serving, users, now, k, None, interests=True)

    def split() -> None:
        arms = [AB.arm_of(user_id) for user_id in ids]
        book, none = RuleBook(), lambda version: None
        recs = serve(serving, none, book, ids, users, arms, now=now, k=k, half_life_s=HALF_LIFE_S, scorings=scorings)
        for n, (rec, _, _) in enumerate(recs):
            encode(n, rec.items, rec.reasons, arm=arms[n].name)

    # Rankings walked past the chosen items, as ``choose`` leaves them: reasons read them only.
    rankings = [Ranking(pool.items, s) for pool, s in zip(pools, scores, strict=True)]
    for ranking, (items, _) in zip(rankings, chosen, strict=True):
        for item_id, _ in items:
            ranking.position(item_id)
    explored = [[item_id for (item_id, _), w in zip(*c, strict=True) if w == ["explore"]] for c in chosen]

    def explain(named: bool = True) -> None:
        batch = [
            Chosen(pool, rankings[n], items, None, explored[n], user if named else None)
            for n, (user, pool, (items, _)) in enumerate(zip(users, pools, chosen, strict=True))
        ]
        reasons(batch, serving.origins if named else None)

    def unexplored() -> None:
        slots, serving.explore_slots = serving.explore_slots, 0
        served(RuleBook())
        serving.explore_slots = slots

    def cold() -> None:
        forget_lists()
        explain()

    variants: dict[str, Callable[[], object]] = {
        "no_rule": lambda: served(RuleBook()),
        "no_rule_unexplored": unexplored,
        "busy_rules": lambda: served(busy),
        "feedback": lambda: served(RuleBook(), fed),
        "reasons_alone": explain,
        "reasons_cold": cold,
        "reasons_unnamed": lambda: explain(named=False),
        "encode_with_reasons": lambda: [encode(n, *c) for n, c in enumerate(chosen)],
        "encode_without_reasons": lambda: [encode(n, c[0], []) for n, c in enumerate(chosen)],
        "unsplit": unsplit,
        "split": split,
    }
    freeze_loaded()
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, run in variants.items():
            t0 = time.process_time()
            run()
            best[name] = min(best[name], 1e6 * (time.process_time() - t0) / shoppers)
    return {
        "shoppers": shoppers,
        "repeats": repeats,
        "catalog_items": shop.items,
        "candidates_per_shopper": round(sum(len(p.items) for p in pools) / len(pools), 1),
        "after_scoring_no_rule_us": round(best["no_rule"], 2),
        "reasons_us": round(best["reasons_alone"] + best["encode_with_reasons"] - best["encode_without_reasons"], 2),
        "reasons_alone_us": round(best["reasons_alone"], 2),
        "reasons_unnamed_us": round(best["reasons_unnamed"], 2),
        "reasons_cold_us": round(best["reasons_cold"], 2),
        "encode_reasons_us": round(best["encode_with_reasons"] - best["encode_without_reasons"], 2),
        "six_rules_add_us": round(best["busy_rules"] - best["no_rule"], 2),
        "heavy_feedback_adds_us": round(best["feedback"] - best["no_rule"], 2),
        "explore_adds_us": round(best["no_rule"] - best["no_rule_unexplored"], 2),
        "arms_add_us": round(best["split"] - best["unsplit"], 2),
    }


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
    parser.add_argument("--shoppers", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--propagation", type=int, default=0, help="rounds of the propagation measurement")
    args = parser.parse_args(argv)
    if args.propagation:
        with tempfile.TemporaryDirectory(prefix="shopguide-rules-") as work:
            print(json.dumps(propagation(args.propagation, Path(work)), indent=2))
        return
    shop = SimulatedShop(100_000, args.items)
    print(json.dumps(measure(shop, args.shoppers, args.repeats), indent=2))


if __name__ == "__main__":
    main()
