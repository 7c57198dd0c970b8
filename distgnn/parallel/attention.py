"""GAT's per-edge attention, shared by the propagation engines.

:class:`~distgnn.parallel.halo_prop.HaloPropagation` and
:class:`~distgnn.parallel.chunk_prop.ChunkPropagation` differ only in how they gather the source rows
(halo exchange, history cache); once every source row is at hand, the edge computation is the same and
lives here, once, so the two engines cannot drift apart (the exactness tests compare their results).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from distgnn.kernels import CSR, edge_softmax, gspmm, sddmm
from distgnn.models.inputs import dropout as drop
from distgnn.models.masks import MaskKey


def attend_edges(
    csr: CSR,
    h_src: Tensor,
    a_src: Tensor,
    a_dst: Tensor,
    *,
    negative_slope: float,
    dropout: float,
    mask: MaskKey | None,
    impl: str,
) -> Tensor:
    """GAT aggregation over the edges of ``csr`` (rows: destinations; columns: sources, self-loops
    included): ``alpha = edge_softmax(leaky_relu(a_src[j] + a_dst[i]))``, attention dropout on ``alpha``
    when ``dropout`` (``mask``: the edge-keyed mask, see ``models/masks.py``), then
    ``out[i] = sum_j alpha_ij * h_src[j]``.

    ``h_src`` [sources, H, D] and ``a_src`` [sources, H] are every source row (the caller's own first);
    ``a_dst`` [rows, H]. Inputs are used as given: the callers cast what travels (``precision.rows``); the
    scores and the softmax stay float32 (see ``precision.py``).
    """
    scores = F.leaky_relu(sddmm(csr, a_dst, a_src, impl=impl), negative_slope)
    alpha = edge_softmax(csr, scores, impl=impl)
    if dropout:
        alpha = drop(alpha, dropout, True, mask)
    return gspmm(csr, h_src, edge_weight=alpha, impl=impl)
