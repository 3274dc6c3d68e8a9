"""Every error state raises on purpose: stored bytes it cannot read."""

from __future__ import annotations


class StateDecodeError(ValueError):
    """Stored bytes are not a state value this version understands."""
