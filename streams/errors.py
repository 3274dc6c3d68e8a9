"""Every error the streaming side raises on purpose (bad events, bad settings, a broken topic
layout), and how it tells a failing disk from a failing event."""

from __future__ import annotations

import errno


class SettingsError(ValueError):
    """A ``SHOPGUIDE_*`` variable holds a value of the wrong type or range."""


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count that would break co-partitioning."""


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered a client within its deadline; the message names the last cause the
    client saw (connection refused, an untrusted certificate, a refused login)."""


class ScramLoginRefused(ValueError):
    """The broker answered a SCRAM login with an error (unknown user, wrong password)."""


class InvalidEvent(ValueError):
    """A message that breaks its topic's contract. ``reason`` is one of :data:`streams.events.REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: OS errors of the disk itself: full, over quota, read-only, failing.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


def is_storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the local disk failing under the tables (full, read-only, I/O error), as
    the OS or RocksDB reports it (rocksdict raises a bare ``Exception("IO error: ...")``): no
    event's fault, so no event may be dead-lettered or acknowledged for it."""
    if isinstance(exc, OSError):
        return exc.errno in _DISK_ERRNOS
    return type(exc) is Exception and str(exc).startswith("IO error")
