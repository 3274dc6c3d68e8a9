"""Versioned model snapshots: a self-describing, checksummed byte format and a directory store.

A snapshot travels from the trainer to every worker (possibly every few seconds) and sits on disk
as a checkpoint, so its format is: no pickle (loading must never run code), a JSON header (version,
creation time, training counters, metrics, the model config and a table of tensors), raw
little-endian tensor bytes, then a SHA-256 of everything before it. Loading verifies the checksum,
every offset, and every shape against the shapes the embedded config implies, and raises
:class:`SnapshotError` with the reason on any mismatch.

Embedding tables are mostly zero rows early on (and for a new shop), so a table may be stored as
its non-zero rows plus their indices; tensors may be stored as float16 to halve the size (the
shipped warm start). Both are lossless to load and always decode to float32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from model.config import ConfigError, ModelConfig, weight_shapes

log = logging.getLogger(__name__)

MAGIC = b"SHOPGUIDE-SNAPSHOT\n"
FORMAT = 1
_PREFIX = struct.Struct("<IQ")  # format, header length
_DIGEST = 32
_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32}
#: Optimizer state lives beside the weights under this prefix (training checkpoints only).
OPTIMIZER_PREFIX = "optimizer/"


class SnapshotError(ValueError):
    """Bytes or files that are not a valid snapshot: corrupt, truncated, tampered or mis-shaped."""


@dataclass(frozen=True)
class Snapshot:
    version: int
    config: ModelConfig
    weights: dict[str, np.ndarray]
    created: float = field(default_factory=time.time)
    counters: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # provenance: data checksums, command

    def serving_weights(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.weights.items() if not k.startswith(OPTIMIZER_PREFIX)}

    def without_optimizer(self) -> Snapshot:
        return replace(self, weights=self.serving_weights())

    def to_bytes(self, *, dtype: str = "float32", sparse_rows: bool = True) -> bytes:
        """Encode. ``dtype="float16"`` halves floating tensors; ``sparse_rows`` stores a 2-D
        tensor as its non-zero rows when that is smaller."""
        tensors: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        offset = 0
        for name in sorted(self.weights):
            array = np.asarray(self.weights[name], np.float32)
            entry: dict[str, Any] = {"name": name, "shape": list(array.shape), "dtype": dtype}
            rows = None
            if sparse_rows and array.ndim == 2:
                nonzero = np.flatnonzero(np.any(array != 0, axis=1)).astype(np.int32)
                if len(nonzero) < 0.75 * array.shape[0]:
                    rows, array = nonzero, array[nonzero]
            if rows is not None:
                data = rows.astype("<i4").tobytes()
                entry["rows"] = {"offset": offset, "count": len(rows)}
                chunks.append(data)
                offset += len(data)
            data = np.ascontiguousarray(array, _DTYPES[dtype]).astype(
                np.dtype(_DTYPES[dtype]).newbyteorder("<"), copy=False
            ).tobytes()
            entry |= {"offset": offset, "nbytes": len(data)}
            chunks.append(data)
            offset += len(data)
            tensors.append(entry)
        header = json.dumps(
            {
                "version": self.version, "created": self.created, "config": self.config.to_dict(),
                "counters": self.counters, "metrics": self.metrics, "extra": self.extra,
                "tensors": tensors,
            },
            ensure_ascii=False, sort_keys=True,
        ).encode("utf-8")
        body = b"".join([MAGIC, _PREFIX.pack(FORMAT, len(header)), header, *chunks])
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> Snapshot:
        """Decode and verify; raises :class:`SnapshotError` saying what is wrong."""
        head = len(MAGIC) + _PREFIX.size
        if len(data) < head + _DIGEST or not data.startswith(MAGIC):
            raise SnapshotError("not a shopguide snapshot (bad magic or too short)")
        body, digest = memoryview(data)[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(body).digest() != digest:
            raise SnapshotError("checksum mismatch: the snapshot is corrupt, truncated or tampered")
        fmt, header_len = _PREFIX.unpack_from(data, len(MAGIC))
        if fmt != FORMAT:
            raise SnapshotError(f"unsupported snapshot format {fmt}")
        if head + header_len > len(body):
            raise SnapshotError("header runs past the end of the snapshot")
        try:
            header = json.loads(bytes(body[head : head + header_len]).decode("utf-8"))
            config = ModelConfig.from_dict(header["config"])
            version = int(header["version"])
            tensors = header["tensors"]
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise SnapshotError(f"unreadable snapshot header: {exc}") from None
        payload = body[head + header_len :]
        weights = {t["name"]: _decode_tensor(t, payload) for t in tensors}
        expected = weight_shapes(config)
        missing = set(expected) - set(weights)
        unexpected = {n for n in set(weights) - set(expected) if not n.startswith(OPTIMIZER_PREFIX)}
        if missing or unexpected:
            raise SnapshotError(
                f"weights do not match the config: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        for name, shape in expected.items():
            if weights[name].shape != shape:
                raise SnapshotError(f"weight {name}: shape {weights[name].shape}, expected {shape}")
            if not np.all(np.isfinite(weights[name])):
                raise SnapshotError(f"weight {name} holds NaN or infinite values")
        return cls(
            version=version, config=config, weights=weights, created=float(header["created"]),
            counters={k: int(v) for k, v in header.get("counters", {}).items()},
            metrics={k: float(v) for k, v in header.get("metrics", {}).items()},
            extra=dict(header.get("extra", {})),
        )


def _decode_tensor(t: dict[str, Any], payload: memoryview) -> np.ndarray:
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
        r_off, count = int(rows["offset"]), int(rows["count"])
        if len(shape) != 2 or r_off < 0 or r_off + 4 * count > len(payload) or count > shape[0]:
            raise SnapshotError(f"tensor {name}: bad row index")
        index = np.frombuffer(payload, "<i4", count, r_off)
        if count and (index.min() < 0 or index.max() >= shape[0] or np.any(np.diff(index) <= 0)):
            raise SnapshotError(f"tensor {name}: row indices out of range or unsorted")
        stored_shape = (count, shape[1])
    itemsize = np.dtype(dtype).itemsize
    if nbytes != int(np.prod(stored_shape)) * itemsize:
        raise SnapshotError(f"tensor {name}: {nbytes} bytes do not fit shape {stored_shape}")
    stored = np.frombuffer(payload, np.dtype(dtype).newbyteorder("<"), nbytes // itemsize, offset)
    stored = stored.reshape(stored_shape).astype(np.float32)
    if index is None:
        return stored
    full = np.zeros(shape, np.float32)
    full[index] = stored
    return full


_FILE = re.compile(r"^snapshot-(\d{12})\.sgs$")


class SnapshotStore:
    """A directory of snapshots, one file per version, written atomically (temporary file, fsync,
    rename), keeping the newest ``keep``."""

    def __init__(self, directory: Path | str, keep: int = 5) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, version: int) -> Path:
        return self.directory / f"snapshot-{version:012d}.sgs"

    def versions(self) -> list[int]:
        return sorted(
            int(m.group(1)) for p in self.directory.iterdir() if (m := _FILE.match(p.name))
        )

    def save(self, snapshot: Snapshot, **encode: Any) -> Path:
        versions = self.versions()
        if versions and snapshot.version <= versions[-1]:
            raise SnapshotError(
                f"version {snapshot.version} is not newer than the stored {versions[-1]}"
            )
        target = self.path(snapshot.version)
        _write_atomically(target, snapshot.to_bytes(**encode))
        for old in self.versions()[: -self.keep] if self.keep > 0 else []:
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
            old, version=newest + 1, created=time.time(),
            extra={**old.extra, "rolled_back_from": version},
        )
        self.save(new)
        return new


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".sgs")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
