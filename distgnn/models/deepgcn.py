"""Deep residual GCN in the style of GCNII (Chen et al., 2020), for 8-64 propagation layers.

Layer l computes ``s = (1 - alpha) P h + alpha h0`` (initial residual) and
``h = relu((1 - beta_l) s + beta_l s W_l)`` with ``beta_l = log(lambda / l + 1)`` (identity mapping),
where ``P`` is the GCN-normalised adjacency and ``h0`` the input projection.

Every layer reads ``h0``. When the model is cut into pipeline stages, each stage recomputes ``h0`` for its
rows from the input features with the (replicated) input projection instead of receiving it with the
activations: that would double the bytes between stages, while the projection is one sparse/dense
product of the features per stage. Its gradient is summed over the stages.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from distgnn.models.inputs import Input, linear
from distgnn.models.inputs import dropout as drop
from distgnn.models.layered import LayeredModel
from distgnn.models.propagation import Norm, Propagation


class GCNIIConv(nn.Module):
    """One GCNII layer at depth ``layer`` (1-based), with its own ``beta``."""

    aggregation_norm: Norm = "gcn"  # what it asks prop.aggregate for (strategies prepare for it)

    def __init__(self, width: int, layer: int, *, alpha: float, lam: float) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = math.log(lam / layer + 1.0)
        self.weight = nn.Parameter(torch.empty(width, width))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, h: Tensor, h0: Tensor, prop: Propagation, *, key: int) -> Tensor:
        s = (1.0 - self.alpha) * prop.aggregate(h, key=key, norm=self.aggregation_norm) + self.alpha * h0
        return (1.0 - self.beta) * s + self.beta * (s @ self.weight)


class DeepGCN(LayeredModel):
    """Input projection, ``layers`` GCNII layers of width ``hidden`` (ReLU, dropout), output projection."""

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        layers: int = 16,
        dropout: float = 0.5,
        alpha: float = 0.1,
        lam: float = 0.5,
    ) -> None:
        super().__init__()
        self.lin_in = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(GCNIIConv(hidden, i + 1, alpha=alpha, lam=lam) for i in range(layers))
        self.lin_out = nn.Linear(hidden, out_dim)
        self.dropout = dropout
        self.hidden = hidden

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    @property
    def first_layer(self) -> nn.Module:
        return self.lin_in

    def exchange_widths(self) -> list[int]:
        return [self.hidden] * len(self.convs)

    def aggregation_norms(self) -> set[Norm]:
        return {conv.aggregation_norm for conv in self.convs}

    def input_width(self, layer: int) -> int:
        return self.lin_in.in_features if layer == 0 else self.hidden

    def output_width(self) -> int:
        return self.lin_out.out_features

    def range_parameters(self, start: int, stop: int) -> list[nn.Parameter]:
        self.check_range(start, stop)
        params = list(self.lin_in.parameters()) + [conv.weight for conv in self.convs[start:stop]]
        return params + (list(self.lin_out.parameters()) if stop == self.num_layers else [])

    def replicated_parameters(self) -> list[nn.Parameter]:
        return list(self.lin_in.parameters())

    def conv_parameters(self) -> list[nn.Parameter]:
        return [conv.weight for conv in self.convs]  # not the input and output projections

    def forward_range(
        self, h: Input, prop: Propagation, start: int, stop: int, *, x: Input | None = None
    ) -> Tensor:
        """Dropout sites: 0 the input projection's, ``l + 1`` conv ``l``'s, ``layers + 1`` the output's."""
        self.check_range(start, stop)
        if start == 0:
            x = h
        if x is None:
            raise ValueError("DeepGCN.forward_range needs the input features x of the rows for start > 0")
        h0 = torch.relu(linear(drop(x, self.dropout, self.training, prop.mask_key(0)), self.lin_in))
        if start == 0:
            h = h0
        for i in range(start, stop):
            h_in = drop(h, self.dropout, self.training, prop.mask_key(i + 1))
            h = torch.relu(self.convs[i](h_in, h0, prop, key=i))
        if stop < self.num_layers:
            return h
        return self.lin_out(drop(h, self.dropout, self.training, prop.mask_key(self.num_layers + 1)))
