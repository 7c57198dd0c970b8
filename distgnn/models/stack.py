"""The loop GCN, SAGE and GAT share: dropout before each layer, an activation between layers."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from distgnn.models.inputs import Input, dropout
from distgnn.models.propagation import Propagation


class LayerStack(nn.Module):
    """Applies ``convs`` in order; layer ``i`` aggregates with ``key=i`` so a strategy tells calls apart."""

    def __init__(
        self, convs: list[nn.Module], dropout: float, activation: Callable[[Tensor], Tensor]
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.dropout = dropout
        self.activation = activation

    def exchange_widths(self) -> list[int]:
        """Per layer, the width of the rows aggregated over the graph (what a halo exchange sends)."""
        return [conv.exchange_width for conv in self.convs]

    def forward(self, x: Input, prop: Propagation) -> Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(dropout(h, self.dropout, self.training), prop, key=i)
            if i < len(self.convs) - 1:
                h = self.activation(h)
        return h
