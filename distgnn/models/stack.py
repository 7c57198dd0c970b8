"""The loop GCN, SAGE and GAT share: dropout before each layer, an activation between layers."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from distgnn.kernels import dropout
from distgnn.models.inputs import Input
from distgnn.models.inputs import dropout as input_dropout
from distgnn.models.propagation import Propagation

Activation = Literal["relu", "elu"]


class LayerStack(nn.Module):
    """Applies ``convs`` in order; layer ``i`` aggregates with ``key=i`` so a strategy tells calls apart.

    Between layers: the activation, then the next layer's input dropout. A ReLU runs fused with that
    dropout (one pass over the rows instead of two, forward and backward). With ``fuse_bias`` each conv
    takes ``add_bias=False`` and its ``bias`` (added last in its forward) joins that pass too.
    """

    def __init__(
        self, convs: list[nn.Module], dropout: float, activation: Activation, *, fuse_bias: bool = False
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.dropout = dropout
        self.activation = activation
        self.fuse_bias = fuse_bias and activation == "relu"

    @property
    def first_layer(self) -> nn.Module:
        return self.convs[0]

    def exchange_widths(self) -> list[int]:
        """Per layer, the width of the rows aggregated over the graph (what a halo exchange sends)."""
        return [conv.exchange_width for conv in self.convs]

    def forward(self, x: Input, prop: Propagation) -> Tensor:
        h = input_dropout(x, self.dropout, self.training)
        for i, conv in enumerate(self.convs[:-1]):
            if self.fuse_bias:
                h = self._relu_dropout(conv(h, prop, key=i, add_bias=False), conv.bias)
            elif self.activation == "relu":
                h = self._relu_dropout(conv(h, prop, key=i), None)
            else:
                h = dropout(F.elu(conv(h, prop, key=i)), self.dropout, training=self.training)
        return self.convs[-1](h, prop, key=len(self.convs) - 1)

    def _relu_dropout(self, h: Tensor, bias: Tensor | None) -> Tensor:
        return dropout(h, self.dropout, training=self.training, relu=True, bias=bias)
