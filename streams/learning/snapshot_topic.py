"""Model snapshots and trainer progress over a compacted Kafka topic.

A snapshot is a few megabytes, above many brokers' default message limit, so it travels as
numbered chunks followed by a manifest (its version, chunk count, size and SHA-256). Keys are fixed
(``chunk/0``, ``chunk/1``..., ``manifest``), so compaction keeps exactly the newest snapshot; each
chunk carries its version, so a reader never mixes the chunks of two snapshots. A ``progress``
record says how far the trainer has got, which is what the snapshot age is measured against.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

CHUNK_BYTES = 512 * 1024
MANIFEST_KEY = b"manifest"
PROGRESS_KEY = b"progress"
_CHUNK_HEAD = struct.Struct("<QII")  # version, index, count


@dataclass(frozen=True, slots=True)
class Progress:
    """The trainer's position: the newest event it has learned from, and how many examples."""

    trained_until: float
    examples: int
    version: int

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"trained_until": self.trained_until, "examples": self.examples, "version": self.version}
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Progress:
        obj = json.loads(data)
        return cls(float(obj["trained_until"]), int(obj["examples"]), int(obj["version"]))


def snapshot_records(data: bytes, version: int) -> list[tuple[bytes, bytes]]:
    """The records that publish one snapshot, manifest last."""
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    records = [
        (f"chunk/{i}".encode(), _CHUNK_HEAD.pack(version, i, len(chunks)) + chunk) for i, chunk in enumerate(chunks)
    ]
    manifest = {
        "version": version,
        "chunks": len(chunks),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    records.append((MANIFEST_KEY, json.dumps(manifest).encode()))
    return records


class SnapshotAssembler:
    """Reassembles snapshots from the topic's records, in any interleaving of versions."""

    def __init__(self) -> None:
        self._chunks: dict[int, dict[int, bytes]] = {}  # version -> index -> payload
        self.rejected: list[str] = []  # why a manifest could not be honoured
        self.newest = 0  # highest version a manifest announced

    def add(self, key: bytes | None, value: bytes | None) -> tuple[int, bytes] | None:
        """Feed one record; returns ``(version, snapshot bytes)`` when a manifest completes one."""
        if key is None or value is None:
            return None
        if key.startswith(b"chunk/"):
            if len(value) < _CHUNK_HEAD.size:
                self.rejected.append("chunk shorter than its header")
                return None
            version, index, count = _CHUNK_HEAD.unpack_from(value)
            self._chunks.setdefault(version, {})[index] = value[_CHUNK_HEAD.size :]
            return None
        if key != MANIFEST_KEY:
            return None
        try:
            manifest = json.loads(value)
            version, count = int(manifest["version"]), int(manifest["chunks"])
            digest = str(manifest["sha256"])
        except (ValueError, KeyError, TypeError):
            self.rejected.append("unreadable manifest")
            return None
        self.newest = max(self.newest, version)
        parts = self._chunks.get(version, {})
        if any(i not in parts for i in range(count)):
            self.rejected.append(f"snapshot {version}: chunks missing")
            return None
        data = b"".join(parts[i] for i in range(count))
        # Everything up to this version is settled: older chunks can go.
        for v in [v for v in self._chunks if v <= version]:
            del self._chunks[v]
        if hashlib.sha256(data).hexdigest() != digest:
            self.rejected.append(f"snapshot {version}: checksum of the chunks does not match")
            return None
        return version, data
