"""Scratch arrays of the compiled kernels: one per purpose, indexed by dense id, holding its fill
value when a kernel starts and left so when it returns, so that no call allocates or clears an
array the size of the catalog. A worker's event loop is one thread: one array per purpose is
enough. Grown by doubling as the id spaces grow."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike


class Scratch:
    """One scratch array of ``dtype`` filled with ``fill``, at least ``least`` long once used."""

    __slots__ = ("_array", "_dtype", "_fill", "_least")

    def __init__(self, dtype: DTypeLike, fill: float, least: int) -> None:
        self._dtype, self._fill, self._least = np.dtype(dtype), fill, least
        self._array = np.full(0, fill, self._dtype)

    def at_least(self, size: int) -> np.ndarray:
        """The array, with at least ``size`` entries (a grown one is all ``fill``)."""
        if len(self._array) < size:
            self._array = np.full(max(size, 2 * len(self._array), self._least), self._fill, self._dtype)
        return self._array
