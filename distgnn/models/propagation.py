"""The aggregation seam: what a layer may ask of the graph.

Models only see this protocol. A single process answers it locally; a parallel strategy answers it with
a halo exchange (and may overlap that exchange with the local part of the aggregation). Inputs and
outputs are rows of the nodes this process owns; the strategy fetches whatever neighbour rows it needs.
``key`` identifies the call site (e.g. the layer index) so a strategy can keep per-call state such as
stale halo buffers and byte counters. ``mask_key(site)`` gives the dropout seed of a site and the global
node id of every row, so masks do not depend on which process computes a row (see ``models/masks.py``).
"""

from __future__ import annotations

from typing import Literal, Protocol

from torch import Tensor

from distgnn.models.masks import MaskKey

Norm = Literal["gcn", "mean", "sum"]


class Propagation(Protocol):
    num_nodes: int  # rows this process owns

    def mask_key(self, site: int) -> MaskKey | None:
        """Dropout seed of ``site`` for this step and the rows' global node ids (None: torch's RNG)."""
        ...

    def aggregate(self, h: Tensor, *, key: int, norm: Norm) -> Tensor:
        """Aggregate ``h`` [owned, F] over each owned node's in-edges.

        ``gcn``: D^-1/2 (A + I) D^-1/2 h with *global* degrees (self-loop included);
        ``mean``: mean over in-neighbours (0 for a node with none); ``sum``: plain sum.
        """
        ...

    def aggregate_linear(self, h: Tensor, weight: Tensor, *, key: int, norm: Norm) -> Tensor:
        """``aggregate(h, key=key, norm=norm) @ weight`` (weight [F, F']).

        One call, so a strategy may schedule the product with its exchange (e.g. compute the weight
        gradient while halo gradients are on the wire).
        """
        ...

    def attend(
        self,
        h: Tensor,
        a_src: Tensor,
        a_dst: Tensor,
        *,
        key: int,
        negative_slope: float,
        dropout: float = 0.0,
    ) -> Tensor:
        """GAT aggregation with self-loops: h [owned, H, D], a_src/a_dst [owned, H] per-node attention terms.

        Edge score e_ij = leaky_relu(a_src[j] + a_dst[i]), softmax over the in-edges of i (self-loop
        included), output [owned, H, D] = sum_j alpha_ij * h[j]. ``dropout`` > 0 drops each alpha_ij
        (per head) with that probability and scales the rest (GAT's attention dropout; pass 0 outside
        training); its mask is keyed by the edge's two original node ids, so it does not depend on where
        the edge is aggregated.
        """
        ...
