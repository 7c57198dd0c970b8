"""GCN (Kipf & Welling, 2017): each layer is a linear map plus symmetric-normalised aggregation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgnn.kernels import pool
from distgnn.models.inputs import Input, dense, matmul
from distgnn.models.propagation import Norm, Propagation
from distgnn.models.stack import LayerStack, StackConv


class GCNConv(StackConv):
    """``D^-1/2 (A + I) D^-1/2 h W + b``.

    Aggregation and the linear map commute, so the layer multiplies by ``W`` first when that shrinks the
    rows (``out_dim < in_dim``): the aggregation then reads, and a halo exchange sends, narrower rows.
    """

    aggregation_norm: Norm = "gcn"  # what it asks prop.aggregate for (strategies prepare for it)

    def __init__(self, in_dim: int, out_dim: int, *, bias: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        nn.init.xavier_uniform_(self.weight)  # Glorot, as in the GCN paper

    @property
    def transform_first(self) -> bool:
        return self.out_dim < self.in_dim

    @property
    def exchange_width(self) -> int:
        """Width of the rows this layer aggregates (what a halo exchange sends per node)."""
        return self.out_dim if self.transform_first else self.in_dim

    def forward(self, h: Input, prop: Propagation, *, key: int, add_bias: bool = True) -> Tensor:
        """The layer; ``add_bias=False`` leaves ``self.bias`` to the caller (to fuse it into what follows)."""
        if self.transform_first:
            out = prop.aggregate(matmul(h, self.weight), key=key, norm=self.aggregation_norm)
        else:
            out = prop.aggregate_linear(dense(h), self.weight, key=key, norm=self.aggregation_norm)
        return out if self.bias is None or not add_bias else pool.add_bias(out, self.bias)


class GCN(LayerStack):
    """A stack of GCN layers with ReLU and dropout between them (dropout also on the input).

    ``x`` may be dense or :class:`~distgnn.models.inputs.SparseRows`.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.5) -> None:
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        super().__init__(
            [GCNConv(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)], dropout, "relu", fuse_bias=True
        )
