"""Reading memory-mapped arrays a piece at a time without keeping the pages in this process's RSS.

A file page a process has read through a mapping stays in its resident set until the mapping goes, so one
pass over a 4 GB memory-mapped CSR, or one gather of randomly placed feature rows, leaves the whole file
counted against the process (clean and reclaimable, but in RSS and in its peak). The out-of-core path
reads its mapped arrays through ``take`` and ``pieces``, which tell the kernel after each piece that the
pages are no longer needed (``madvise(MADV_DONTNEED)`` on the ``mmap`` under a ``np.memmap``; the page
cache keeps them, so a second read is cheap). Arrays that are not mapped pass through unchanged.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np

PIECE_BYTES = 16 << 20  # of the mapped file read between two releases


def mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` an array (or a view of one) reads from, or None."""
    base = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release(*arrays: np.ndarray) -> None:
    """Drop the resident pages of every mapped array in ``arrays`` (no-op for the others)."""
    for arr in arrays:
        m = mapping(arr)
        if m is not None and hasattr(m, "madvise"):
            m.madvise(mmap.MADV_DONTNEED)


def _rows_per_piece(arr: np.ndarray) -> int:
    row = arr.itemsize * (int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1)
    return max(1, PIECE_BYTES // max(row, 1))


def _release_rows(arr: np.ndarray, m: mmap.mmap, lo: int, hi: int) -> None:
    """Drop the pages of rows ``lo .. hi-1`` of C-contiguous ``arr`` mapped from ``m``."""
    row = arr.strides[0] if arr.ndim else arr.itemsize
    base = np.frombuffer(m, dtype=np.uint8, count=1).ctypes.data
    start = arr.ctypes.data - base + lo * row
    end = arr.ctypes.data - base + hi * row
    start -= start % mmap.PAGESIZE
    m.madvise(mmap.MADV_DONTNEED, start, min(end, len(m)) - start)


def take(arr: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``arr[index]`` (rows, for a 2-D array); from a mapped array, a piece of rows at a time, the pages
    each piece touched released after it. Random rows may touch a page each: pieces are sized by pages."""
    m = mapping(arr)
    if m is None or not hasattr(m, "madvise") or not arr.flags.c_contiguous:
        return arr[index]
    index = np.asarray(index)
    out = np.empty((index.shape[0], *arr.shape[1:]), dtype=arr.dtype)
    step = max(1, min(_rows_per_piece(arr), PIECE_BYTES // mmap.PAGESIZE))
    for a in range(0, index.shape[0], step):
        piece = index[a : a + step]
        out[a : a + step] = arr[piece]
        if piece.size:
            _release_rows(arr, m, int(piece.min()), int(piece.max()) + 1)
    return out


def pieces(arr: np.ndarray, rows: int | None = None) -> Iterator[np.ndarray]:
    """Consecutive row slices of ``arr`` (views); a mapped array's pages are released after each."""
    step = rows or _rows_per_piece(arr)
    for a in range(0, arr.shape[0], step):
        yield arr[a : a + step]
        release(arr)
