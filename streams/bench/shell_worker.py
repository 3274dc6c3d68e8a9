"""A worker whose model ranks nothing and learns nothing (:class:`~streams.bench.clickpath.ShellModel`),
all else as the engine runs: Faust and Kafka, the tables, parsing, effect marks, the users' states
loaded, updated and stored, the messages. What it drains is what the engine's machinery leaves
room for, the bound under the drain goals (``bench`` runs it as
``python -m streams.bench.shell_worker worker``)."""

from __future__ import annotations

import sys

from streams.bench.clickpath import ShellModel
from streams.engine.app import Engine
from streams.tools.cli import main


def _shell_model(_engine: Engine) -> ShellModel:
    return ShellModel()


if __name__ == "__main__":
    Engine.current_model = _shell_model  # type: ignore[method-assign,assignment]
    sys.exit(main())
