"""Session fixtures of the model's tests (helpers live in ``model_fixtures``)."""

from __future__ import annotations

import pytest
from model_fixtures import Stream


@pytest.fixture(scope="session")
def stream() -> Stream:
    return Stream()
