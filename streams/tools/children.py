"""Child processes that do not outlive the command that started them.

``shopguide demo``, ``shopguide bench`` and the test harness start the broker, workers and load
generators, and stop them (workers before the broker) in ``finally`` blocks, which an exception or
Ctrl-C runs. Two ways out skip those blocks: SIGTERM, which by default ends Python at once, and
SIGKILL or any crash of the interpreter. :func:`sigterm_exits` turns SIGTERM into ``SystemExit``
so that the cleanup runs; :func:`die_with_parent`, a ``preexec_fn``, asks Linux to SIGKILL the
child when the thread that started it ends (``prctl(PR_SET_PDEATHSIG)``), whatever the reason.
The children run in sessions of their own, so a Ctrl-C at the terminal reaches the command alone,
which stops them in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType

PR_SET_PDEATHSIG = 1
# Resolved now: the function runs between fork and exec, where nothing may be imported or looked up.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen`` (None where Linux's prctl is missing). Start such
    children from a thread that lives as long as they should: the main thread."""
    if _prctl is None:
        return None
    parent = os.getpid()
    return lambda: _arm(parent)


def die_with_parent_now() -> None:
    """:func:`die_with_parent` from inside the child, for a process whose starter passed no such
    ``preexec_fn`` (the test processes pytest-xdist starts: killed, it would leave them running
    their tests, and their brokers and workers, on their own)."""
    if _prctl is not None:
        _arm(os.getppid())


def _arm(parent: int) -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # type: ignore[misc]
    if os.getppid() != parent:  # the parent died before the wish was made
        os._exit(1)


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """Within: SIGTERM (and SIGHUP) raise ``SystemExit``, so that ``finally`` blocks stop children."""
    previous = {sig: signal.signal(sig, _exit) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
