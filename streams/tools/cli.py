"""The ``shopguide`` command: run the engine and talk to it.

Every command reads its configuration from the ``SHOPGUIDE_*`` variables (``shopguide config``
lists them with their defaults); flags only say what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streams.errors import BrokerUnreachable, SettingsError
from streams.settings import Settings, configuration_table, describe, is_secret

err = Console(stderr=True, highlight=False)


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.broker import broker_command, broker_env

    port = args.port or int(settings.broker.rsplit(":", 1)[-1])
    err.print(f"Tansu broker on 127.0.0.1:{port} (in memory: everything is lost when it stops)")
    os.execve(broker_command(port)[0], broker_command(port), broker_env())  # noqa: S606


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import Topics, create_topics

    if args.action == "create":
        created, existing = create_topics(settings)
        for name in created:
            print(f"created {name}")
        for name in existing:
            print(f"exists  {name}")
    else:
        for spec in Topics(settings).specs():
            config = ",".join(f"{k}={v}" for k, v in spec.config.items())
            print(f"{spec.name}\t{spec.partitions}\t{config}")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.engine.worker import run_worker

    run_worker(settings)
    return 0


def _trainer(args: argparse.Namespace, settings: Settings) -> int:
    from streams.learning.variant_trainer import run_variant_trainer
    from streams.tools.children import sigterm_exits

    with sigterm_exits(), contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_variant_trainer(settings, args.variant))
    return 0


def _guide(args: argparse.Namespace, settings: Settings) -> int:
    from streams.service.server import run_guide

    return run_guide(settings)


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from streams.service.sessions import SessionSigner, session_key

    print(SessionSigner(session_key(settings), settings.guide_session_ttl_s).mint(args.user_id, time.time()))
    return 0


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.producer import EventProducer, key_of
    from streams.topics import Topics

    topic = getattr(Topics(settings), args.kind)
    source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    sent = 0
    with source, EventProducer(settings) as producer:
        for line in source:
            payload = line.rstrip(b"\r\n")
            if not payload.strip():
                continue
            producer.send(topic, key_of(args.kind, payload), payload)
            sent += 1
    print(f"produced {sent} messages to {topic}")
    return 0


def _forget(args: argparse.Namespace, settings: Settings) -> int:
    from streams.errors import InvalidEvent
    from streams.events import forget_request, parse_forget
    from streams.tools.producer import EventProducer
    from streams.topics import Topics

    try:
        users = [parse_forget(forget_request(user_id)) for user_id in args.user_ids]
    except InvalidEvent as exc:
        err.print(f"forget: {exc}")
        return 2
    topic = Topics(settings).forget
    with EventProducer(settings) as producer:
        for user_id in users:
            producer.send(topic, user_id.encode(), forget_request(user_id))
        producer.flush()  # raises unless every request was acknowledged
    print(
        f"asked to forget {len(users)} user(s): the worker owning each deletes its state and latest "
        "recommendation (tombstones on the users changelog and the recommendations topic)"
    )
    return 0


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.rule_commands import rule_records, rules_in_force, send_rules

    return _definitions(args, settings, "rule", rule_records, rules_in_force, send_rules)


def _experiments(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.experiment_commands import experiment_records, experiments_in_force, send_experiments

    return _definitions(args, settings, "experiment", experiment_records, experiments_in_force, send_experiments)


def _definitions(
    args: argparse.Namespace,
    settings: Settings,
    what: str,
    read: Callable[[Path], list[tuple[str, bytes]]],
    in_force: Callable[[Settings], dict[str, bytes]],
    send: Callable[[Settings, list[tuple[str, bytes | None]]], None],
) -> int:
    """``list``, ``put FILE`` or ``delete ID`` of the rules or the experiments."""
    from streams.errors import InvalidEvent
    from streams.events import id_error

    command = f"{what}s"
    if args.action != "list" and not args.target:
        err.print(f"{command} {args.action}: needs {'a FILE' if args.action == 'put' else f'a {what} id'}")
        return 2
    if args.action == "list":
        for record in in_force(settings).values():
            print(record.decode())
        return 0
    if args.action == "put":
        try:
            records = read(Path(args.target))
        except (InvalidEvent, ValueError, OSError) as exc:
            err.print(f"{command}: {exc}")
            return 2
        send(settings, list(records))
        print(f"put {len(records)} {what}(s): {', '.join(key for key, _ in records)}")
        return 0
    problem = id_error(args.target)
    if problem:
        err.print(f"{command} delete: {problem}")
        return 2
    send(settings, [(args.target, None)])
    print(f"deleted {what} {args.target}")
    return 0


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.tail import messages, render, resolve

    topic = resolve(settings, args.topic)
    shown = 0
    try:
        for partition, offset, key, value in messages(settings, topic, args.from_beginning, args.timeout):
            print(f"── {topic}[{partition}]@{offset} " + render(key, value), flush=True)
            shown += 1
            if args.limit and shown >= args.limit:
                break
    except KeyboardInterrupt:
        pass
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from model.offline.datasets import Rejected, default_path
    from streams.tools.producer import EventProducer
    from streams.tools.replay import Pacer, plan, stamp
    from streams.topics import Topics

    path = Path(args.path) if args.path else default_path(args.format)
    if not path.exists():
        err.print(f"replay: no file {path}")
        return 2
    topics = Topics(settings)
    pacer = Pacer(args.rate)
    sent = rejected = 0
    progress = Progress(
        TextColumn("[bold]replay {task.fields[fmt]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.0f} ev/s"),
        TimeElapsedColumn(),
        console=err,
    )
    start = time.monotonic()
    with EventProducer(settings) as producer, progress:
        task = progress.add_task("replay", total=args.limit or None, fmt=args.format, rate=0.0)
        for planned in plan(args.format, path):
            if isinstance(planned, Rejected):
                rejected += 1
                progress.console.print(
                    f"[yellow]rejected line {planned.line}[/]: {planned.reason}: {planned.raw[:120]!r}"
                )
                continue
            event = planned.event if args.timestamps == "original" else stamp(planned.event, time.time())
            key = event.item_id if planned.kind == "items" else event.user_id  # type: ignore[union-attr]
            producer.send(getattr(topics, planned.kind), key.encode(), event.to_json())
            sent += 1
            if sent % 500 == 0:
                progress.update(task, completed=sent, rate=sent / max(time.monotonic() - start, 1e-9))
            if args.limit and sent >= args.limit:
                break
            pacer.wait()
        progress.update(task, completed=sent, rate=sent / max(time.monotonic() - start, 1e-9))
    print(f"replayed {sent} events from {path} ({rejected} rows rejected)")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.tools.children import sigterm_exits
    from streams.tools.demo import run_demo

    with sigterm_exits():
        return run_demo(settings, args.events, args.rate, args.serve)


def _model(args: argparse.Namespace, settings: Settings) -> int:
    args.func(args)  # the model's offline commands read no SHOPGUIDE_* setting
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    if args.markdown:
        print(configuration_table())
        return 0
    for env, default, doc in describe():
        current = os.environ.get(env)
        if current and is_secret(env):
            current = "***"
        elif not current and is_secret(env) and os.environ.get(f"{env}_FILE"):
            current = f"*** (from {os.environ[f'{env}_FILE']})"
        shown = f"{current}  (default {default})" if current not in (None, "") else default
        print(f"{env}={shown}\n    {doc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopguide",
        description="Streaming, real-time personalization engine. Configured by SHOPGUIDE_* "
        "variables: see `shopguide config`.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu) in the foreground")
    p.add_argument("--port", type=int, default=None, help="port (default: the one in SHOPGUIDE_BROKER)")
    p.set_defaults(run=_broker)

    p = sub.add_parser("topics", help="create (idempotently) or list the engine's topics")
    p.add_argument("action", choices=("create", "list"))
    p.set_defaults(run=_topics)

    p = sub.add_parser("worker", help="run one engine worker")
    p.set_defaults(run=_worker)

    p = sub.add_parser("trainer", help="run a trainer variant: its snapshots serve experiments' trainer:<variant> arms")
    p.add_argument("--variant", required=True, help="a name declared in SHOPGUIDE_TRAINER_VARIANTS")
    p.set_defaults(run=_trainer)

    p = sub.add_parser("guide", help="run the shopping guide: /ask, reply drafts and the shopper's page")
    p.set_defaults(run=_guide)

    p = sub.add_parser("token", help="mint a shopper's session token for the page (signed, expiring)")
    p.add_argument("user_id")
    p.set_defaults(run=_token)

    p = sub.add_parser("produce", help="send JSON-lines events to a topic")
    p.add_argument("kind", choices=("clicks", "reviews", "items", "impressions"))
    p.add_argument("file", help="a JSON-lines file, or - for standard input")
    p.set_defaults(run=_produce)

    p = sub.add_parser("forget", help="erase users: their state and latest recommendation, through Kafka")
    p.add_argument("user_ids", nargs="+", metavar="USER_ID")
    p.set_defaults(run=_forget)

    p = sub.add_parser("rules", help="list, put or delete merchandising rules (pin, filter, boost, promote)")
    p.add_argument("action", choices=("list", "put", "delete"))
    p.add_argument("target", nargs="?", default="", help="put: a JSON or JSON-lines file of rules; delete: a rule id")
    p.set_defaults(run=_rules)

    p = sub.add_parser("experiments", help="list, put or delete experiments (arms with shares, models and rules)")
    p.add_argument("action", choices=("list", "put", "delete"))
    p.add_argument("target", nargs="?", default="", help="put: a JSON or JSON-lines file; delete: an experiment id")
    p.set_defaults(run=_experiments)

    p = sub.add_parser("tail", help="print a topic's messages (e.g. recommendations, sentiment, deadletter)")
    p.add_argument("topic")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    p.add_argument("--limit", type=int, default=0, help="stop after this many messages")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    p.set_defaults(run=_tail)

    p = sub.add_parser("replay", help="replay a public data set from ../shared/data as events")
    p.add_argument("format", choices=("taobao", "movielens", "reviews-zh", "reviews-en"))
    p.add_argument("--path", default=None, help="the data file (default: its place in ../shared/data)")
    p.add_argument("--limit", type=int, default=0, help="send at most this many events")
    p.add_argument("--rate", type=float, default=0.0, help="events per second (default: as fast as possible)")
    p.add_argument(
        "--timestamps",
        choices=("now", "original"),
        default="now",
        help="stamp events with the send time (default) or keep the data set's times",
    )
    p.set_defaults(run=_replay)

    p = sub.add_parser("demo", help="embedded broker + worker + a generated shop, end to end")
    p.add_argument("--events", type=int, default=2000, help="clicks, reviews and broken messages to send")
    p.add_argument("--rate", type=float, default=400.0, help="events per second")
    p.add_argument("--serve", action="store_true", help="keep the engine and the shopper's page running until Ctrl-C")
    p.set_defaults(run=_demo)

    p = sub.add_parser("config", help="list every SHOPGUIDE_* variable, its value and default")
    p.add_argument("--markdown", action="store_true", help="print the defaults as docs/configuration.md's table")
    p.set_defaults(run=_config)

    from model.offline.commands import register as register_model
    from streams.bench import register as register_bench

    register_model(sub)
    for name in ("train", "evaluate"):
        sub.choices[name].set_defaults(run=_model)
    register_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        err.print(f"shopguide: {exc}")
        return 2
    if args.command != "worker":  # the worker's logging is set up by Faust
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        return int(args.run(args, settings) or 0)
    except SettingsError as exc:  # what a command needs beyond valid values (a worker: its secrets)
        err.print(f"shopguide: {exc}")
        return 2
    except BrokerUnreachable as exc:
        err.print(f"shopguide: {exc}")
        return 69  # EX_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
