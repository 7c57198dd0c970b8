"""The rank-local graph structures a strategy aggregates over, built once from a Part.

- ``full``: in-edges of owned rows over ``[owned | halo]`` sources;
- ``inner`` / ``boundary``: the same edges split by whether the source is owned or a halo row, so the
  inner part can be aggregated while the halo rows are still on the wire;
- ``full_loops`` / ``inner_loops``: ``full`` / ``inner`` plus one self-loop per owned row, for GCN's
  ``A + I`` and GAT (the self term is then one more edge of the fused aggregation, not extra passes);
- the normalisation vectors of ``gcn`` and ``mean``, from *global* degrees.

Self-loops in the Part are dropped (the partitioner's degrees exclude them); ``*_loops`` add exactly one
each. Only ``full`` is built eagerly; the others are derived from it the first time they are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from distgnn.errors import DistGNNError
from distgnn.kernels import CSR
from distgnn.partitioning.part import Part


@dataclass
class LocalGraph:
    n_owned: int
    n_halo: int
    full: CSR
    gcn_dst: Tensor  # [owned] (in_deg + 1)^-1/2
    gcn_src: Tensor  # [owned + halo] (out_deg + 1)^-1/2
    mean_dst: Tensor  # [owned] 1 / in_deg (0 where in_deg == 0)

    @classmethod
    def from_part(cls, part: Part, device: torch.device | str = "cpu") -> LocalGraph:
        return cls.from_csr(
            part.n_owned, part.n_halo, part.indptr, part.indices, part.in_degree, part.out_degree,
            device=device, name=f"part {part.part_id}",
        )  # fmt: skip

    @classmethod
    def from_csr(
        cls,
        n_owned: int,
        n_halo: int,
        indptr: np.ndarray,
        indices: np.ndarray,
        in_degree: np.ndarray,
        out_degree: np.ndarray,
        *,
        device: torch.device | str = "cpu",
        name: str = "graph",
    ) -> LocalGraph:
        """In-edges of ``n_owned`` rows over ``[owned | halo]`` sources, with the global degrees of those
        ``n_owned + n_halo`` nodes (self-loops in the CSR are dropped)."""
        n, nh = n_owned, n_halo
        indptr = np.asarray(indptr, dtype=np.int64)
        src = np.asarray(indices, dtype=np.int64)
        # The rows are already grouped: dropping self-loops is a filter that keeps each row's edge order,
        # so the CSR is built from the kept edges and per-row counts, without a sort (at 40M edges a
        # sort's int64 permutations and copies were GBs of transient memory in set-up).
        row_dtype = np.int32 if n < 2**31 else np.int64
        dst = np.repeat(np.arange(n, dtype=row_dtype), np.diff(indptr))
        keep = src != dst
        loops_per_row = np.bincount(dst[~keep], minlength=n)
        del dst
        local_deg = np.diff(indptr) - loops_per_row
        src = src[keep]
        del keep
        in_deg = np.asarray(in_degree, dtype=np.int64)
        out_deg = np.asarray(out_degree, dtype=np.int64)
        if not np.array_equal(local_deg, in_deg[:n]):
            bad = int(np.flatnonzero(local_deg != in_deg[:n])[0])
            raise DistGNNError(
                f"{name} is inconsistent: owned row {bad} has {local_deg[bad]} local in-edges "
                f"but global in-degree {in_deg[bad]}"
            )
        dev_f = {"dtype": torch.float32, "device": device}
        with np.errstate(divide="ignore"):
            mean = np.where(in_deg[:n] > 0, 1.0 / np.maximum(in_deg[:n], 1), 0.0)
        full_indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(local_deg, out=full_indptr[1:])
        full = CSR(torch.from_numpy(full_indptr), torch.from_numpy(src), n + nh).to(device)
        return cls(
            n_owned=n,
            n_halo=nh,
            full=full,
            gcn_dst=torch.as_tensor((in_deg[:n] + 1.0) ** -0.5, **dev_f),
            gcn_src=torch.as_tensor((out_deg + 1.0) ** -0.5, **dev_f),
            mean_dst=torch.as_tensor(mean, **dev_f),
        )

    @cached_property
    def inner(self) -> CSR:
        if self.n_halo == 0:  # every source is owned (one process): the same edges, not a copy of them
            return self.full
        return self._select(self.full.indices < self.n_owned, self.n_owned)

    @cached_property
    def boundary(self) -> CSR:
        return self._select(self.full.indices >= self.n_owned, self.n_halo, offset=self.n_owned)

    @cached_property
    def inner_loops(self) -> CSR:
        return _with_loops(self.inner)

    @cached_property
    def full_loops(self) -> CSR:
        return _with_loops(self.full)

    def _select(self, mask: Tensor, num_src: int, offset: int = 0) -> CSR:
        """The edges of ``full`` where ``mask``, sources shifted down by ``offset``, in their order."""
        return CSR.from_edges(
            self.full.indices[mask] - offset, self.full.row_ids(cache=False)[mask], self.n_owned, num_src
        )


def _with_loops(csr: CSR) -> CSR:
    """``csr`` plus one self-loop per row, after the row's other edges."""
    loops = torch.arange(csr.num_dst, device=csr.device)
    src = torch.cat([csr.indices, loops])
    dst = torch.cat([csr.row_ids(cache=False), loops])
    return CSR.from_edges(src, dst, csr.num_dst, csr.num_src)
