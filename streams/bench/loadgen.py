"""The load generator: a separate process that feeds a benchmark's topics.

It runs apart from the worker and from the harness so that producing (JSON, the Kafka client) is
not charged to the engine and cannot slow the harness's own clock; it still shares this machine's
cores, and a benchmark run says so. Configured like every shopguide process by ``SHOPGUIDE_*``
variables (the harness hands it :func:`streams.tools.cluster.child_env`), it prints one JSON summary
line (``sent``, ``seconds``, ``rate``) when done.

``python -m streams.bench.loadgen events --users N --items M --rate R --duration S --tag T``:
clicks and reviews of a :class:`~streams.bench.shop.SimulatedShop`, each stamped ``ts=time.time()``
when it is made, held to ``R`` per second (0: as fast as the producer takes them).
``catalog`` and ``users`` seed the item and user tables' changelogs with the shop's items and users
(see :meth:`~streams.bench.shop.SimulatedShop.user_states`), and
``taobao`` replays the Taobao stream with its original timestamps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from model.offline.datasets import Rejected, default_path
from state.item import ItemState
from streams.bench.shop import SimulatedShop
from streams.events import Click
from streams.settings import Settings
from streams.tools.producer import EventProducer
from streams.tools.replay import Pacer, plan
from streams.topics import Topics

Record = tuple[str, bytes, bytes]  # topic, key, value


def shop_events(shop: SimulatedShop, topics: Topics, tag: str) -> Iterator[Record]:
    for event in shop.events(tag, iter(time.time, None)):
        topic = topics.clicks if isinstance(event, Click) else topics.reviews
        yield topic, event.user_id.encode(), event.to_json()


def shop_catalog(shop: SimulatedShop, topics: Topics) -> Iterator[Record]:
    """The catalog as the item table's changelog holds it once the engine applied it: a worker
    recovers it at start (as after a restart) instead of taking 100,000 records one by one."""
    for item in shop.catalog(time.time()):
        state = ItemState()
        state.apply_catalog(item.category, item.title or "", item.price, item.in_stock, item.ts or 0.0)
        yield topics.items_changelog, item.item_id.encode(), state.to_bytes()


def shop_users(
    shop: SimulatedShop, topics: Topics, settings: Settings, shard: int, shards: int, clicks: int = 3
) -> Iterator[Record]:
    """The ``shard``-th of ``shards`` interleaved parts of the seeded users, ``clicks`` clicks each
    (several processes seed a million users in a fraction of the time one takes)."""
    states = shop.user_states(time.time(), settings.interest_half_life_s, settings.top_k, clicks)
    for n, (key, value) in enumerate(states):
        if n % shards == shard:
            yield topics.users_changelog, key, value


def taobao(topics: Topics, path: Path) -> Iterator[Record]:
    for planned in plan("taobao", path):
        if not isinstance(planned, Rejected):
            event = planned.event
            yield topics.clicks, event.user_id.encode(), event.to_json()  # type: ignore[union-attr]


def send(settings: Settings, records: Iterable[Record], rate: float, duration_s: float, count: int) -> dict[str, float]:
    """Send ``records`` at ``rate`` per second until ``duration_s`` or ``count`` (0: no limit) or
    their end, then wait for every acknowledgement."""
    pacer = Pacer(rate)
    sent = 0
    start = time.monotonic()
    with EventProducer(settings) as producer:
        for topic, key, value in records:
            producer.send(topic, key, value)
            sent += 1
            if (count and sent >= count) or (duration_s and time.monotonic() - start >= duration_s):
                break
            pacer.wait()
        producer.flush()
    seconds = time.monotonic() - start
    return {"sent": sent, "seconds": seconds, "rate": sent / seconds if seconds > 0 else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.loadgen")
    parser.add_argument("what", choices=("events", "catalog", "users", "taobao"))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="load", help="event id prefix")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds (0: no limit)")
    parser.add_argument("--count", type=int, default=0, help="events (0: no limit)")
    parser.add_argument("--shard", default="0/1", help="users: K/N, the K-th of N parts")
    parser.add_argument("--clicks", type=int, default=3, help="users: clicks in each seeded user's state")
    parser.add_argument("--path", default=None, help="the Taobao file (default: ../shared/data)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    topics = Topics(settings)
    shop = SimulatedShop(args.users, args.items, args.seed)
    records: Iterable[Record]
    if args.what == "events":
        records = shop_events(shop, topics, args.tag)
    elif args.what == "catalog":
        records = shop_catalog(shop, topics)
    elif args.what == "users":
        shard, shards = (int(x) for x in args.shard.split("/"))
        records = shop_users(shop, topics, settings, shard, shards, args.clicks)
    else:
        records = taobao(topics, Path(args.path) if args.path else default_path("taobao"))
    print(json.dumps(send(settings, records, args.rate, args.duration, args.count)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
