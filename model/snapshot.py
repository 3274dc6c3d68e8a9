"""Versioned model snapshots: a self-describing, checksummed byte format and a directory store.

A snapshot travels from the trainer to every worker (possibly every few seconds) and sits on disk
as a checkpoint, so its format is: no pickle (loading must never run code), a JSON header (version,
creation time, training counters, metrics, the model config and a table of tensors), raw
little-endian tensor bytes, then a SHA-256 of everything before it. Loading verifies the checksum,
every offset, and every shape against the shapes the embedded config implies, and raises
:class:`SnapshotError` with the reason on any mismatch, any malformed header included. The sizes a
header declares are checked against :data:`MAX_WEIGHT_BYTES` and :data:`MAX_VERSION` before any
array is allocated, so a small forged snapshot cannot make a worker allocate gigabytes. (The
checksum is not a signature: whoever may publish snapshots is checked by
``streams.learning.snapshot_topic``.)

Embedding tables are mostly zero rows early on (and for a new shop), so a table may be stored as
its non-zero rows plus their indices; tensors may be stored as float16 to halve the size (the
shipped warm start, and the serving snapshots a trainer publishes to workers every second or two:
``to_bytes(dtype="float16")``). Loading always gives float32. Encoding and decoding avoid every
copy they can (the checksum runs over the chunks, verification over the stored rows only), and a
decoded snapshot keeps its bytes, so a worker that stores what it received does not re-encode.
The framing and tensor helpers below are shared with the deltas between snapshots
(:mod:`model.snapshot_delta`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import struct
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from model.atomic_file import write_atomically
from model.config import ModelConfig, weight_shapes
from model.errors import ConfigError, SnapshotError

log = logging.getLogger(__name__)

MAGIC = b"SHOPGUIDE-SNAPSHOT\n"
FORMAT = 1
_PREFIX = struct.Struct("<IQ")  # format, header length
_DIGEST = 32
#: Stored element types. "bfloat16" is the upper half of a float32 (rounded), kept as uint16:
#: float32's range, 8 significant bits, and numpy converts it with two integer passes.
_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16, "int32": np.int32}
#: Optimizer state lives beside the weights under this prefix (training checkpoints only).
OPTIMIZER_PREFIX = "optimizer/"
#: Most float32 bytes the tensors of one snapshot, optimizer state included, may expand to (the
#: default model's weights are 26 MB); checked from the header, before anything is allocated.
MAX_WEIGHT_BYTES = 256 * 2**20
#: Highest version a snapshot may carry: far below 2**64, so that the next version always fits the
#: 64-bit fields that carry it, and exact in a JSON number.
MAX_VERSION = 2**53


@dataclass(frozen=True)
class Snapshot:
    version: int
    config: ModelConfig
    weights: dict[str, np.ndarray]
    created: float = field(default_factory=time.time)
    counters: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # provenance: data checksums, command
    #: The bytes this snapshot was decoded from (``from_bytes``); ``replace`` does not copy it.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def serving_weights(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.weights.items() if not k.startswith(OPTIMIZER_PREFIX)}

    def without_optimizer(self) -> Snapshot:
        return replace(self, weights=self.serving_weights())

    def to_bytes(self, *, dtype: str | None = None, sparse_rows: bool = True) -> bytes:
        """Encode. ``dtype="float16"`` halves floating tensors (what a trainer should publish to
        workers: ``snap.to_bytes(dtype="float16")``); a tensor whose values do not fit float16 is
        kept float32. ``sparse_rows`` stores a 2-D tensor as its non-zero rows when that is
        smaller. With no arguments, a snapshot decoded by :meth:`from_bytes` returns the very bytes
        it came from (they decode to exactly its weights), so storing a received snapshot costs no
        re-encoding; otherwise ``dtype`` defaults to float32 (lossless)."""
        if dtype is None and sparse_rows and self._encoded is not None:
            return self._encoded
        dtype = dtype or "float32"
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
        tensors: list[dict[str, Any]] = []
        chunks: list[Any] = []
        offset = 0
        for name in sorted(self.weights):
            array = np.asarray(self.weights[name], np.float32)
            if not array.flags.c_contiguous:  # (ascontiguousarray would make a scalar 1-d)
                array = array.copy()
            entry: dict[str, Any] = {"name": name, "shape": list(array.shape)}
            if sparse_rows and array.ndim == 2 and array.shape[0] >= 64 and array.size:
                # Bit patterns, not values: -0.0 counts as non-zero, which is only conservative.
                nonzero = np.flatnonzero(array.view(np.int32).any(axis=1)).astype("<i4")
                if len(nonzero) < 0.75 * array.shape[0]:
                    offset = add_rows(entry, nonzero, chunks, offset)
                    array = np.take(array, nonzero, axis=0)
            stored, entry["dtype"] = stored_form(array, dtype)
            offset = add_values(entry, stored, chunks, offset)
            tensors.append(entry)
        fields = {
            "version": self.version,
            "created": self.created,
            "config": self.config.to_dict(),
            "counters": self.counters,
            "metrics": self.metrics,
            "extra": self.extra,
        }
        return frame(MAGIC, fields, tensors, chunks)

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Decode and verify; raises :class:`SnapshotError` saying what is wrong, whatever the
        bytes. The weights are float32 and read-only (a snapshot is a value; its bytes are kept for
        :meth:`to_bytes`)."""
        try:
            return cls._decode(bytes(data))
        except SnapshotError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError, MemoryError) as exc:
            raise SnapshotError(f"malformed snapshot: {type(exc).__name__}: {str(exc)[:200]}") from None

    @classmethod
    def _decode(cls, data: bytes) -> Snapshot:
        header, payload = unframe(MAGIC, data, "shopguide snapshot")
        config, version, tensors = header_fields(header)
        expected = weight_shapes(config)
        _check_sizes(expected, tensors)
        weights = {str(t["name"]): _decode_tensor(t, payload) for t in tensors}
        missing = set(expected) - set(weights)
        unexpected = {n for n in set(weights) - set(expected) if not n.startswith(OPTIMIZER_PREFIX)}
        if missing or unexpected:
            raise SnapshotError(
                f"weights do not match the config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
            )
        for name, shape in expected.items():
            if weights[name].shape != shape:
                raise SnapshotError(f"weight {name}: shape {weights[name].shape}, expected {shape}")
        snapshot = cls(version=version, config=config, weights=weights, **header_details(header))
        object.__setattr__(snapshot, "_encoded", data)
        return snapshot


