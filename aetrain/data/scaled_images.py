"""A split's images as they are stored (uint8, perhaps memory-mapped) and read as float32 a batch at a
time, so that a data set costs its stored size in memory, never four times it as float32 copies.

A split is the stored array and the rows it owns: splitting and shuffling move row numbers, not
pixels. Indexing returns float32 in [0, 1]; ``np.asarray`` (and Keras, which calls it) reads the
whole split, which the companion commands do for test sets of bounded size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ScaledImages:
    """``stored[rows] / max_value`` as float32, read on demand."""

    stored: np.ndarray
    rows: np.ndarray
    max_value: int = 255

    @classmethod
    def of(cls, stored: np.ndarray, max_value: int = 255) -> ScaledImages:
        """Every image of ``stored``, in order."""
        return cls(stored, np.arange(len(stored)), max_value)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.stored.shape[1:])

    @property
    def ndim(self) -> int:
        return self.stored.ndim

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes_stored(self) -> int:
        """Bytes of its images as stored (what it costs in memory once read)."""
        return len(self.rows) * int(np.prod(self.stored.shape[1:])) * self.stored.dtype.itemsize

    def subset(self, key) -> ScaledImages:
        """The images ``key`` (a slice or row positions) picks, still unread."""
        return ScaledImages(self.stored, self.rows[key], self.max_value)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # rows first, then within each image
            rows, within = key[0], key[1:]
            picked = self[rows]
            return picked[within] if isinstance(rows, (int, np.integer)) else picked[(slice(None), *within)]
        if isinstance(key, (int, np.integer)):
            return self.read(self.rows[[key]])[0]
        return self.read(self.rows[key])

    def read(self, rows: np.ndarray) -> np.ndarray:
        """float32 pixels of the stored ``rows``; a memory map is read in row order, then reordered."""
        if isinstance(self.stored, np.memmap) and len(rows) > 1:
            order = np.argsort(rows, kind="stable")
            pixels = np.empty((len(rows), *self.stored.shape[1:]), dtype=np.float32)
            pixels[order] = self.stored[rows[order]]
            return np.divide(pixels, self.max_value, out=pixels)
        return np.divide(self.stored[rows], self.max_value, dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        pixels = self.read(self.rows)
        return pixels if dtype is None else pixels.astype(dtype)
