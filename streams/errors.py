"""Every error the streaming side raises on purpose: bad events, bad settings, a broken topic layout."""

from __future__ import annotations


class SettingsError(ValueError):
    """A ``SHOPGUIDE_*`` variable holds a value of the wrong type or range."""


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count that would break co-partitioning."""


class InvalidEvent(ValueError):
    """A message that breaks its topic's contract. ``reason`` is one of :data:`streams.events.REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
