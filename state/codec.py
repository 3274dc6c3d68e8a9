"""Compact, versioned byte encoding for state values stored in RocksDB and changelogs.

States are written once per event, so the encoding is on the hot path and counts against the
per-user byte budget: msgpack of plain lists, prefixed with a format byte so that a future layout
can still read today's values.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import msgpack

from state.errors import StateDecodeError

FORMAT = 1


def encode(fields: list[Any]) -> bytes:
    return bytes((FORMAT,)) + pack(fields)


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


def pack(value: Any) -> bytes:
    """``value`` in msgpack as :func:`encode` packs a field (``msgpack.packb``'s bytes, by a
    packer kept per thread: a state's store packs several values, each ``packb`` would make one)."""
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(value)


_local = threading.local()


def packed_array(elements: Sequence[bytes]) -> bytes:
    """The msgpack array of already packed ``elements``: ``pack`` of the list of their values."""
    return _array_header(len(elements)) + b"".join(elements)


def encode_packed(packed: Sequence[bytes], rest: list[Any]) -> bytes:
    """:func:`encode` of a list whose first fields are given already packed (``packed``) and the
    others as values (``rest``, fewer than 16, so that their own array header is one byte): the
    same bytes."""
    if len(rest) >= 16:
        raise ValueError(f"encode_packed: at most 15 fields as values, got {len(rest)}")
    header = _array_header(len(packed) + len(rest))
    return b"".join((bytes((FORMAT,)), header, *packed, pack(rest)[1:]))


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")
