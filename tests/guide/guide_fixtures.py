"""Helpers of the guide's tests (plain functions, importable by name from any test module)."""

from __future__ import annotations


def review(event_id: str, item_id: str, text: str, ts: float = 1_795_800_000.0, **extra: object) -> dict[str, object]:
    """A review event as the guide receives it."""
    return {"event_id": event_id, "user_id": "u-1", "item_id": item_id, "text": text, "ts": ts, **extra}
