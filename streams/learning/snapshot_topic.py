"""Model snapshots and trainer progress over a compacted Kafka topic, signed.

A snapshot is a few megabytes, above many brokers' default message limit, so it travels as
numbered chunks followed by a manifest (its version, chunk count and size). Keys are fixed
(``chunk/0``, ``chunk/1``..., ``manifest``), so compaction keeps exactly the newest snapshot; each
chunk carries its version, so a reader never mixes the chunks of two snapshots. Between full
snapshots a trainer publishes deltas against the last full one (:mod:`model.snapshot_delta`) the
same way under keys of their own (``delta/chunk/0``..., ``delta/manifest``, whose manifest also
names the base); a full snapshot's publication ends with a tombstone for ``delta/manifest``, so
that compaction keeps the newest full snapshot and, only if one came after it, the newest delta:
what a reader starting late needs to be up to date. A ``progress`` record says how far the
trainer has got, which is what the snapshot age is measured against.

Whoever can write to the topic must not control the model, so every record carries an HMAC-SHA256
under the snapshot key (``SHOPGUIDE_SNAPSHOT_KEY``): a chunk's over its header and bytes, the
manifest's and the progress record's over their fields, each with its own domain prefix so that
one kind of record cannot pass for another. The chunk MACs bind version, index and count, and the
manifest's binds version, count and size (and a delta's its base), so a completed snapshot is
exactly what the key holder published; deltas are signed under domains of their own, so that no
record of a delta passes for one of a full snapshot, nor the reverse. The assembler drops
unsigned chunks at once and keeps the chunks of at most :data:`PENDING_VERSIONS` versions of at
most :data:`MAX_SNAPSHOT_BYTES` each: its memory is bounded whatever is written to the topic.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from model.snapshot import MAX_VERSION, MAX_WEIGHT_BYTES

CHUNK_BYTES = 512 * 1024
MANIFEST_KEY = b"manifest"
DELTA_PREFIX = b"delta/"
PROGRESS_KEY = b"progress"
#: Largest snapshot the topic carries (float16 tensors and row indexes stay below this).
MAX_SNAPSHOT_BYTES = MAX_WEIGHT_BYTES
MAX_CHUNKS = math.ceil(MAX_SNAPSHOT_BYTES / CHUNK_BYTES)
#: Versions whose chunks an assembler holds at once (a publication and the one after it).
PENDING_VERSIONS = 2
_CHUNK_HEAD = struct.Struct("<QII")  # version, index, count
_MAC = 32
_CHUNK_DOMAIN = b"shopguide-chunk\0"
_MANIFEST_DOMAIN = b"shopguide-manifest\0"
_PROGRESS_DOMAIN = b"shopguide-progress\0"
_DELTA_CHUNK_DOMAIN = b"shopguide-delta-chunk\0"
_DELTA_MANIFEST_DOMAIN = b"shopguide-delta-manifest\0"


class SignatureError(ValueError):
    """A record of the snapshot topic that is unsigned, wrongly signed or malformed; ``reason`` is
    the metric label (``unsigned``, ``bad_signature``, ``malformed``, ``too_large``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _mac(key: bytes, domain: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, domain, hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def _signed_json(key: bytes, domain: bytes, fields: Mapping[str, object]) -> bytes:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({**fields, "hmac": _mac(key, domain, body).hex()}, sort_keys=True).encode()


def _verified_json(key: bytes, domain: bytes, data: bytes, names: tuple[str, ...]) -> dict[str, int | float]:
    """The named numeric fields of a signed JSON record, or :class:`SignatureError`."""
    try:
        obj = json.loads(data)
        fields = {name: obj[name] for name in names}
        tag = bytes.fromhex(obj["hmac"]) if "hmac" in obj else None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise SignatureError("malformed", f"unreadable record: {str(exc)[:100]}") from None
    if tag is None:
        raise SignatureError("unsigned", "record without a signature")
    if not all(type(v) in (int, float) for v in fields.values()):
        raise SignatureError("malformed", "a field is not a number")
    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    if not hmac.compare_digest(tag, _mac(key, domain, body)):
        raise SignatureError("bad_signature", "the signature does not match the snapshot key")
    return fields


@dataclass(frozen=True, slots=True)
class Progress:
    """The trainer's position: the newest event it has learned from, and how many examples."""

    trained_until: float
    examples: int
    version: int

    def to_bytes(self, key: bytes) -> bytes:
        fields = {"trained_until": self.trained_until, "examples": self.examples, "version": self.version}
        return _signed_json(key, _PROGRESS_DOMAIN, fields)

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> Progress:
        """Verified, or :class:`SignatureError`."""
        f = _verified_json(key, _PROGRESS_DOMAIN, data, ("trained_until", "examples", "version"))
        if not (math.isfinite(f["trained_until"]) and type(f["examples"]) is int and type(f["version"]) is int):
            raise SignatureError("malformed", "progress fields of the wrong type")
        return cls(float(f["trained_until"]), int(f["examples"]), int(f["version"]))


@dataclass(frozen=True, slots=True)
class Published:
    """A snapshot assembled from the topic: its version, its bytes, and for a delta the version of
    the full snapshot it applies to (None: a full snapshot)."""

    version: int
    data: bytes
    base: int | None = None


def snapshot_records(
    data: bytes, version: int, key: bytes, base: int | None = None
) -> list[tuple[bytes, bytes | None]]:
    """The signed records that publish one snapshot, or with ``base`` one delta, manifest last
    (then, for a full snapshot, the tombstone of the previous delta)."""
    if not 0 < version <= MAX_VERSION or len(data) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"cannot publish version {version} of {len(data)} bytes")
    if base is not None and not 0 < base < version:
        raise ValueError(f"a delta of version {version} cannot apply to version {base}")
    prefix, chunk_domain = (b"", _CHUNK_DOMAIN) if base is None else (DELTA_PREFIX, _DELTA_CHUNK_DOMAIN)
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    records: list[tuple[bytes, bytes | None]] = []
    for i, chunk in enumerate(chunks):
        head = _CHUNK_HEAD.pack(version, i, len(chunks))
        records.append((prefix + f"chunk/{i}".encode(), head + _mac(key, chunk_domain, head, chunk) + chunk))
    manifest = {"version": version, "chunks": len(chunks), "bytes": len(data)}
    if base is None:
        records += [
            (MANIFEST_KEY, _signed_json(key, _MANIFEST_DOMAIN, manifest)),
            (DELTA_PREFIX + MANIFEST_KEY, None),
        ]
    else:
        records.append(
            (DELTA_PREFIX + MANIFEST_KEY, _signed_json(key, _DELTA_MANIFEST_DOMAIN, manifest | {"base": base}))
        )
    return records


class SnapshotAssembler:
    """Reassembles signed snapshots and deltas from the topic's records, in any interleaving of
    versions."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._chunks: dict[tuple[bool, int], dict[int, bytes]] = {}  # (delta?, version) -> index -> payload
        self.rejected: list[SignatureError] = []  # records refused, oldest first; the caller drains it
        self.newest = 0  # highest version a verified manifest announced

    def add(self, key: bytes | None, value: bytes | None) -> Published | None:
        """Feed one record; returns the snapshot or delta when a manifest completes one."""
        if key is None or value is None:
            return None
        delta = key.startswith(DELTA_PREFIX)
        if delta:
            key = key[len(DELTA_PREFIX) :]
        try:
            if key.startswith(b"chunk/"):
                self._add_chunk(value, delta)
            elif key == MANIFEST_KEY:
                return self._complete(value, delta)
        except SignatureError as exc:
            self.rejected.append(exc)
        return None

    def _add_chunk(self, value: bytes, delta: bool) -> None:
        if len(value) < _CHUNK_HEAD.size + _MAC:
            raise SignatureError("unsigned", "chunk shorter than its signed header")
        head, tag, payload = (
            value[: _CHUNK_HEAD.size],
            value[_CHUNK_HEAD.size : _CHUNK_HEAD.size + _MAC],
            value[_CHUNK_HEAD.size + _MAC :],
        )
        domain = _DELTA_CHUNK_DOMAIN if delta else _CHUNK_DOMAIN
        if not hmac.compare_digest(tag, _mac(self._key, domain, head, payload)):
            raise SignatureError("bad_signature", "a chunk's signature does not match the snapshot key")
        version, index, count = _CHUNK_HEAD.unpack(head)
        if count > MAX_CHUNKS or index >= count or len(payload) > CHUNK_BYTES or version > MAX_VERSION:
            raise SignatureError("too_large", f"chunk {index} of {count} of version {version} is out of bounds")
        if version <= self.newest:
            return  # a snapshot already settled
        if (delta, version) not in self._chunks and len(self._chunks) >= PENDING_VERSIONS:
            del self._chunks[min(self._chunks, key=lambda kv: kv[1])]  # the oldest unfinished publication gives way
        self._chunks.setdefault((delta, version), {})[index] = payload

    def _complete(self, value: bytes, delta: bool) -> Published | None:
        if delta:
            names: tuple[str, ...] = ("version", "chunks", "bytes", "base")
            m = _verified_json(self._key, _DELTA_MANIFEST_DOMAIN, value, names)
        else:
            m = _verified_json(self._key, _MANIFEST_DOMAIN, value, ("version", "chunks", "bytes"))
        version, count, size = m["version"], m["chunks"], m["bytes"]
        if not all(type(v) is int for v in m.values()) or not 0 < count <= MAX_CHUNKS:
            raise SignatureError("malformed", "manifest fields out of range")
        version, count, size = int(version), int(count), int(size)
        base = int(m["base"]) if delta else None
        if version <= self.newest:
            return None  # compaction replays an old manifest: nothing new
        self.newest = version  # authentic, so the trainer's next version must pass it even if incomplete
        parts = self._chunks.get((delta, version), {})
        for settled in [k for k in self._chunks if k[1] <= version]:  # everything up to it is settled
            del self._chunks[settled]
        if any(i not in parts for i in range(count)):
            raise SignatureError("incomplete", f"snapshot {version}: chunks missing")
        data = b"".join(parts[i] for i in range(count))
        if len(data) != size:
            raise SignatureError("malformed", f"snapshot {version}: {len(data)} bytes, the manifest says {size}")
        return Published(version, data, base)

    @property
    def pending_bytes(self) -> int:
        """Bytes of chunks held for snapshots not yet complete."""
        return sum(len(p) for parts in self._chunks.values() for p in parts.values())
