"""GAT (Velickovic et al., 2018): multi-head additive attention over in-edges plus a self-loop."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from distgnn.models.inputs import Input, linear
from distgnn.models.propagation import Propagation
from distgnn.models.stack import LayerStack, StackConv


class GATConv(StackConv):
    """One multi-head attention layer: heads are concatenated (hidden layers) or averaged (output layer).

    Per head, ``e_ij = leaky_relu(a_src . W h_j + a_dst . W h_i)``; the two dot products are computed per
    node here, so the graph side only needs the rows ``W h`` and the scalars ``a_src . W h`` per head.
    It calls ``prop.attend`` only (no ``aggregation_norm``); ``attention_dropout`` drops attention
    coefficients in training.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int,
        *,
        concat: bool,
        negative_slope: float = 0.2,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.heads, self.concat = in_dim, out_dim, heads, concat
        self.negative_slope = negative_slope
        self.attention_dropout = attention_dropout
        self.lin = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(heads, out_dim))
        self.bias = nn.Parameter(torch.zeros(heads * out_dim if concat else out_dim))
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)

    @property
    def exchange_width(self) -> int:
        """Per node: the projected rows of every head plus one source attention term per head."""
        return self.heads * self.out_dim + self.heads

    def forward(self, h: Input, prop: Propagation, *, key: int) -> Tensor:
        z = linear(h, self.lin).view(-1, self.heads, self.out_dim)
        a_src = (z * self.att_src).sum(-1)
        a_dst = (z * self.att_dst).sum(-1)
        p = self.attention_dropout if self.training else 0.0
        out = prop.attend(z, a_src, a_dst, key=key, negative_slope=self.negative_slope, dropout=p)
        out = out.reshape(-1, self.heads * self.out_dim) if self.concat else out.mean(dim=1)
        return out + self.bias


class GAT(LayerStack):
    """GAT with ``heads`` heads in hidden layers (concatenated, ELU) and one averaged head group at the end.

    ``hidden`` is the width per head, as in the GAT paper (8 heads x 8 features on Cora). The output layer
    uses ``out_heads`` heads, averaged. ``dropout`` acts on every layer's input, ``attention_dropout`` on
    the normalised attention coefficients (the paper uses 0.6 for both).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        layers: int = 2,
        dropout: float = 0.6,
        heads: int = 8,
        out_heads: int = 1,
        attention_dropout: float = 0.0,
    ) -> None:
        convs = []
        width = in_dim
        for _ in range(layers - 1):
            convs.append(GATConv(width, hidden, heads, concat=True, attention_dropout=attention_dropout))
            width = hidden * heads
        convs.append(GATConv(width, out_dim, out_heads, concat=False, attention_dropout=attention_dropout))
        super().__init__(convs, dropout, "elu")
