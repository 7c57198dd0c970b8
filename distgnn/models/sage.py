"""GraphSAGE with the mean aggregator (Hamilton et al., 2017): ``W_self h_v + W_neigh mean_{u->v} h_u``."""

from __future__ import annotations

from torch import Tensor, nn

from distgnn.models.inputs import Input, dense, linear
from distgnn.models.propagation import Norm, Propagation
from distgnn.models.stack import LayerStack, StackConv


class SAGEConv(StackConv):
    """One mean-aggregator layer (no normalisation of the output, as PyG/DGL ``SAGEConv`` by default).

    ``mean`` is linear, so ``W_neigh mean(h) = mean(h W_neigh)``: the neighbour branch is transformed first
    when that shrinks the rows, which shrinks the halo exchange too.
    """

    aggregation_norm: Norm = "mean"  # what it asks prop.aggregate for (strategies prepare for it)

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin_self = nn.Linear(in_dim, out_dim, bias=True)
        self.lin_neigh = nn.Linear(in_dim, out_dim, bias=False)

    @property
    def transform_first(self) -> bool:
        return self.out_dim < self.in_dim

    @property
    def exchange_width(self) -> int:
        return self.out_dim if self.transform_first else self.in_dim

    def forward(self, h: Input, prop: Propagation, *, key: int) -> Tensor:
        if self.transform_first:
            neigh = prop.aggregate(linear(h, self.lin_neigh), key=key, norm=self.aggregation_norm)
        else:
            weight = self.lin_neigh.weight.t()
            neigh = prop.aggregate_linear(dense(h), weight, key=key, norm=self.aggregation_norm)
        return linear(h, self.lin_self) + neigh


class GraphSAGE(LayerStack):
    """A stack of mean-aggregator SAGE layers with ReLU and dropout."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2, dropout: float = 0.5) -> None:
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        super().__init__([SAGEConv(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)], dropout, "relu")
