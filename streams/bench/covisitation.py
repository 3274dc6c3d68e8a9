"""Online and discovery hit rates of the Taobao stream through N real workers, around a restart.

On the embedded broker it starts ``--workers`` workers of one consumer group (each its own data
directory, from the untrained weights as the ``replay`` section does, so that what the workers
learn while serving, and not a model that learned this very stream, makes the hits), sends the
first ``--events`` events of the Taobao stream (or ``--data movielens``) at ``--rate`` per second
and, with ``--restart-after S``, kills the last worker (SIGKILL) ``S`` seconds in and starts it
again on its data directory. The hit rates are computed from the recommendations topic: a click
is a trial when its shopper had a recommendation (the one published for their previous click), a
hit when the recommendation held the clicked item, and a *discovery* trial when the shopper had
never touched the item before (a hit there cannot be an own repeat). Around a restart they are
given for the minute before the kill and the minute after the worker is ready again, for all
shoppers and for the restarted worker's partitions; times are when the click's own
recommendation was published. ``--recall`` measures in process, without workers, how many
discovery clicks co-visitation alone offers with one index and with ``--workers`` partitioned
ones. Run: ``python -m streams.bench.covisitation --help``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model import kernels
from model.covisitation import CovisIndex
from model.offline.datasets import Rejected, default_path
from model.retrieval import RetrievalConfig
from model.snapshot import SnapshotStore
from state.decay import INTEREST_HALF_LIFE_S
from state.user import UserState
from streams.bench.runner import untrained_snapshot
from streams.events import Click
from streams.partitioning import partition_for
from streams.settings import Settings
from streams.testing.harness import KERNEL_CACHE_DIR, Cluster, fresh_settings
from streams.tools.broker import EmbeddedBroker, free_port
from streams.tools.cluster import WorkerProcess, get_text
from streams.tools.replay import Pacer, plan, stamp

_LAG = re.compile(r'shopguide_consumer_lag\{partition="(\d+)",topic="([^"]+)"\}')


@dataclass(frozen=True, slots=True)
class Published:
    items: frozenset[str]
    ts: float
    partition: int


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    start: float
    end: float
    partitions: frozenset[int] | None = None  # None: every partition


def hit_rates(clicks: Sequence[Click], recs: dict[str, Published], windows: Iterable[Window] = ()) -> dict[str, Any]:
    """Hit and discovery hit rates of ``clicks`` (in stream order) against the recommendations by
    trigger event id: over every click and within each window."""
    seen: dict[str, set[str]] = {}
    last: dict[str, frozenset[str]] = {}
    windows = list(windows)
    tallies = {name: [0, 0, 0, 0] for name in ["all", *(w.name for w in windows)]}  # trials, hits, new, new hits
    for click in clicks:
        before = last.get(click.user_id)
        own = recs.get(click.event_id)
        if own is not None:
            last[click.user_id] = own.items
        touched = seen.setdefault(click.user_id, set())
        new = click.item_id not in touched
        touched.add(click.item_id)
        if before is None:
            continue
        hit = click.item_id in before
        names = ["all"]
        if own is not None:
            names += [
                w.name
                for w in windows
                if w.start <= own.ts < w.end and (w.partitions is None or own.partition in w.partitions)
            ]
        for name in names:
            t = tallies[name]
            t[0] += 1
            t[1] += hit
            t[2] += new
            t[3] += hit and new
    return {name: _rates(*t) for name, t in tallies.items()}


def _rates(trials: int, hits: int, new: int, new_hits: int) -> dict[str, Any]:
    """The rates of a tally; the repeats' (clicks on items the shopper touched before) apart, since
    nearly all of them hit and their share moves along a stream far more than any index does."""
    return {
        "trials": trials,
        "hit_rate": hits / trials if trials else None,
        "repeat_hit_rate": (hits - new_hits) / (trials - new) if trials > new else None,
        "discovery_trials": new,
        "discovery_hit_rate": new_hits / new if new else None,
    }


def covisit_recall(clicks: Sequence[Click], partitions: int, config: RetrievalConfig | None = None) -> dict[str, Any]:
    """What co-visitation alone offers for discovery, without a worker or a model: the clicks on
    items new to their shopper (who touched something before) whose item is among the co-visitation
    candidates retrieval reads (the neighbours of the last ``covis_sources`` items, the followers of
    the last ``after_sources``), when each of ``partitions`` indexes sees only its partition's
    shoppers, as that many workers' indexes do. In process, over the whole stream given."""
    c = config or RetrievalConfig()
    indexes = [CovisIndex() for _ in range(partitions)]
    users: dict[str, UserState] = {}
    seen: dict[str, set[str]] = {}
    trials = found = 0
    for click in clicks:
        index = indexes[partition_for(click.user_id, partitions)]
        user = users.setdefault(click.user_id, UserState())
        touched = seen.setdefault(click.user_id, set())
        if touched and click.item_id not in touched:
            trials += 1
            candidates = index.scores(user, c.covis_sources, c.covis_per_source).keys()
            found += click.item_id in candidates or click.item_id in index.following(user, c.after_sources)
        touched.add(click.item_id)
        index.observe(user, click.item_id)
        user.apply_click(click.item_id, click.action, click.ts, click.category or "", INTEREST_HALF_LIFE_S)
    return {"partitions": partitions, "discovery_trials": trials, "covisited": found, "recall": found / trials}


