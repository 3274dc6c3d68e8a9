"""A co-visitation index on disk: written whole and atomically, checked before it is loaded.

A worker keeps its co-visitation indexes in memory and writes each to its data directory every
``SHOPGUIDE_COVIS_CHECKPOINT_S`` seconds and when it stops; at start, before it joins its consumer
group, it loads them, so that a restarted worker serves with what it had learned instead of
nothing. A file is ``MAGIC``, the length of a JSON header, the header (the index's bounds, the
arrays' types and shapes), the item names (newline-separated: ids hold no control characters),
the arrays' bytes, and the SHA-256 of all that. It is written to a temporary file, synced and
renamed over the previous one, so a crash leaves the old file or the new one, never a mix. A file
that is truncated, corrupt, from other bounds or inconsistent is refused with a warning naming why,
and the worker starts with an empty index as it would without one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path

import numpy as np

from model.atomic_file import write_atomically
from model.covisitation import CovisArrays, CovisIndex

log = logging.getLogger(__name__)

MAGIC = b"SGCOVIS\x01"
_LENGTH = struct.Struct(">I")
_DIGEST = hashlib.sha256().digest_size


def encode(saved: CovisArrays) -> bytes:
    """The checkpoint file's bytes for ``saved``."""
    names = "\n".join(saved.names).encode()
    header = json.dumps(
        {
            "max_items": saved.max_items,
            "max_neighbors": saved.max_neighbors,
            "window": saved.window,
            "items": len(saved.names),
            "names_bytes": len(names),
            "shapes": {name: list(saved.arrays[name].shape) for name, _ in CovisArrays.LAYOUT},
        }
    ).encode()
    parts = [MAGIC, _LENGTH.pack(len(header)), header, names]
    parts += [np.ascontiguousarray(saved.arrays[name], dtype).tobytes() for name, dtype in CovisArrays.LAYOUT]
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode(data: bytes) -> CovisArrays:
    """The arrays a checkpoint file holds; ValueError saying what is wrong with it."""
    if len(data) < len(MAGIC) + _LENGTH.size + _DIGEST or not data.startswith(MAGIC):
        raise ValueError("not a co-visitation checkpoint (too short or wrong magic)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("checksum mismatch (truncated or corrupt)")
    (length,) = _LENGTH.unpack_from(body, len(MAGIC))
    at = len(MAGIC) + _LENGTH.size
    try:
        header = json.loads(body[at : at + length])
        at += length
        names_bytes = int(header["names_bytes"])
        text = body[at : at + names_bytes].decode()
        names = text.split("\n") if header["items"] else []
        at += names_bytes
        arrays = {}
        for name, dtype in CovisArrays.LAYOUT:
            shape = tuple(int(d) for d in header["shapes"][name])
            size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if size < 0 or at + size > len(body):
                raise ValueError(f"{name} runs past the end of the file")
            arrays[name] = np.frombuffer(body, dtype, int(np.prod(shape, dtype=np.int64)), at).reshape(shape).copy()
            at += size
        bounds = (int(header["max_items"]), int(header["max_neighbors"]), int(header["window"]))
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable header or names: {exc!r}") from exc
    if at != len(body):
        raise ValueError(f"{len(body) - at} bytes after the last array")
    if len(names) != header["items"]:
        raise ValueError(f"{len(names)} item names where the header says {header['items']}")
    return CovisArrays(*bounds, names, arrays)


class CovisCheckpoint:
    """One index's checkpoint file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, saved: CovisArrays) -> int:
        """Write ``saved`` atomically (temporary file, fsync, rename, fsync of the directory); its
        size in bytes."""
        data = encode(saved)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, data, sync_directory=True)
        return len(data)

    def load(self, expected: CovisIndex) -> CovisIndex:
        """The saved index over ``expected``'s item ids, or ``expected`` itself (an empty index
        with the bounds wanted) when there is no file or it is refused: truncated, corrupt,
        inconsistent or made with other bounds (each logged with the reason)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            log.info("co-visitation: no checkpoint at %s, starting empty", self.path)
            return expected
        except OSError as exc:
            log.warning("co-visitation: checkpoint %s unreadable (%r), starting empty", self.path, exc)
            return expected
        try:
            saved = decode(data)
            bounds = (saved.max_items, saved.max_neighbors, saved.window)
            wanted = (expected.max_items, expected.max_neighbors, expected.window)
            if bounds != wanted:
                raise ValueError(f"made with max_items, max_neighbors, window = {bounds}, not {wanted}")
            index = CovisIndex.restore(saved, expected.ids)
        except (ValueError, IndexError, TypeError) as exc:  # the file is input: never a crash at start
            log.warning("co-visitation: checkpoint %s refused (%s), starting empty", self.path, exc)
            return expected
        log.info("co-visitation: loaded %s (%d items, %d bytes)", self.path, len(saved.names), len(data))
        return index
