"""The whole suite's set-up: the compiled kernels warmed once, before any test's timeout runs, and
the longest tiers first."""

from __future__ import annotations

import os

import pytest

from model import kernels
from streams.testing.harness import KERNEL_CACHE_DIR
from streams.tools.children import die_with_parent_now


def pytest_configure(config: pytest.Config) -> None:
    """A test process of pytest-xdist dies with the run that started it, its brokers and workers
    with it (each started by :func:`streams.tools.children.die_with_parent`)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        die_with_parent_now()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the kernels (or load them) into the cache every worker the tests start reads, so
    that no test's worker compiles them (a cold compile takes half a minute)."""
    kernels.warm(KERNEL_CACHE_DIR)


#: Tiers by how long their files run, longest first: the two test processes (pytest-xdist, a file
#: at a time, in this order) start on the long files and end on short ones, instead of one process
#: finishing a long file alone.
_LONGEST_FIRST = ("reliability", "integration", "bench")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def tier(item: pytest.Item) -> int:
        parts = item.path.relative_to(item.config.rootpath).parts
        return next((n for n, name in enumerate(_LONGEST_FIRST) if name in parts), len(_LONGEST_FIRST))

    items.sort(key=tier)  # stable: the order inside a tier stays
