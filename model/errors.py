"""Every error the model raises on purpose: configs, examples and snapshots it cannot accept."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot describe a model (unknown option, bad value)."""


class ExampleDecodeError(ValueError):
    """Bytes that are not an example this version understands."""


class SnapshotError(ValueError):
    """Bytes or files that are not a valid snapshot: corrupt, truncated, tampered or mis-shaped."""
