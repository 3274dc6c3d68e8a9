"""The click path in one process, without Kafka: the engine's click and review processors over the
warm-start serving model, a real catalog and a dict store, fed fixed batches of a simulated shop.

It is the reference any faster click path must equal: the golden test (tests/streams/
test_click_golden.py) replays 6,400 events and compares the digests of what came out with recorded
ones, and ``shopguide bench --only click`` times it per click, for new and for returning shoppers.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, islice, repeat
from typing import Any

from threadpoolctl import threadpool_limits

from model.experiments import Arm, Experiment, ExperimentBook
from model.rules import RulePlan
from model.scoring import NeuralServingModel, load_warm_start
from model.serving import Recommendations, ServingModel
from state.catalog import Catalog
from state.item import ItemState
from state.user import RECENT_MAX, UserState
from streams.bench.dict_covisitation import DictCovisIndex
from streams.bench.reference_retrieval import ReferenceServingModel
from streams.bench.shop import SimulatedShop
from streams.engine.collector import fewer_collections, freeze_loaded
from streams.events import Click, Review
from streams.learning.example_stream import ExampleBuilder, ExampleSink
from streams.metrics import Metrics
from streams.processors.base import Incoming, Outgoing
from streams.processors.resident import ResidentUsers
from streams.processors.users import ActivityCounts, ClickProcessor, ReviewProcessor
from streams.settings import Settings
from streams.testing.memory_store import MemoryStore
from streams.topics import Topics

HALF_LIFE_S = 3 * 3600.0
START_TS = 1.8e9
#: Every ``OUT_OF_STOCK``-th item of the catalog is out of stock.
OUT_OF_STOCK = 17
BATCH = 256


class ShellModel:
    """A model that ranks nothing and learns nothing: the click path with it is the processing-free
    shell (parsing, effect marks, state load, update and store, messages), the floor under any
    implementation of retrieval and ranking."""

    version = 0
    sentiment_threshold = 0.5

    def observe_click(self, user: UserState, item_id: str, action: str, ts: float, category: str) -> None:
        return None

    def recommend_many(
        self, users: Sequence[UserState], now: float, k: int, plans: Sequence[RulePlan | None] | None = None
    ) -> list[Recommendations]:
        return [Recommendations([], []) for _ in users]

    def sentiment_many(self, texts: Sequence[str]) -> list[float]:
        return [0.5 for _ in texts]


@dataclass
class Digest:
    """What a replay published, in a form that does not depend on the machine's BLAS: SHA-256 of
    the recommendations' items and interest categories in order, and of the training records
    (built in plain Python floats), with the sums of the published scores and interest weights
    (matrix products may differ in their last bits from one BLAS to another)."""

    recommendations: Any = field(default_factory=hashlib.sha256)
    examples: Any = field(default_factory=hashlib.sha256)
    published: int = 0
    example_records: int = 0
    score_sum: float = 0.0
    interest_sum: float = 0.0
    outputs: dict[str, int] = field(default_factory=dict)  # every other output, counted by topic

    def add(self, recommendation: bytes) -> None:
        rec = json.loads(recommendation)
        shown = [rec["user_id"], rec["trigger_event_id"], [i["item_id"] for i in rec["items"]]]
        shown.append([c["category"] for c in rec["interests"]])
        self.recommendations.update(json.dumps(shown).encode())
        self.published += 1
        self.score_sum += sum(i["score"] for i in rec["items"])
        self.interest_sum += sum(c["weight"] for c in rec["interests"])

    def summary(self) -> dict[str, Any]:
        return {
            "recommendations": self.recommendations.hexdigest(),
            "examples": self.examples.hexdigest(),
            "published": self.published,
            "example_records": self.example_records,
            "score_sum": round(self.score_sum, 3),
            "interest_sum": round(self.interest_sum, 3),
            "outputs": dict(sorted(self.outputs.items())),
        }


@dataclass
class Replay:
    """One click path, wired as the engine wires it, and the digest of what it produced."""

    clicks: ClickProcessor
    reviews: ReviewProcessor
    sink: ExampleSink
    clock: list[float]
    topics: Topics
    digest: Digest | None = None  # what it published, when asked for (not while it is timed)
    #: Recommendations and training records as published, when asked for (cheap enough to time).
    published: list[bytes] | None = None

    def feed(self, batch: Sequence[Incoming], waited_s: float = 0.0) -> None:
        """One agent batch (all clicks or all reviews), handled ``waited_s`` after its last
        message reached Kafka (more than ``coalesce_after_ms``: a worker running behind)."""
        self.clock[0] = batch[-1].timestamp_ms / 1000.0 + waited_s
        proc = self.clicks if batch[0].topic == self.topics.clicks else self.reviews
        self._record(proc.process(batch))

    def _record(self, out: list[Outgoing]) -> None:
        records = self.sink.drain()  # the engine packs a batch's training records too
        if self.published is not None:
            self.published += [o.value or b"" for o in out if o.topic == self.topics.recommendations]
            self.published += records
        if self.digest is None:
            return
        for o in out:
            if o.topic == self.topics.recommendations:
                self.digest.add(o.value or b"")
            else:
                self.digest.outputs[o.topic] = self.digest.outputs.get(o.topic, 0) + 1
        for record in records:
            self.digest.examples.update(record)
            self.digest.example_records += 1


def build_replay(
    shop: SimulatedShop,
    *,
    rank: bool = True,
    digest: bool = False,
    resident: bool = True,
    keep: bool = False,
    reference: bool = False,
    experiment: Experiment | None = None,
) -> Replay:
    """The click and review processors over the warm-start model and a catalog holding every item
    of ``shop`` (every ``OUT_OF_STOCK``-th one out of stock), learning as the engine does; without
    ``rank``, over a model that neither ranks nor learns (the processing-free shell). With
    ``digest``, it keeps the :class:`Digest` of what it publishes; with ``keep``, what it
    published. Users' states stay resident as in the engine; without ``resident``, they are
    decoded on every event. With ``reference``, co-visitation is the dict index the engine's array
    index replaced and retrieval the Python code its kernel replaced. With ``experiment``, that
    experiment is in force."""
    settings = Settings()
    topics = Topics(settings)
    clock = [START_TS]
    catalog = Catalog(settings.popularity_half_life_s, clock=lambda: clock[0])
    for n, item in enumerate(shop.catalog(START_TS - 60.0)):
        state = ItemState()
        state.apply_catalog(item.category, item.title or "", item.price, n % OUT_OF_STOCK != 0, item.ts or 0.0)
        catalog.upsert(item.item_id, state)
    model: ServingModel = ShellModel()
    if rank and reference:
        index = DictCovisIndex()
        model = ReferenceServingModel(load_warm_start(), catalog, interest_half_life_s=HALF_LIFE_S, index=index)
    elif rank:
        model = NeuralServingModel(load_warm_start(), catalog, interest_half_life_s=HALF_LIFE_S)
    builder, sink = ExampleBuilder(catalog, HALF_LIFE_S, seed=0), ExampleSink()

    def learn(model: ServingModel, before: UserState, event: Click | Review, category: str) -> None:
        if isinstance(event, Click):
            record = builder.click(model, before, event, category)
        else:
            record = builder.review(model, before, event, category)
        if record is not None:
            sink.add(record, event.ts)

    metrics, users = Metrics(), MemoryStore()
    book = ExperimentBook()
    if experiment is not None:
        book.put(experiment)
    kept = ResidentUsers(settings.resident_users if resident else 0)

    def now() -> float:
        return clock[0]

    clicks = ClickProcessor(
        topics,
        1,
        metrics,
        users,
        catalog,
        lambda: model,
        ActivityCounts(),
        top_k=settings.top_k,
        interest_half_life_s=HALF_LIFE_S,
        learn=learn,
        resident=kept,
        experiments=book,
        clock=now,
    )
    reviews = ReviewProcessor(topics, 1, metrics, users, lambda: model, catalog, learn=learn, resident=kept, clock=now)
    return Replay(clicks, reviews, sink, clock, topics, Digest() if digest else None, [] if keep else None)


#: The experiment the click bench times: half the shoppers served without the shop's rules.
AB = Experiment("bench-ab", (Arm("a", 0.5), Arm("b", 0.5, rules="none")))
#: The same with a shadow arm ranking every batch too (from the served pass's pools and, on the same model, its scores).
AB_SHADOW = Experiment("bench-ab", (*AB.arms, Arm("ghost", 0.0, rules="none")), shadow="ghost")


def as_batches(events: Iterable[Click | Review], batch: int = BATCH) -> list[list[Incoming]]:
    """Events as agent batches of at most ``batch`` messages of one topic, in stream order, on a
    single partition (a message reaches Kafka at its event's ``ts``)."""
    topics = Topics(Settings())
    out: list[list[Incoming]] = []
    for offset, event in enumerate(events):
        topic = topics.clicks if isinstance(event, Click) else topics.reviews
        if not out or out[-1][0].topic != topic or len(out[-1]) == batch:
            out.append([])
        msg = Incoming(topic, 0, offset, event.user_id.encode(), event.to_json(), None, int(event.ts * 1000))
        out[-1].append(msg)
    return out


def shop_events(shop: SimulatedShop, n: int, tag: str = "golden") -> list[Click | Review]:
    """The shop's first ``n`` events, one a millisecond from ``START_TS``."""
    clock = (START_TS + k / 1000.0 for k in range(n + 1))
    return list(islice(shop.events(tag, clock), n))


def shopper_clicks(shop: SimulatedShop, n: int, shoppers: int, prefix: str, start: float = START_TS) -> Iterator[Click]:
    """``n`` of the shop's clicks (same items, actions and skew), one a millisecond from ``start``,
    re-assigned round-robin to ``shoppers`` users named ``{prefix}{k}``: with as many shoppers as
    clicks every click is a new shopper's; with fewer, each shopper's history fills up."""
    clicks = (e for e in shop.events(prefix, repeat(START_TS)) if isinstance(e, Click))
    for k, click in enumerate(islice(clicks, n)):
        yield dataclasses.replace(click, user_id=f"{prefix}{k % shoppers}", ts=start + k / 1000.0)


def drain_batches(shop: SimulatedShop, n: int, start: float, tag: str = "mix") -> list[list[Incoming]]:
    """The shop's next ``n`` events (its own mix: Zipf users, ``review_share`` reviews), one a
    millisecond from ``start``, as a draining worker's agents take them: batches of one topic, full
    ones, in the order their last events arrived."""
    clock = (start + k / 1000.0 for k in range(n + 1))
    events = list(islice(shop.events(tag, clock), n))
    clicks = as_batches(e for e in events if isinstance(e, Click))
    reviews = as_batches(e for e in events if isinstance(e, Review))
    return sorted(clicks + reviews, key=lambda b: b[-1].timestamp_ms)


def per_event_us(replays: Sequence[Replay], batches: Sequence[list[Incoming]], waited_s: float) -> list[float]:
    """CPU microseconds per event of feeding ``batches`` (clicks and reviews) to each replay,
    ``waited_s`` after they reached Kafka: the total over the batches (their sizes and kinds
    differ), each batch fed to the replays in turn."""
    spent = [0.0] * len(replays)
    for batch in batches:
        for k, replay in enumerate(replays):
            t0 = time.process_time()
            replay.feed(batch, waited_s)
            spent[k] += time.process_time() - t0
    events = sum(len(b) for b in batches) or 1
    return [1e6 * s / events for s in spent]


def per_click_us(replays: Sequence[Replay], batches: Sequence[list[Incoming]]) -> list[float]:
    """CPU microseconds per click of feeding ``batches`` (clicks only) to each replay: the median
    over the batches, fed to the replays in turn so that a shared machine's changing speed weighs
    on them alike (on this VM a batch's CPU time doubles when the host is busy)."""
    spent: list[list[float]] = [[] for _ in replays]
    for batch in batches:
        for k, replay in enumerate(replays):
            t0 = time.process_time()
            replay.feed(batch)
            spent[k].append(1e6 * (time.process_time() - t0) / len(batch))
    return [statistics.median(s) if s else 0.0 for s in spent]


def measure(shop: SimulatedShop, clicks: int, shoppers: int, mix: int = 0) -> dict[str, Any]:
    """The click path's CPU per click, in process: ``clicks`` clicks of new shoppers (each the
    first of its shopper), then ``clicks`` of ``shoppers`` returning shoppers whose histories were
    first filled (``RECENT_MAX`` clicks each, not timed), then, with ``mix``, CPU per event of the
    shop's own mix as a draining worker gets it (``mix`` events fed untimed, so that the Zipf
    law's busy users gather history, then ``mix`` timed; batches of one topic, fed behind: a
    user's clicks of a batch share one answer), what bounds the throughput section's drain;
    interleaved batch by batch with the same
    clicks through the reference path (states decoded on every click, the dict co-visitation
    index), through the
    processing-free shell (a model that neither ranks nor learns), with an A/B experiment in force
    (:data:`AB`), with that experiment and a shadow arm (:data:`AB_SHADOW`), and through the shell
    with the experiment (what arms add around scoring, without scoring's noise). ``equal_outputs``: the path and
    the reference published the same recommendations and training records, byte for byte. The
    cycle collector runs as in a worker (:mod:`streams.engine.collector`: fewer young collections,
    and what was loaded before the first click frozen; thawed after the section), and so does
    BLAS: one thread (a second one's spinning between the small matrix products is CPU time a
    worker does not spend)."""
    thresholds = fewer_collections()
    try:
        with threadpool_limits(limits=1):
            return _measure(shop, clicks, shoppers, mix)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def _measure(shop: SimulatedShop, clicks: int, shoppers: int, mix: int) -> dict[str, Any]:
    warm = RECENT_MAX * shoppers
    new = as_batches(shopper_clicks(shop, clicks + BATCH, clicks + BATCH, "new-"))
    returning = list(shopper_clicks(shop, warm + clicks, shoppers, "ret-", new[-1][-1].timestamp_ms / 1000.0 + 1.0))
    replays = [
        build_replay(shop, keep=True),
        build_replay(shop, resident=False, keep=True, reference=True),
        build_replay(shop, rank=False),
        build_replay(shop, experiment=AB),
        build_replay(shop, experiment=AB_SHADOW),
        build_replay(shop, rank=False, experiment=AB),
    ]
    freeze_loaded()
    per_click_us(replays, new[:1])  # the first batch pays for lazy set-ups (popular lists, model caches)
    new_us = per_click_us(replays, new[1:])
    per_click_us(replays, as_batches(returning[:warm]))
    returning_us = per_click_us(replays, as_batches(returning[warm:]))
    mixed: dict[str, Any] = {}
    if mix:
        batches = drain_batches(shop, 2 * mix, returning[-1].ts + 1.0)
        half = next(n for n, size in enumerate(accumulate(map(len, batches))) if size >= mix) + 1
        behind = Settings().coalesce_after_ms / 1000.0 + 1.0
        fed = replays[:3]  # the path, the reference and the shell
        per_event_us(fed, batches[:half], behind)
        mix_us = per_event_us(fed, batches[half:], behind)
        mixed = {
            "mix_us_per_event": mix_us[0],
            "reference_mix_us_per_event": mix_us[1],
            "shell_mix_us_per_event": mix_us[2],
            "mix_events": sum(map(len, batches[half:])),
            "mix_users": shop.users,
        }
    return {
        "new_us_per_click": new_us[0],
        "returning_us_per_click": returning_us[0],
        "reference_new_us_per_click": new_us[1],
        "reference_returning_us_per_click": returning_us[1],
        "equal_outputs": replays[0].published == replays[1].published,
        "shell_new_us_per_click": new_us[2],
        "shell_returning_us_per_click": returning_us[2],
        "experiment_new_us_per_click": new_us[3],
        "experiment_returning_us_per_click": returning_us[3],
        "shadow_new_us_per_click": new_us[4],
        "shadow_returning_us_per_click": returning_us[4],
        "shell_experiment_new_us_per_click": new_us[5],
        "shell_experiment_returning_us_per_click": returning_us[5],
        "clicks": clicks,
        "returning_shoppers": shoppers,
        "history_per_shopper": RECENT_MAX,
        "catalog_items": shop.items,
        "batch": BATCH,
    } | mixed
