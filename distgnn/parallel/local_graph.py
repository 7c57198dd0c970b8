"""The rank-local graph structures a strategy aggregates over, built once from a Part.

- ``full``: in-edges of owned rows over ``[owned | halo]`` sources;
- ``inner`` / ``boundary``: the same edges split by whether the source is owned or a halo row, so the
  inner part can be aggregated while the halo rows are still on the wire;
- ``attn``: ``full`` plus one self-loop per owned row (GAT);
- the normalisation vectors of ``gcn`` and ``mean``, from *global* degrees.

Self-loops in the Part are dropped (the partitioner's degrees exclude them); ``gcn`` and GAT add exactly
one each.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    inner: CSR
    boundary: CSR
    attn: CSR
    gcn_dst: Tensor  # [owned] (in_deg + 1)^-1/2
    gcn_src: Tensor  # [owned + halo] (out_deg + 1)^-1/2
    gcn_self: Tensor  # [owned] gcn_dst * gcn_src[:owned], the self-loop coefficient
    mean_dst: Tensor  # [owned] 1 / in_deg (0 where in_deg == 0)

    @classmethod
    def from_part(cls, part: Part, device: torch.device | str = "cpu") -> LocalGraph:
        n, nh = part.n_owned, part.n_halo
        indptr = np.asarray(part.indptr, dtype=np.int64)
        src = np.asarray(part.indices, dtype=np.int64)
        dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        keep = src != dst
        src, dst = src[keep], dst[keep]
        in_deg = np.asarray(part.in_degree, dtype=np.int64)
        out_deg = np.asarray(part.out_degree, dtype=np.int64)
        local_deg = np.bincount(dst, minlength=n)
        if not np.array_equal(local_deg, in_deg[:n]):
            bad = int(np.flatnonzero(local_deg != in_deg[:n])[0])
            raise DistGNNError(
                f"part {part.part_id} is inconsistent: owned row {bad} has {local_deg[bad]} local in-edges "
                f"but global in-degree {in_deg[bad]}"
            )

        def csr(s: np.ndarray, d: np.ndarray, num_src: int) -> CSR:
            t = CSR.from_edges(torch.from_numpy(s), torch.from_numpy(d), n, num_src)
            return t.to(device)

        is_inner = src < n
        loops = np.arange(n, dtype=np.int64)
        dev_f = {"dtype": torch.float32, "device": device}
        gcn_dst = torch.as_tensor((in_deg[:n] + 1.0) ** -0.5, **dev_f)
        gcn_src = torch.as_tensor((out_deg + 1.0) ** -0.5, **dev_f)
        with np.errstate(divide="ignore"):
            mean = np.where(in_deg[:n] > 0, 1.0 / np.maximum(in_deg[:n], 1), 0.0)
        return cls(
            n_owned=n,
            n_halo=nh,
            full=csr(src, dst, n + nh),
            inner=csr(src[is_inner], dst[is_inner], n),
            boundary=csr(src[~is_inner] - n, dst[~is_inner], nh),
            attn=csr(np.concatenate([src, loops]), np.concatenate([dst, loops]), n + nh),
            gcn_dst=gcn_dst,
            gcn_src=gcn_src,
            gcn_self=gcn_dst * gcn_src[:n],
            mean_dst=torch.as_tensor(mean, **dev_f),
        )