def _partitions(worker: WorkerProcess, topic: str) -> frozenset[int]:
    """The partitions of ``topic`` the worker reports as assigned (its lag gauge, every 5 s)."""
    try:
        text = get_text(worker.url + "/metrics")
    except OSError:
        return frozenset()
    return frozenset(int(p) for p, t in _LAG.findall(text) if t == topic)


def _wait_assigned(workers: Sequence[WorkerProcess], topic: str, partitions: int, timeout_s: float) -> None:
    """Until every partition of ``topic`` is assigned, each worker holding at least one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        held = [_partitions(w, topic) for w in workers]
        if all(held[: min(len(workers), partitions)]) and len(frozenset().union(*held)) == partitions:
            return
        time.sleep(1.0)
    raise TimeoutError(f"{topic}: not every partition assigned after {timeout_s:.0f} s")


def stream_clicks(count: int, fmt: str = "taobao") -> list[Click]:
    """The first ``count`` clicks of a data set's stream (``taobao`` or ``movielens``), with their
    own timestamps."""
    out: list[Click] = []
    for planned in plan(fmt, default_path(fmt)):
        if not isinstance(planned, Rejected) and isinstance(planned.event, Click):
            out.append(planned.event)
            if len(out) == count:
                break
    return out


def replay(
    workers: int,
    events: int,
    rate: float,
    restart_after_s: float | None,
    work: Path,
    data: str = "taobao",
    **changes: object,
) -> dict[str, Any]:
    """Replay a data set's stream through ``workers`` workers (``changes``: their settings) and
    report the hit rates, around a restart of the last one when ``restart_after_s`` is given.
    MovieLens's ratings (1996 on) are older than the engine accepts: they are stamped when sent."""
    clicks = stream_clicks(events, data)
    kernels.warm(KERNEL_CACHE_DIR)  # one compile here, not one per worker at once
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        # Produced while the workers run, the events are never late: no coalescing either way.
        settings = fresh_settings(broker, work, coalesce_after_ms=1e12, **changes)
        cluster = Cluster(settings)
        try:
            procs = [_worker(settings, work, k) for k in range(workers)]
            cluster.workers.extend(procs)
            for proc in procs:
                proc.wait_ready(300)
            topic = cluster.topics.clicks
            _wait_assigned(procs, topic, settings.partitions, 120)
            sender = threading.Thread(target=_send, args=(cluster, clicks, rate, data == "movielens"), daemon=True)
            start = time.time()
            sender.start()
            restart: dict[str, Any] = {}
            if restart_after_s is not None:
                time.sleep(max(0.0, start + restart_after_s - time.time()))
                victim = procs[-1]
                restart["partitions_before"] = sorted(_partitions(victim, topic))
                restart["killed"] = time.time()
                victim.kill()
                victim.start()
                victim.wait_ready(300)
                restart["ready"] = time.time()
                _wait_assigned(procs, topic, settings.partitions, 120)
                restart["partitions_after"] = sorted(_partitions(victim, topic))
            sender.join()
            recs = _collect(cluster, {c.event_id for c in clicks}, stall_s=30.0)
        finally:
            cluster.close()
    windows = []
    if restart:
        before, after = frozenset(restart["partitions_before"]), frozenset(restart["partitions_after"])
        kill, ready = restart["killed"], restart["ready"]
        windows = [
            Window("minute_before_kill", kill - 60, kill),
            Window("minute_after_ready", ready, ready + 60),
            Window("restarted_minute_before_kill", kill - 60, kill, before),
            Window("restarted_minute_after_ready", ready, ready + 60, after),
        ]
        restart["down_s"] = ready - kill
        restart["killed"] -= start
        restart["ready"] -= start
    return {
        "data": data,
        "workers": workers,
        "events": len(clicks),
        "rate": rate,
        "recommendations": len(recs),
        "restart": restart or None,
        "hit_rates": hit_rates(clicks, recs, windows),
    }


