"""Fault-injection fixtures: the session's broker is shared with the integration tests' conftest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.tools.broker import EmbeddedBroker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A broker of this module's own: fault tests stop and freeze it."""
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log") as b:
        yield b
