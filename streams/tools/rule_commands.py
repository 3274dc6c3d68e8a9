"""``shopguide rules list|put FILE|delete ID``: the merchandising rules on the rules topic.

``put`` checks every rule of the file with the workers' own validation before it sends any, so a
typo is reported here rather than dead-lettered; ``list`` reads the compacted topic to its end and
shows the rules in force, as the workers fold them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kafka import KafkaConsumer

from model.rules import RuleBook
from streams.errors import InvalidEvent
from streams.events import compact_json, parse_rule
from streams.processors.merchandising import apply_rule_record
from streams.settings import Settings
from streams.tools.producer import EventProducer
from streams.tools.tail import assign_all
from streams.topics import Topics


def rule_records(path: Path) -> list[tuple[str, bytes]]:
    """(rule_id, record) of each rule in a file: one JSON object, an array of them, or JSON lines;
    :class:`InvalidEvent` naming the first rule that breaks the contract."""
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
            rule = parse_rule(record)
        except InvalidEvent as exc:
            raise InvalidEvent(exc.reason, f"rule {n} of {path}: {exc}") from None
        out.append((rule.rule_id, record))
    return out


def send_rules(settings: Settings, records: list[tuple[str, bytes | None]]) -> None:
    """Send rules (a None record deletes its id), waiting until the broker acknowledged them all."""
    topic = Topics(settings).rules
    with EventProducer(settings) as producer:
        for rule_id, record in records:
            producer.send(topic, rule_id.encode(), record)
        producer.flush()


def rules_in_force(settings: Settings, timeout_s: float = 30.0) -> dict[str, bytes]:
    """The latest valid record of each rule id: the topic read from its start to its end."""
    topic = Topics(settings).rules
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, **settings.kafka_client_options()
    )
    try:
        tps = assign_all(consumer, topic, settings, "rules", " (`shopguide topics create`)")
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        book, raw = RuleBook(), {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise SystemExit(f"rules: could not read {topic} to its end within {timeout_s:.0f} s")
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    if apply_rule_record(book, r.key, r.value) is None and r.value is not None:
                        raw[r.key.decode()] = r.value
        return {rule.rule_id: raw[rule.rule_id] for rule in book.rules()}
    finally:
        consumer.close()
