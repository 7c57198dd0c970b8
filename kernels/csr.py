"""The CSR a kernel aggregates over, with its transpose cached for the backward pass.

Rows are destinations, ``indices`` are sources in ``[0, num_src)``. The kernels themselves take plain
tensors (so they can be ``torch.library`` custom ops); this object is the Python-side convenience that
validates once and builds the transposed CSR (plus the edge permutation that maps per-edge weights
across) once, the first time a backward pass needs it.

Index width: ``indptr``, ``indices`` (and the transpose's ``perm``, the cached row ids) are int32 when
the row count, the source count and the edge count are all below ``INT32_LIMIT`` (2^31), int64 otherwise:
half the index memory and index traffic of int64 for every part that fits. The kernels compute every
offset (edge id x heads, source id x features) in 64 bits whatever the storage width.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from distgnn.errors import DistGNNError

INT32_LIMIT = 2**31  # every index and offset of a CSR below this fits int32 (read at each choice)
INDEX_DTYPES = (torch.int32, torch.int64)


def index_dtype(num_dst: int, num_src: int, num_edges: int) -> torch.dtype:
    """int32 if the CSR's row ids, source ids and edge offsets (and its transpose's) all fit, else int64."""
    return torch.int32 if max(num_dst, num_src, num_edges) < INT32_LIMIT else torch.int64


class CSR:
    """Destination-major CSR: the in-edges of row ``i`` are ``indices[indptr[i]:indptr[i + 1]]``."""

    def __init__(
        self,
        indptr: Tensor,
        indices: Tensor,
        num_src: int,
        *,
        validate: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        """``dtype``: the index width (int32 or int64); None picks int32 when the sizes fit."""
        if not isinstance(indptr, Tensor) or not isinstance(indices, Tensor):
            raise DistGNNError("CSR indptr and indices must be torch tensors (use CSR.from_numpy for arrays)")
        if indptr.dim() != 1 or indices.dim() != 1:
            raise DistGNNError(
                "CSR indptr and indices must be 1-D, got shapes "
                f"{tuple(indptr.shape)} and {tuple(indices.shape)}"
            )
        if indptr.device != indices.device:
            raise DistGNNError(f"CSR indptr is on {indptr.device} but indices is on {indices.device}")
        self.num_src = int(num_src)
        fit = index_dtype(indptr.numel() - 1, self.num_src, indices.numel())
        if dtype is None:
            dtype = fit
        elif dtype not in INDEX_DTYPES:
            raise DistGNNError(f"CSR index dtype must be torch.int32 or torch.int64, got {dtype}")
        elif dtype == torch.int32 and fit != torch.int32:
            raise DistGNNError(
                f"CSR with {indptr.numel() - 1} rows, {self.num_src} sources and {indices.numel()} edges "
                f"does not fit int32 indices (limit {INT32_LIMIT})"
            )
        self.indptr, self.indices = indptr, indices
        if validate:  # before narrowing: an out-of-range index must not wrap into range
            self.validate()
        self.indptr = indptr.to(dtype).contiguous()
        self.indices = indices.to(dtype).contiguous()
        self.perm: Tensor | None = None  # set on a transpose: original edge id of each of its edges
        self._transposed: CSR | None = None
        self._row_ids: Tensor | None = None

    @classmethod
    def from_numpy(
        cls,
        indptr: np.ndarray,
        indices: np.ndarray,
        num_src: int | None = None,
        *,
        dtype: torch.dtype | None = None,
    ) -> CSR:
        """Build from numpy arrays; ``num_src`` defaults to the row count (a square graph)."""
        ip = torch.from_numpy(np.ascontiguousarray(indptr, dtype=np.int64))
        ix = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
        return cls(ip, ix, ip.numel() - 1 if num_src is None else num_src, dtype=dtype)

    @classmethod
    def from_edges(
        cls,
        src: Tensor,
        dst: Tensor,
        num_dst: int,
        num_src: int | None = None,
        *,
        dtype: torch.dtype | None = None,
    ) -> CSR:
        """Build from COO edge lists (src -> dst); edges keep their order within each row."""
        src = torch.as_tensor(src, dtype=torch.int64)
        dst = torch.as_tensor(dst, dtype=torch.int64)
        order = torch.argsort(dst, stable=True)
        counts = torch.bincount(dst, minlength=num_dst)
        indptr = torch.zeros(num_dst + 1, dtype=torch.int64, device=src.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return cls(indptr, src[order], num_dst if num_src is None else num_src, dtype=dtype)

    @property
    def num_dst(self) -> int:
        return int(self.indptr.numel() - 1)

    @property
    def num_edges(self) -> int:
        return int(self.indices.numel())

    @property
    def device(self) -> torch.device:
        return self.indptr.device

    @property
    def dtype(self) -> torch.dtype:
        """The index width of ``indptr`` and ``indices`` (int32 or int64)."""
        return self.indices.dtype

    def index_bytes(self) -> int:
        """Bytes held by ``indptr`` and ``indices`` (not the lazily built transpose or row ids)."""
        return (self.indptr.numel() + self.indices.numel()) * self.indices.element_size()

    def validate(self) -> None:
        """Raise DistGNNError with one line if the arrays are not a valid CSR."""
        if self.indptr.numel() < 1:
            raise DistGNNError("CSR indptr must have at least one entry (rows + 1)")
        if self.num_src < 0:
            raise DistGNNError(f"CSR num_src must be >= 0, got {self.num_src}")
        e = self.indices.numel()
        if int(self.indptr[0]) != 0 or int(self.indptr[-1]) != e:
            raise DistGNNError(f"CSR indptr must start at 0 and end at the edge count {e}")
        if self.indptr.numel() > 1 and bool((self.indptr[1:] < self.indptr[:-1]).any()):
            raise DistGNNError("CSR indptr must be non-decreasing")
        if e and (int(self.indices.min()) < 0 or int(self.indices.max()) >= self.num_src):
            raise DistGNNError(f"CSR indices must lie in [0, {self.num_src})")

    def degrees(self) -> Tensor:
        """In-degree of each row (int64)."""
        return (self.indptr[1:] - self.indptr[:-1]).to(torch.int64)

    def row_ids(self, *, cache: bool = True) -> Tensor:
        """Destination row of every edge, in CSR order, in the index dtype. Cached unless ``cache=False``
        (set-up code that needs them once: the cache is one index per edge, kept as long as the CSR)."""
        if self._row_ids is not None:
            return self._row_ids
        ids = torch.repeat_interleave(
            torch.arange(self.num_dst, device=self.device, dtype=self.dtype),
            self.degrees(),
            output_size=self.num_edges,
        )
        if cache:
            self._row_ids = ids
        return ids

    def transposed(self) -> CSR:
        """The source-major CSR (rows = sources), built once and cached.

        Its ``perm`` maps each of its edges to the edge id in this CSR, so ``w[t.perm]`` carries
        per-edge weights across. Edges of a row keep their original relative order (stable sort).
        """
        if self._transposed is None:
            perm = torch.argsort(self.indices, stable=True)
            counts = torch.bincount(self.indices, minlength=self.num_src)
            t_indptr = torch.zeros(self.num_src + 1, dtype=torch.int64, device=self.device)
            t_indptr[1:] = torch.cumsum(counts, 0)
            t = CSR(t_indptr, self.row_ids(cache=False)[perm], self.num_dst, validate=False, dtype=self.dtype)
            t.perm = perm.to(self.dtype)
            self._transposed = t
        return self._transposed

    def to(self, device: torch.device | str) -> CSR:
        """A copy on ``device`` (self if already there); the cached transpose is rebuilt lazily."""
        device = torch.device(device)
        if self.device == device:
            return self
        ip, ix = self.indptr.to(device), self.indices.to(device)
        return CSR(ip, ix, self.num_src, validate=False, dtype=self.dtype)

    def __repr__(self) -> str:
        return (
            f"CSR(num_dst={self.num_dst}, num_src={self.num_src}, num_edges={self.num_edges}, "
            f"dtype={self.dtype}, device={self.device})"
        )
