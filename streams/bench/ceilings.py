"""The ceilings a benchmark compares the engine with, each in a process of its own.

* ``pipe``: a raw aiokafka loop over the benchmark's backlog: consume only, produce only, then
  consume → produce each message. What Python and the broker allow on this machine.
* ``faust``: a bare Faust agent over the same backlog that either only counts events, taking
  Faust's own batches (``count``: what a Faust worker allows), or also sends each event on the
  way the engine moves a batch (``forward``): events taken with the engine's
  :func:`~streams.kafka.batching.acked_batches`, sent with :meth:`~streams.kafka.transport.App.publish` and
  acknowledged by the broker before the next batch. That is an engine whose processing costs
  nothing: what is left for processing is the difference between it and the engine.

The bare app is :class:`streams.kafka.transport.App` with the consumer, producer and stream settings
copied from the app the engine builds (:data:`ENGINE_CONF`), so that it follows the engine when
those change; it has no tables, no sensors and no web server. ``python -m streams.bench.ceilings ...``
prints (``pipe``) or writes (``faust --result``) one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import Settings

#: Settings of the engine's Faust app that decide how fast it can consume and produce.
ENGINE_CONF = (
    "broker",
    "broker_credentials",
    "broker_session_timeout",
    "broker_rebalance_timeout",
    "broker_heartbeat_interval",
    "broker_commit_interval",
    "broker_max_poll_records",
    "consumer_auto_offset_reset",
    "consumer_max_fetch_size",
    "producer_acks",
    "producer_linger",
    "producer_max_batch_size",
    "producer_compression_type",
    "topic_partitions",
    "topic_allow_declare",
    "topic_disable_leader",
    "stream_buffer_maxsize",
    "stream_wait_empty",
)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


async def pipe(settings: Settings, sources: list[str], sink: str, count: int) -> dict[str, float]:
    """Messages per second consumed, produced, and piped (consumed and each produced to ``sink``),
    over the first ``count`` messages of ``sources``. Clocks start at the first fetched batch, so
    connection set-up is not counted."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        **settings.kafka_client_options(asyncio=True),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", **settings.kafka_client_options(asyncio=True)
    )
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(t, p) for t in sources for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)

        async def consume(each: Any = None) -> tuple[int, float]:
            await consumer.seek_to_beginning(*tps)
            n, start = 0, 0.0
            while n < count:
                batches = await consumer.getmany(timeout_ms=2000, max_records=2000)
                if not batches:
                    break  # fewer than ``count`` messages: rate over what there was
                if not start:
                    start = time.perf_counter()
                for records in batches.values():
                    for r in records:
                        if each is not None:
                            await each(r.key, r.value)
                    n += len(records)
            if each is not None:
                await producer.flush()
            return n, time.perf_counter() - start

        kept: list[tuple[bytes | None, bytes | None]] = []

        async def keep(key: bytes | None, value: bytes | None) -> None:
            kept.append((key, value))

        n, consume_s = await consume()
        await consume(keep)  # the messages again, in memory, for the produce-only pass
        start = time.perf_counter()
        for key, value in kept:
            await producer.send(sink, value, key=key)
        await producer.flush()
        produce_s = time.perf_counter() - start

        async def forward(key: bytes | None, value: bytes | None) -> None:
            await producer.send(sink, value, key=key)

        piped, pipe_s = await consume(forward)
        return {
            "messages": n,
            "consume_eps": _rate(n, consume_s),
            "produce_eps": _rate(len(kept), produce_s),
            "pipe_eps": _rate(piped, pipe_s),
        }
    finally:
        await producer.stop()
        await consumer.stop()


class _EngineShell:
    """What ``Engine._make_app`` reads, and no more: the bare app copies the engine app's exact
    configuration without building an engine (tables, model snapshots, agents)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def _write(path: Path, payload: dict[str, float]) -> None:
    path.write_text(json.dumps(payload))


def bare_app(
    settings: Settings, sources: list[str], sink: str, mode: str, count: int, seconds: float, result: Path
) -> Any:
    """A Faust app with one agent over ``sources`` that counts (and in ``forward`` mode sends on)
    events until it has ``count`` of them or ``seconds`` have passed since the first, writes its
    rate to ``result`` and stops its worker."""
    from streams.engine.app import Engine
    from streams.kafka.batching import acked_batches, fill_wait
    from streams.kafka.transport import App

    engine_conf = Engine._make_app(_EngineShell(settings)).conf  # type: ignore[arg-type]
    app = App(
        f"{settings.app_id}-bare-{mode}",
        fetch_wait_ms=engine_conf.fetch_wait_ms,
        env={},
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="shopguide-bare-"),
        web_enabled=False,
        **{key: getattr(engine_conf, key) for key in ENGINE_CONF},
    )
    source = app.topic(*sources, key_serializer="raw", value_serializer="raw")
    within = settings.batch_wait_ms / 1000.0

    @app.agent(source, name=f"{settings.app_id}.bare_{mode}", concurrency=1)
    async def bare(stream: Any) -> None:
        n, first, start = 0, 0, 0.0
        batches = (
            acked_batches(stream, settings.batch_max, fill_wait(settings))
            if mode == "forward"
            else stream.take_events(settings.batch_max, within)
        )
        async for events in batches:
            if not start:
                start, first = time.perf_counter(), len(events)
            if mode == "forward":
                await asyncio.gather(*await app.publish([(sink, None, e.message.key, e.message.value) for e in events]))
            n += len(events)
            if n >= count or time.perf_counter() - start >= seconds:
                took = time.perf_counter() - start
                _write(result, {"events": n - first, "eps": _rate(n - first, took)})
                os.kill(os.getpid(), signal.SIGTERM)
                return

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.bench.ceilings")
    parser.add_argument("what", choices=("pipe", "faust"))
    parser.add_argument("--sources", required=True, help="comma-separated topics")
    parser.add_argument("--sink", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=30.0, help="faust: stop after this long")
    parser.add_argument("--mode", choices=("count", "forward"), default="count")
    parser.add_argument("--result", help="faust: where to write the JSON result")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    sources = args.sources.split(",")
    if args.what == "pipe":
        print(json.dumps(asyncio.run(pipe(settings, sources, args.sink, args.count))), flush=True)
        return 0
    import faust

    app = bare_app(settings, sources, args.sink, args.mode, args.count, args.seconds, Path(args.result))
    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