def _worker(settings: Settings, work: Path, k: int) -> WorkerProcess:
    data_dir = work / f"worker-{k}"
    SnapshotStore(data_dir / "snapshots").save(untrained_snapshot())
    return WorkerProcess(settings.with_(data_dir=data_dir, web_port=free_port())).start()


def _send(cluster: Cluster, clicks: Sequence[Click], rate: float, now: bool) -> None:
    """``clicks`` at ``rate`` a second; ``now``: each stamped with the time it is sent."""
    pacer = Pacer(rate)
    for click in clicks:
        event = stamp(click, time.time()) if now else click
        cluster.producer.send(cluster.topics.clicks, click.user_id.encode(), event.to_json())
        pacer.wait()
    cluster.producer.flush()


def _collect(cluster: Cluster, triggers: set[str], stall_s: float) -> dict[str, Published]:
    """The first recommendation per trigger event, once every click has one or none came for
    ``stall_s``."""
    recs: dict[str, Published] = {}
    read, last_change = 0, time.monotonic()
    while len(recs) < len(triggers) and time.monotonic() - last_change < stall_s:
        items = cluster.recommendations.items
        for r in items[read:]:
            trigger = r.value.get("trigger_event_id") if isinstance(r.value, dict) else None
            if trigger in triggers and trigger not in recs:
                ids = frozenset(i["item_id"] for i in r.value["items"])
                recs[trigger] = Published(ids, float(r.value["published_ts"]), r.partition)
        if len(items) > read:
            read, last_change = len(items), time.monotonic()
        time.sleep(0.5)
    return recs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.covisitation")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--recall", action="store_true", help="only the in-process co-visitation recall, 1 and --workers indexes"
    )
    parser.add_argument(
        "--data",
        choices=("taobao", "movielens"),
        default="taobao",
        help="the stream (MovieLens's events are stamped when sent: its own times are older than the engine accepts)",
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=250.0, help="events per second")
    parser.add_argument("--restart-after", type=float, default=None, help="seconds into the replay (default: none)")
    parser.add_argument(
        "--checkpoint-s",
        type=float,
        default=Settings.covis_checkpoint_s,
        help="the workers' SHOPGUIDE_COVIS_CHECKPOINT_S (0: no checkpoint, an empty index after a restart)",
    )
    args = parser.parse_args(argv)
    if args.recall:
        kernels.warm(KERNEL_CACHE_DIR)
        clicks = stream_clicks(args.events, args.data)
        print(json.dumps([covisit_recall(clicks, n) for n in sorted({1, args.workers})], indent=1))
        return 0
    with tempfile.TemporaryDirectory(prefix="shopguide-covis-") as tmp:
        result = replay(
            args.workers,
            args.events,
            args.rate,
            args.restart_after,
            Path(tmp),
            args.data,
            covis_checkpoint_s=args.checkpoint_s,
        )
    result["checkpoint_s"] = args.checkpoint_s
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
