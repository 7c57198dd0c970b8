"""GIN (Xu et al., "How Powerful are Graph Neural Networks?", 2019): ``h' = MLP((1 + eps) h + sum h_u)``.

A model of your own, trained by import path from the repository root:

    distgnn partition --dataset synthetic --parts 2 --out runs/syn-2
    distgnn train --partitions runs/syn-2 --nproc 2 --model examples.gin:build --layers 3 --hidden 64

It only aggregates through ``prop.aggregate``, so it is exact under every strategy (docs/models.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgnn.config import ModelConfig
from distgnn.models import LayerStack, Propagation, StackConv
from distgnn.models.inputs import Input, dense


class GINConv(StackConv):
    """One GIN layer: a sum over in-neighbours, the node's own row scaled by ``1 + eps``, then an MLP."""

    aggregation_norm = "sum"

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.eps = nn.Parameter(torch.zeros(()))
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))

    @property
    def exchange_width(self) -> int:
        return self.in_dim  # the sum runs before the MLP: the input rows travel

    def forward(self, h: Input, prop: Propagation, *, key: int) -> Tensor:
        h = dense(h)
        return self.mlp((1 + self.eps) * h + prop.aggregate(h, key=key, norm="sum"))


def build(cfg: ModelConfig, in_dim: int, out_dim: int) -> LayerStack:
    """``--model examples.gin:build``: ``cfg.layers`` GIN layers of width ``cfg.hidden``."""
    dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
    convs = [GINConv(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)]
    return LayerStack(convs, cfg.dropout, "relu")
