"""The loop GCN, SAGE and GAT share: dropout before each layer, an activation between layers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from distgnn.models.inputs import Input, dropout
from distgnn.models.layered import LayeredModel
from distgnn.models.propagation import Norm, Propagation

Activation = Literal["relu", "elu"]


class StackConv(nn.Module, ABC):
    """What :class:`LayerStack` reads of a layer: its widths, what it exchanges and how it aggregates.

    ``forward(h, prop, *, key)`` runs the layer (with ``add_bias=False`` too, and a ``bias`` attribute,
    when the stack fuses the bias).
    """

    in_dim: int
    out_dim: int  # of the layer's output (GAT's output layer: one head group's width, heads averaged)
    aggregation_norm: Norm | None = None  # what it asks prop.aggregate for; None: it only calls attend

    @property
    @abstractmethod
    def exchange_width(self) -> int:
        """Width of the rows this layer aggregates (what a halo exchange sends per node)."""


class LayerStack(LayeredModel):
    """Applies ``convs`` in order; layer ``i`` aggregates with ``key=i`` so a strategy tells calls apart.

    Between layers: the activation, then the next layer's input dropout. A ReLU runs fused with that
    dropout (one pass over the rows instead of two, forward and backward). With ``fuse_bias`` each conv
    takes ``add_bias=False`` and its ``bias`` (added last in its forward) joins that pass too.
    """

    def __init__(
        self, convs: list[StackConv], dropout: float, activation: Activation, *, fuse_bias: bool = False
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)  # of StackConv
        self.dropout = dropout
        self.activation = activation
        self.fuse_bias = fuse_bias and activation == "relu"

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    @property
    def first_layer(self) -> nn.Module:
        return self.convs[0]

    def exchange_widths(self) -> list[int]:
        return [conv.exchange_width for conv in self.convs]

    def aggregation_norms(self) -> set[Norm]:
        return {conv.aggregation_norm for conv in self.convs if conv.aggregation_norm is not None}

    def input_width(self, layer: int) -> int:
        return int(self.convs[layer].in_dim)

    def output_width(self) -> int:
        return int(self.convs[-1].out_dim)  # GAT's output layer averages its heads

    def range_parameters(self, start: int, stop: int) -> list[nn.Parameter]:
        self.check_range(start, stop)
        return [p for conv in self.convs[start:stop] for p in conv.parameters()]

    def forward_range(
        self, h: Input, prop: Propagation, start: int, stop: int, *, x: Input | None = None
    ) -> Tensor:
        self.check_range(start, stop)
        if start == 0:
            h = dropout(h, self.dropout, self.training, prop.mask_key(0))
        last = self.num_layers - 1
        for i in range(start, stop):
            conv = self.convs[i]
            if i == last:
                return conv(h, prop, key=i)
            key = prop.mask_key(i + 1)  # the next layer's input dropout
            if self.fuse_bias:
                out = conv(h, prop, key=i, add_bias=False)
                h = dropout(out, self.dropout, self.training, key, relu=True, bias=conv.bias)
            elif self.activation == "relu":
                h = dropout(conv(h, prop, key=i), self.dropout, self.training, key, relu=True)
            else:
                h = dropout(F.elu(conv(h, prop, key=i)), self.dropout, self.training, key)
        return h
