"""A 1-D ``.npy`` file written front to back in pieces, its length fixed only when it is closed.

The out-of-core CSR build learns how many edges survive deduplication only at its end, and must not hold
them in memory meanwhile. numpy pads every ``.npy`` header so the length field can grow to 21 digits in
place (the header of a 1-D array is 128 bytes whatever its length), so the header is reserved first, the
data appended as it comes, and the true header written over the reserved one on ``close``. Appending uses
plain sequential writes, not a memory map: dirty mapped pages would count against the process.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import TracebackType

import numpy as np
from numpy.lib import format as npy_format


def _header(dtype: np.dtype, length: int) -> bytes:
    buf = io.BytesIO()
    fields = {"descr": npy_format.dtype_to_descr(dtype), "fortran_order": False, "shape": (length,)}
    npy_format.write_array_header_1_0(buf, fields)
    return buf.getvalue()


class NpyAppender:
    """Append 1-D pieces of one dtype to ``path``; ``close()`` writes the header and returns the length."""

    def __init__(self, path: str | os.PathLike[str], dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.length = 0
        self._reserved = len(_header(self.dtype, 0))
        self._file = open(self.path, "wb")  # closed by close() or __exit__
        self._file.write(b"\0" * self._reserved)

    def append(self, values: np.ndarray) -> None:
        """Write ``values`` (cast to the file's dtype) after what is already there."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self._file.write(memoryview(values).cast("B"))
        self.length += values.shape[0]

    def close(self) -> int:
        """Write the header for the final length, flush to disk, and return the length."""
        header = _header(self.dtype, self.length)
        if len(header) != self._reserved:  # numpy changed its padding rule: fail loudly, never corrupt
            raise RuntimeError(f"{self.path}: .npy header grew from {self._reserved} to {len(header)} bytes")
        self._file.seek(0)
        self._file.write(header)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.length

    def __enter__(self) -> NpyAppender:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()
