"""``list|put FILE|delete ID`` of a compacted topic of definitions keyed by id (merchandising
rules, experiments).

``put`` checks every definition of the file with the workers' own validation before it sends any,
so a typo is reported here rather than dead-lettered; ``list`` reads the compacted topic to its end
and shows the definitions in force, as the workers fold them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaConsumer

from streams.errors import InvalidEvent
from streams.events import compact_json
from streams.settings import Settings
from streams.tools.producer import EventProducer
from streams.tools.tail import assign_all

#: Folds one record into the caller's book; why it is invalid, if it is.
Fold = Callable[[bytes | None, bytes | None], InvalidEvent | None]


def file_records(path: Path, parse: Callable[[bytes], str], what: str) -> list[tuple[str, bytes]]:
    """(id, record) of each definition in a file: one JSON object, an array of them, or JSON
    lines; ``parse`` gives a record's id or raises :class:`InvalidEvent`, which is raised again
    naming the first definition that breaks the contract."""
    text = path.read_text(encoding="utf-8")
    try:
        parsed = json.loads(text)
        objects = parsed if isinstance(parsed, list) else [parsed]
    except ValueError:
        objects = [json.loads(line) for line in text.splitlines() if line.strip()]
    out = []
    for n, obj in enumerate(objects, 1):
        record = compact_json(obj) if isinstance(obj, dict) else json.dumps(obj).encode()
        try:
            key = parse(record)
        except InvalidEvent as exc:
            raise InvalidEvent(exc.reason, f"{what} {n} of {path}: {exc}") from None
        out.append((key, record))
    return out


def send_records(settings: Settings, topic: str, records: list[tuple[str, bytes | None]]) -> None:
    """Send records by id (a None record deletes its id), waiting until the broker acknowledged them all."""
    with EventProducer(settings) as producer:
        for key, record in records:
            producer.send(topic, key.encode(), record)
        producer.flush()


def records_in_force(
    settings: Settings, topic: str, fold: Fold, in_force: Callable[[], list[str]], what: str, timeout_s: float = 30.0
) -> dict[str, bytes]:
    """The latest valid record of each id that ``in_force`` names after ``fold`` has seen the
    topic from its start to its end."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, **settings.kafka_client_options()
    )
    try:
        tps = assign_all(consumer, topic, settings, what, " (`shopguide topics create`)")
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        raw = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: could not read {topic} to its end within {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    if fold(r.key, r.value) is None and r.value is not None:
                        raw[r.key.decode()] = r.value
        return {key: raw[key] for key in in_force()}
    finally:
        consumer.close()
