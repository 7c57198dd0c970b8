"""Bucket files for the out-of-core CSR build: int64 edge keys ``dst * N + src`` split by destination range.

A ``Scatter`` cuts a destination range ``[lo, hi)`` into at most ``FANOUT`` equal sub-ranges and appends
each key it is given to the raw file of its sub-range. Sorting each bucket on its own and concatenating them
in range order gives the global key order, which is the CSR order. The bucket id of a key is
``(key - lo * N) // (width * N)``: one subtraction and one division, no per-range comparisons; ids fit in
uint8, so grouping a piece by bucket is numpy's O(n) radix argsort.

Equal ranges fill unevenly when degrees are skewed (or node IDs are sorted by degree); a bucket that comes
out larger than the sorting pass can hold is split again by ``split_bucket``, down to single nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

FANOUT = 256  # most sub-ranges one scatter writes at once: 256 open files, and a bucket id fits in uint8
FILL = 0.5  # plan buckets half full: equal ranges of a real graph fill unevenly
KEY = np.dtype(np.int64)


@dataclass(frozen=True)
class Bucket:
    """The keys of destinations ``[lo, hi)``: ``entries`` int64 keys in the raw file ``path``."""

    lo: int
    hi: int
    path: Path
    entries: int


def split_count(entries: int, capacity: int, nodes: int) -> int:
    """How many equal ranges ``entries`` keys over ``nodes`` destinations go into, so that each range,
    filled to ``FILL`` on average, holds at most ``capacity`` keys (1 to ``FANOUT``, at most one per node)."""
    want = -(-entries // max(1, int(capacity * FILL)))
    return max(1, min(FANOUT, nodes, want))


class Scatter:
    """Append keys of destinations ``[lo, hi)`` to ``count`` bucket files in ``folder``, one per range.

    Use it as a context manager: the files are closed on exit, then ``buckets`` lists them in range order.
    """

    def __init__(self, folder: Path, lo: int, hi: int, count: int, num_nodes: int) -> None:
        nodes = hi - lo
        count = max(1, min(count, nodes, FANOUT))
        width = -(-nodes // count) if nodes else 1
        count = -(-nodes // width) if nodes else 1  # no empty ranges at the end
        self.base = lo * num_nodes
        self.span = width * num_nodes
        self.ranges = [(lo + i * width, min(hi, lo + (i + 1) * width)) for i in range(count)]
        self.paths = [folder / f"{a}-{b}.keys" for a, b in self.ranges]
        self.entries = [0] * count
        self.buckets: list[Bucket] = []
        self._files: list[BinaryIO] = []
        try:
            for path in self.paths:
                self._files.append(open(path, "wb"))  # closed in __exit__
        except BaseException:
            self._close()
            raise

    def add(self, keys: np.ndarray) -> None:
        """Append int64 ``keys`` (all within this scatter's range) to their buckets' files."""
        if len(self._files) == 1:
            self._write(0, keys)
            return
        ids = np.subtract(keys, self.base)
        np.floor_divide(ids, self.span, out=ids)
        ids = ids.astype(np.uint8)
        counts = np.bincount(ids, minlength=len(self._files))
        order = np.argsort(ids, kind="stable")  # radix sort on uint8: O(n), keeps each bucket's order
        del ids
        grouped = keys[order]
        del order
        start = 0
        for i, c in enumerate(counts.tolist()):
            if c:
                self._write(i, grouped[start : start + c])
                start += c

    def _write(self, i: int, keys: np.ndarray) -> None:
        keys = np.ascontiguousarray(keys, dtype=KEY)
        self._files[i].write(memoryview(keys).cast("B"))
        self.entries[i] += keys.shape[0]

    def _close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self) -> Scatter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()
        if kind is None:
            rows = zip(self.ranges, self.paths, self.entries, strict=True)
            self.buckets = [Bucket(a, b, path, n) for (a, b), path, n in rows]


def split_bucket(bucket: Bucket, folder: Path, count: int, num_nodes: int, piece: int) -> list[Bucket]:
    """Scatter an oversized bucket into ``count`` narrower ones (read ``piece`` keys at a time); the
    original file is removed."""
    if count < 2 or bucket.hi - bucket.lo < 2:  # a narrower range never reuses the parent's file name
        raise ValueError(f"cannot split destinations [{bucket.lo}, {bucket.hi}) {count} ways")
    with Scatter(folder, bucket.lo, bucket.hi, count, num_nodes) as scatter, open(bucket.path, "rb") as f:
        while True:
            keys = np.fromfile(f, dtype=KEY, count=piece)
            if not keys.size:
                break
            scatter.add(keys)
    bucket.path.unlink()
    return scatter.buckets
