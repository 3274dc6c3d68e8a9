"""The whole suite's set-up: the compiled kernels warmed once, before any test's timeout runs."""

from __future__ import annotations

import pytest

from model import kernels
from streams.testing.harness import KERNEL_CACHE_DIR


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the kernels (or load them) into the cache every worker the tests start reads, so
    that no test's worker compiles them (a cold compile takes half a minute)."""
    kernels.warm(KERNEL_CACHE_DIR)
