"""``shopguide experiments list|put FILE|delete ID``: the experiments on the experiments topic
(``streams.tools.keyed_commands``)."""

from __future__ import annotations

from pathlib import Path

from model.experiments import ExperimentBook
from streams.events import parse_experiment
from streams.processors.experiment_records import apply_experiment_record
from streams.settings import Settings
from streams.tools.keyed_commands import file_records, records_in_force, send_records
from streams.topics import Topics


def experiment_records(path: Path) -> list[tuple[str, bytes]]:
    """(experiment_id, record) of each experiment in a file; :class:`InvalidEvent` naming the
    first experiment that breaks the contract."""
    return file_records(path, lambda record: parse_experiment(record).experiment_id, "experiment")


def send_experiments(settings: Settings, records: list[tuple[str, bytes | None]]) -> None:
    """Send experiments (a None record deletes its id), waiting until the broker acknowledged them all."""
    send_records(settings, Topics(settings).experiments, records)


def experiments_in_force(settings: Settings, timeout_s: float = 30.0) -> dict[str, bytes]:
    """The latest valid record of each experiment id: the topic read from its start to its end."""
    book = ExperimentBook()
    return records_in_force(
        settings,
        Topics(settings).experiments,
        lambda k, v: apply_experiment_record(book, k, v),
        lambda: [e.experiment_id for e in book.experiments()],
        "experiments",
        timeout_s,
    )