def stored_form(array: np.ndarray, dtype: str) -> tuple[np.ndarray, str]:
    """``array`` (float32, C-contiguous) as stored in ``dtype``, and the dtype actually used: a
    float16 tensor whose values do not fit float16 stays float32 (inf would fail verification and
    get the snapshot refused)."""
    if dtype == "bfloat16":
        return _to_bfloat16(array), dtype
    if dtype == "float16":
        with np.errstate(over="ignore"):  # checked just below
            stored = array.astype("<f2")
        if np.isfinite(stored).all():
            return stored, dtype
    return array.astype("<f4", copy=False), "float32"


def stored_weights(weights: dict[str, np.ndarray], dtype: str) -> dict[str, tuple[np.ndarray, str]]:
    """Each tensor as :meth:`Snapshot.to_bytes` with ``dtype`` stores it, and the dtype used
    (:func:`widened` gives what a worker decodes, bit for bit): what a delta is computed against."""
    out = {}
    for name, weight in weights.items():
        array = np.ascontiguousarray(weight, np.float32).reshape(np.shape(weight))
        out[name] = stored_form(array, dtype)
    return out


def widened(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values back as float32."""
    if dtype == "bfloat16":
        return _from_bfloat16(stored)
    return stored.astype(np.float32, copy=False)


def add_rows(entry: dict[str, Any], index: np.ndarray, chunks: list[Any], offset: int) -> int:
    """Record a tensor's stored row indices (``<i4``, sorted) in ``entry`` and ``chunks``."""
    entry["rows"] = {"offset": offset, "count": len(index)}
    chunks.append(index.tobytes())
    return offset + index.nbytes


def add_values(entry: dict[str, Any], stored: np.ndarray, chunks: list[Any], offset: int) -> int:
    """Record a tensor's stored values in ``entry`` and ``chunks``."""
    entry |= {"offset": offset, "nbytes": stored.nbytes}
    chunks.append(stored.reshape(-1).view(np.uint8) if stored.size else b"")
    return offset + stored.nbytes


def frame(magic: bytes, fields: dict[str, Any], tensors: list[dict[str, Any]], chunks: list[Any]) -> bytes:
    """Magic, format, the JSON header (``fields`` and the tensor table), the tensor bytes and a
    SHA-256 of all that."""
    header = json.dumps({**fields, "tensors": tensors}, ensure_ascii=False, sort_keys=True).encode("utf-8")
    head = magic + _PREFIX.pack(FORMAT, len(header)) + header
    digest = hashlib.sha256(head)
    for chunk in chunks:
        digest.update(chunk)
    return b"".join([head, *chunks, digest.digest()])


def unframe(magic: bytes, data: bytes, what: str) -> tuple[dict[str, Any], memoryview]:
    """The header and the tensor bytes of a :func:`frame`, checksum verified."""
    head = len(magic) + _PREFIX.size
    if len(data) < head + _DIGEST or not data.startswith(magic):
        raise SnapshotError(f"not a {what} (bad magic or too short)")
    body, digest = memoryview(data)[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise SnapshotError("checksum mismatch: the snapshot is corrupt, truncated or tampered")
    fmt, header_len = _PREFIX.unpack_from(data, len(magic))
    if fmt != FORMAT:
        raise SnapshotError(f"unsupported snapshot format {fmt}")
    if head + header_len > len(body):
        raise SnapshotError("header runs past the end of the snapshot")
    try:
        header = json.loads(bytes(body[head : head + header_len]).decode("utf-8"))
    except ValueError as exc:
        raise SnapshotError(f"unreadable snapshot header: {exc}") from None
    if not isinstance(header, dict):
        raise SnapshotError("unreadable snapshot header: not an object")
    return header, body[head + header_len :]


def header_fields(header: dict[str, Any]) -> tuple[ModelConfig, int, list[dict[str, Any]]]:
    """The config, version and tensor table of a header, checked."""
    try:
        config = ModelConfig.from_dict(header["config"])
        version = header["version"]
        tensors = header["tensors"]
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise SnapshotError(f"unreadable snapshot header: {exc}") from None
    if type(version) is not int or not 0 <= version <= MAX_VERSION:
        raise SnapshotError(f"version {str(version)[:30]} is not an integer in 0..{MAX_VERSION}")
    if not isinstance(tensors, list) or not all(isinstance(t, dict) for t in tensors):
        raise SnapshotError("the tensor table is not a list of entries")
    if not all(isinstance(header.get(k, {}), dict) for k in ("counters", "metrics", "extra")):
        raise SnapshotError("counters, metrics and extra must be objects")
    return config, version, tensors


def header_details(header: dict[str, Any]) -> dict[str, Any]:
    """The creation time, counters, metrics and provenance of a header, as :class:`Snapshot` fields."""
    return {
        "created": float(header["created"]),
        "counters": {str(k): int(v) for k, v in header.get("counters", {}).items()},
        "metrics": {str(k): float(v) for k, v in header.get("metrics", {}).items()},
        "extra": dict(header.get("extra", {})),
    }


def _check_sizes(expected: dict[str, tuple[int, ...]], tensors: list[dict[str, Any]]) -> None:
    """Refuse a snapshot whose config or tensor table would expand beyond :data:`MAX_WEIGHT_BYTES`
    of float32, before anything is allocated."""
    total = 4 * sum(math.prod(shape) for shape in expected.values())
    if total > MAX_WEIGHT_BYTES:
        raise SnapshotError(f"the config implies {total >> 20} MB of weights, above {MAX_WEIGHT_BYTES >> 20} MB")
    declared = 0
    for t in tensors:
        shape = t.get("shape")
        if not isinstance(shape, list) or len(shape) > 8 or not all(type(n) is int and n >= 0 for n in shape):
            raise SnapshotError(f"tensor {str(t.get('name'))[:80]}: bad shape {str(shape)[:80]}")
        declared += 4 * math.prod(shape)
        if declared > MAX_WEIGHT_BYTES:
            raise SnapshotError(f"the tensors declare more than {MAX_WEIGHT_BYTES >> 20} MB of weights")


def _decode_tensor(t: dict[str, Any], payload: memoryview) -> np.ndarray:
    """One tensor as float32, its absent rows zero."""
    _, shape, index, stored = decode_stored(t, payload)
    if index is None:  # float32: a read-only view of the snapshot's bytes, no copy
        full = stored.reshape(shape)
    else:
        full = np.zeros(shape, np.float32)
        full[index] = stored
    full.flags.writeable = False
    return full


def decode_stored(t: dict[str, Any], payload: memoryview) -> tuple[str, tuple[int, ...], np.ndarray | None, np.ndarray]:
    """A tensor entry's name, shape, stored row indices (None: all rows) and stored values as
    float32 (one row per index), verified: inside the payload, sizes matching the shape, row
    indices sorted and in range, every stored value finite."""
    try:
        name, shape, dtype = str(t["name"]), tuple(int(s) for s in t["shape"]), _DTYPES[t["dtype"]]
        offset, nbytes = int(t["offset"]), int(t["nbytes"])
        rows = t.get("rows")
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"bad tensor entry {str(t)[:100]}: {exc}") from None
    if min(shape, default=1) < 0 or offset < 0 or offset + nbytes > len(payload):
        raise SnapshotError(f"tensor {name} lies outside the snapshot")
    stored_shape = shape
    index = None
    if rows is not None:
        try:
            r_off, count = int(rows["offset"]), int(rows["count"])
        except (KeyError, TypeError, ValueError):
            raise SnapshotError(f"tensor {name}: bad row index") from None
        if len(shape) != 2 or r_off < 0 or count < 0 or r_off + 4 * count > len(payload) or count > shape[0]:
            raise SnapshotError(f"tensor {name}: bad row index")
        index = np.frombuffer(payload, "<i4", count, r_off)
        if count and (index[0] < 0 or index[-1] >= shape[0] or np.any(np.diff(index) <= 0)):
            raise SnapshotError(f"tensor {name}: row indices out of range or unsorted")
        stored_shape = (count, shape[1])
    itemsize = np.dtype(dtype).itemsize
    if nbytes != math.prod(stored_shape) * itemsize:
        raise SnapshotError(f"tensor {name}: {nbytes} bytes do not fit shape {stored_shape}")
    stored = widened(np.frombuffer(payload, np.dtype(dtype).newbyteorder("<"), nbytes // itemsize, offset), t["dtype"])
    if not np.isfinite(stored).all():
        raise SnapshotError(f"weight {name} holds NaN or infinite values")
    return name, shape, index, stored.reshape(stored_shape)


def _to_bfloat16(array: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounded to nearest (ties away from zero)."""
    bits = array.view(np.uint32) + np.uint32(0x8000)
    return (bits >> np.uint32(16)).astype("<u2")


def _from_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


_FILE = re.compile(r"^snapshot-(\d{12})\.sgs$")


class SnapshotStore:
    """A directory of snapshots, one file per version, written atomically (temporary file, fsync,
    rename), keeping the newest ``keep`` and the ``protected`` versions."""

    def __init__(self, directory: Path | str, keep: int = 5) -> None:
        self.directory = Path(directory)
        self.keep = keep
        #: Versions kept even when older than the newest ``keep`` (those experiments pin); None
        #: while they are not known yet (a worker reading its experiments at a start): none deleted.
        self.protected: frozenset[int] | None = frozenset()
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, version: int) -> Path:
        return self.directory / f"snapshot-{version:012d}.sgs"

    def versions(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _FILE.match(p.name)))

    def save(self, snapshot: Snapshot, **encode: Any) -> Path:
        versions = self.versions()
        if versions and snapshot.version <= versions[-1]:
            raise SnapshotError(f"version {snapshot.version} is not newer than the stored {versions[-1]}")
        target = self.path(snapshot.version)
        write_atomically(target, snapshot.to_bytes(**encode))
        protected = self.protected
        if self.keep > 0 and protected is not None:
            for old in self.versions()[: -self.keep]:
                if old not in protected:
                    self.path(old).unlink(missing_ok=True)
        return target

    def load(self, version: int) -> Snapshot:
        path = self.path(version)
        if not path.exists():
            raise SnapshotError(f"no snapshot version {version} in {self.directory}")
        return Snapshot.from_bytes(path.read_bytes())

    def latest(self) -> Snapshot | None:
        """The newest snapshot that verifies; corrupt files are skipped with a warning."""
        for version in reversed(self.versions()):
            try:
                return self.load(version)
            except SnapshotError as exc:
                log.warning("skipping snapshot %d: %s", version, exc)
        return None

    def rollback(self, version: int) -> Snapshot:
        """Make ``version``'s weights current again, as a *new* version (versions only grow, so
        workers that refuse older versions still take it); returns the new snapshot."""
        old = self.load(version)
        newest = self.versions()[-1]
        new = replace(
            old,
            version=newest + 1,
            created=time.time(),
            extra={**old.extra, "rolled_back_from": version},
        )
        self.save(new)
        return new
