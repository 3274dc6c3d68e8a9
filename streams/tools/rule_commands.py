"""``shopguide rules list|put FILE|delete ID``: the merchandising rules on the rules topic
(``streams.tools.keyed_commands``)."""

from __future__ import annotations

from pathlib import Path

from model.rules import RuleBook
from streams.events import parse_rule
from streams.processors.merchandising import apply_rule_record
from streams.settings import Settings
from streams.tools.keyed_commands import file_records, records_in_force, send_records
from streams.topics import Topics


def rule_records(path: Path) -> list[tuple[str, bytes]]:
    """(rule_id, record) of each rule in a file: one JSON object, an array of them, or JSON lines;
    :class:`InvalidEvent` naming the first rule that breaks the contract."""
    return file_records(path, lambda record: parse_rule(record).rule_id, "rule")


def send_rules(settings: Settings, records: list[tuple[str, bytes | None]]) -> None:
    """Send rules (a None record deletes its id), waiting until the broker acknowledged them all."""
    send_records(settings, Topics(settings).rules, records)


def rules_in_force(settings: Settings, timeout_s: float = 30.0) -> dict[str, bytes]:
    """The latest valid record of each rule id: the topic read from its start to its end."""
    book = RuleBook()
    return records_in_force(
        settings,
        Topics(settings).rules,
        lambda k, v: apply_rule_record(book, k, v),
        lambda: [rule.rule_id for rule in book.rules()],
        "rules",
        timeout_s,
    )
