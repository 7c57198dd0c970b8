"""The CSR a kernel aggregates over, with its transpose cached for the backward pass.

Rows are destinations, ``indices`` are sources in ``[0, num_src)``. The kernels themselves take plain
tensors (so they can be ``torch.library`` custom ops); this object is the Python-side convenience that
validates once and builds the transposed CSR (plus the edge permutation that maps per-edge weights
across) once, the first time a backward pass needs it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from distgnn.errors import DistGNNError


class CSR:
    """Destination-major CSR: the in-edges of row ``i`` are ``indices[indptr[i]:indptr[i + 1]]``."""

    def __init__(self, indptr: Tensor, indices: Tensor, num_src: int, *, validate: bool = True) -> None:
        if not isinstance(indptr, Tensor) or not isinstance(indices, Tensor):
            raise DistGNNError("CSR indptr and indices must be torch tensors (use CSR.from_numpy for arrays)")
        if indptr.dim() != 1 or indices.dim() != 1:
            raise DistGNNError(
                "CSR indptr and indices must be 1-D, got shapes "
                f"{tuple(indptr.shape)} and {tuple(indices.shape)}"
            )
        if indptr.device != indices.device:
            raise DistGNNError(f"CSR indptr is on {indptr.device} but indices is on {indices.device}")
        self.indptr = indptr.to(torch.int64).contiguous()
        self.indices = indices.to(torch.int64).contiguous()
        self.num_src = int(num_src)
        self.perm: Tensor | None = None  # set on a transpose: original edge id of each of its edges
        self._transposed: CSR | None = None
        self._row_ids: Tensor | None = None
        if validate:
            self.validate()

    @classmethod
    def from_numpy(cls, indptr: np.ndarray, indices: np.ndarray, num_src: int | None = None) -> CSR:
        """Build from numpy arrays; ``num_src`` defaults to the row count (a square graph)."""
        ip = torch.from_numpy(np.ascontiguousarray(indptr, dtype=np.int64))
        ix = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
        return cls(ip, ix, ip.numel() - 1 if num_src is None else num_src)

    @classmethod
    def from_edges(cls, src: Tensor, dst: Tensor, num_dst: int, num_src: int | None = None) -> CSR:
        """Build from COO edge lists (src -> dst); edges keep their order within each row."""
        src = torch.as_tensor(src, dtype=torch.int64)
        dst = torch.as_tensor(dst, dtype=torch.int64)
        order = torch.argsort(dst, stable=True)
        counts = torch.bincount(dst, minlength=num_dst)
        indptr = torch.zeros(num_dst + 1, dtype=torch.int64, device=src.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return cls(indptr, src[order], num_dst if num_src is None else num_src)

    @property
    def num_dst(self) -> int:
        return int(self.indptr.numel() - 1)

    @property
    def num_edges(self) -> int:
        return int(self.indices.numel())

    @property
    def device(self) -> torch.device:
        return self.indptr.device

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
        return self.indptr[1:] - self.indptr[:-1]

    def row_ids(self) -> Tensor:
        """Destination row of every edge, in CSR order (cached)."""
        if self._row_ids is None:
            self._row_ids = torch.repeat_interleave(
                torch.arange(self.num_dst, device=self.device), self.degrees(), output_size=self.num_edges
            )
        return self._row_ids

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
            t = CSR(t_indptr, self.row_ids()[perm], self.num_dst, validate=False)
            t.perm = perm
            self._transposed = t
        return self._transposed

    def to(self, device: torch.device | str) -> CSR:
        """A copy on ``device`` (self if already there); the cached transpose is rebuilt lazily."""
        device = torch.device(device)
        if self.device == device:
            return self
        return CSR(self.indptr.to(device), self.indices.to(device), self.num_src, validate=False)

    def __repr__(self) -> str:
        return (
            f"CSR(num_dst={self.num_dst}, num_src={self.num_src}, num_edges={self.num_edges}, "
            f"device={self.device})"
        )
