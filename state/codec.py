"""Compact, versioned byte encoding for state values stored in RocksDB and changelogs.

States are written once per event, so the encoding is on the hot path and counts against the
per-user byte budget: msgpack of plain lists, prefixed with a format byte so that a future layout
can still read today's values.
"""

from __future__ import annotations

from typing import Any

import msgpack

from state.errors import StateDecodeError

FORMAT = 1


def encode(fields: list[Any]) -> bytes:
    return bytes((FORMAT,)) + msgpack.packb(fields, use_bin_type=True)


def decode(data: bytes, kind: str) -> list[Any]:
    if not data or data[0] != FORMAT:
        raise StateDecodeError(f"{kind} state: unknown format byte {data[:1]!r}")
    try:
        fields = msgpack.unpackb(data[1:], raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise StateDecodeError(f"{kind} state: {exc}") from None
    if not isinstance(fields, list):
        raise StateDecodeError(f"{kind} state: expected a list, got {type(fields).__name__}")
    return fields
