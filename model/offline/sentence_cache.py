"""Sentence embeddings of review texts kept on disk for evaluation, one file per text hash.

Embedding the 62,774 Chinese reviews takes minutes at several milliseconds a review, and every
evaluation run of a data set embeds the same texts, so each vector is computed once and read back
by the SHA-256 of its text. The cache lives under the system's temporary directory, never in the
repository; a missing or unreadable file is computed again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from model.sentence_encoder import DIM, Encoder, Encodes

DEFAULT_DIRECTORY = Path(tempfile.gettempdir()) / "shopguide-sentence-embeddings"


class CachedEncoder:
    """An :class:`~model.sentence_encoder.Encodes` that reads vectors from ``directory`` and
    computes only the missing ones, with an encoder made on the first miss."""

    def __init__(self, directory: Path = DEFAULT_DIRECTORY, make: Callable[[], Encodes] = Encoder) -> None:
        self.directory = directory
        self._make = make
        self._encoder: Encodes | None = None
        self.computed = 0

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.directory / digest[:2] / f"{digest}.f32"

    def _read(self, text: str) -> np.ndarray | None:
        try:
            vector = np.frombuffer(self._path(text).read_bytes(), dtype=np.float32)
        except OSError:
            return None
        return vector if vector.shape == (DIM,) else None

    def encode(self, texts: Sequence[str]) -> np.ndarray | None:
        """``(len(texts), 512)`` float32 rows, or ``None`` when a missing one cannot be computed."""
        out = np.zeros((len(texts), DIM), np.float32)
        missing: list[int] = []
        for i, text in enumerate(texts):
            vector = self._read(text)
            if vector is None:
                missing.append(i)
            else:
                out[i] = vector
        if missing:
            if self._encoder is None:
                self._encoder = self._make()
            computed = self._encoder.encode([texts[i] for i in missing])
            if computed is None:
                return None
            for i, vector in zip(missing, computed, strict=True):
                self._write(texts[i], vector)
                out[i] = vector
            self.computed += len(missing)
        return out

    def _write(self, text: str, vector: np.ndarray) -> None:
        path = self._path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(np.asarray(vector, np.float32).tobytes())
        os.replace(temporary, path)
