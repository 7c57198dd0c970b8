"""GraphConv (Morris et al., "Weisfeiler and Leman Go Neural", 2019): a GraphSAGE variant with a *sum*
aggregator instead of a mean, ``h' = W_root h + W_neigh sum h_u``.

    distgnn train --partitions runs/syn-2 --nproc 2 --model examples.graphconv:build --hidden 32

The neighbour branch is transformed before it is aggregated (a sum is linear), so the halo exchange sends
``hidden``-wide rows instead of the input width.
"""

from __future__ import annotations

from torch import Tensor, nn

from distgnn.config import ModelConfig
from distgnn.models import LayerStack, Propagation, StackConv
from distgnn.models.inputs import Input, linear


class GraphConv(StackConv):
    aggregation_norm = "sum"

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin_root = nn.Linear(in_dim, out_dim, bias=True)
        self.lin_neigh = nn.Linear(in_dim, out_dim, bias=False)

    @property
    def exchange_width(self) -> int:
        return self.out_dim

    def forward(self, h: Input, prop: Propagation, *, key: int) -> Tensor:
        neigh = prop.aggregate(linear(h, self.lin_neigh), key=key, norm="sum")
        return linear(h, self.lin_root) + neigh


def build(cfg: ModelConfig, in_dim: int, out_dim: int) -> LayerStack:
    """``--model examples.graphconv:build``."""
    dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
    convs = [GraphConv(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)]
    return LayerStack(convs, cfg.dropout, "relu")
