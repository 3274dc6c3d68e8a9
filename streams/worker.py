"""``shopguide worker``: one engine worker process."""

from __future__ import annotations

import logging

import faust

from streams.app import Engine
from streams.settings import Settings
from streams.topics import create_topics, heal_changelogs

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; Faust's worker stops agents, commits and closes tables."""
    if settings.create_topics:
        created, _ = create_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
    heal_changelogs(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(settings)
    worker = faust.Worker(engine.app, loglevel=settings.log_level, redirect_stdouts=False)
    worker.execute_from_commandline()
