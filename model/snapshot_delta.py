"""Snapshot deltas: a new snapshot as the rows it changed since a full snapshot (its base).

A trainer publishes a snapshot about every second, and most of the model is two embedding tables
of which a second of training touches a few thousand rows (Adagrad updates only the rows a batch
used). So a trainer publishes a full snapshot now and then (:class:`SnapshotEncoder`) and, in
between, deltas against the last full one: the tensors and rows whose *decoded* values differ
from the base's, bit for bit, in the dtype the full snapshot would carry them in. Applying a delta
to the decoded base (:func:`apply_delta`) therefore gives exactly the weights the full snapshot of
the same version decodes to. A delta is cumulative (everything changed since the base), so a
worker that missed one takes the next.

The format is the snapshot's (:mod:`model.snapshot`: JSON header, raw tensor bytes, SHA-256),
under its own magic so neither can be taken for the other; the header adds ``base``, a 2-D tensor's
``rows`` are the rows that replace the base's, and a tensor left out is the base's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from model.config import weight_shapes
from model.errors import SnapshotError
from model.snapshot import (
    Snapshot,
    add_rows,
    add_values,
    decode_stored,
    frame,
    header_details,
    header_fields,
    stored_weights,
    unframe,
    widened,
)

DELTA_MAGIC = b"SHOPGUIDE-DELTA\n"
#: A tensor changed in more than this share of its rows travels whole.
WHOLE_TENSOR_SHARE = 0.75
#: Weights as stored and the dtype each travels in (:func:`model.snapshot.stored_weights`).
Stored = dict[str, tuple[np.ndarray, str]]


def encode_delta(snapshot: Snapshot, base: Stored, base_version: int, dtype: str) -> bytes:
    """``snapshot``'s serving weights as a delta against ``base`` (the base's weights as its full
    snapshot stored them). Raises ValueError when the two do not have the same tensors and shapes."""
    current = stored_weights(snapshot.serving_weights(), dtype)
    if {n: a.shape for n, (a, _) in current.items()} != {n: a.shape for n, (a, _) in base.items()}:
        raise ValueError("the snapshot's tensors differ from its base's")
    tensors: list[dict[str, Any]] = []
    chunks: list[Any] = []
    offset = 0
    for name in sorted(current):
        stored, used = current[name]
        differs = _differs(stored, used, *base[name])
        entry: dict[str, Any] = {"name": name, "shape": list(stored.shape), "dtype": used}
        if stored.ndim == 2:
            changed = np.flatnonzero(differs.any(axis=1)).astype("<i4")
            if not len(changed):
                continue
            if len(changed) < WHOLE_TENSOR_SHARE * stored.shape[0]:
                offset = add_rows(entry, changed, chunks, offset)
                stored = np.take(stored, changed, axis=0)
        elif not differs.any():
            continue
        offset = add_values(entry, stored, chunks, offset)
        tensors.append(entry)
    fields = {
        "version": snapshot.version,
        "base": base_version,
        "created": snapshot.created,
        "config": snapshot.config.to_dict(),
        "counters": snapshot.counters,
        "metrics": snapshot.metrics,
        "extra": snapshot.extra,
    }
    return frame(DELTA_MAGIC, fields, tensors, chunks)


def _differs(stored: np.ndarray, dtype: str, base: np.ndarray, base_dtype: str) -> np.ndarray:
    """Where two stored tensors decode to different float32 bits (decoding is one-to-one within a
    dtype, so the stored bits tell, at half the bytes for 16-bit dtypes)."""
    if dtype != base_dtype:
        return widened(stored, dtype).view(np.uint32) != widened(base, base_dtype).view(np.uint32)
    bits = np.uint32 if dtype == "float32" else np.uint16
    return stored.view(bits) != base.view(bits)


def apply_delta(base: Snapshot, data: bytes) -> Snapshot:
    """The snapshot a delta describes, on top of ``base`` (the decoded full snapshot it names);
    raises :class:`SnapshotError` saying what is wrong, whatever the bytes."""
    try:
        return _apply(base, bytes(data))
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError, MemoryError) as exc:
        raise SnapshotError(f"malformed snapshot delta: {type(exc).__name__}: {str(exc)[:200]}") from None


def _apply(base: Snapshot, data: bytes) -> Snapshot:
    header, payload = unframe(DELTA_MAGIC, data, "snapshot delta")
    config, version, tensors = header_fields(header)
    if header.get("base") != base.version or type(header.get("base")) is not int:
        raise SnapshotError(f"delta {version} names base {str(header.get('base'))[:30]}, not {base.version}")
    if version <= base.version:
        raise SnapshotError(f"delta {version} is not newer than its base {base.version}")
    expected = weight_shapes(config)  # the config itself may differ: each export carries its calibration
    if expected != weight_shapes(base.config):
        raise SnapshotError(f"delta {version}: its model config implies other tensors than its base's")
    weights = base.serving_weights()
    for t in tensors:
        name, shape, index, stored = decode_stored(t, payload)
        if name not in weights or expected.get(name) != shape:
            raise SnapshotError(f"delta {version}: tensor {name[:80]} of shape {shape} is not in the model")
        if index is None:
            weight = stored.reshape(shape)
        else:
            weight = weights[name].copy()
            weight[index] = stored
        weight.flags.writeable = False
        weights[name] = weight
    return Snapshot(version=version, config=config, weights=weights, **header_details(header))


class SnapshotEncoder:
    """What a trainer publishes for each snapshot it exports: a full snapshot first, then every
    ``full_every`` versions or ``full_interval_s`` seconds, whichever comes first, and a delta
    against the last full one otherwise, unless that delta would be no smaller than the full one.
    ``full_every`` 1 publishes full snapshots only."""

    def __init__(
        self,
        dtype: str,
        full_every: int,
        full_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dtype = dtype
        self._full_every = full_every
        self._full_interval_s = full_interval_s
        self._clock = clock
        self._base: Stored | None = None
        self._base_version = 0
        self._base_bytes = 0
        self._base_time = 0.0

    def encode(self, snapshot: Snapshot) -> tuple[bytes, int | None]:
        """The bytes to publish and the version of the full snapshot they are a delta against
        (None: they are a full snapshot)."""
        due = (
            self._base is None
            or snapshot.version - self._base_version >= self._full_every
            or self._clock() - self._base_time >= self._full_interval_s
        )
        if not due and self._base is not None:
            try:
                delta = encode_delta(snapshot, self._base, self._base_version, self._dtype)
            except ValueError:
                delta = None
            if delta is not None and len(delta) < self._base_bytes:
                return delta, self._base_version
        data = snapshot.to_bytes(dtype=self._dtype)
        if self._full_every > 1:
            self._base = stored_weights(snapshot.serving_weights(), self._dtype)
        self._base_version, self._base_bytes, self._base_time = snapshot.version, len(data), self._clock()
        return data, None
