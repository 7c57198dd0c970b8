"""The built-in models as PyG modules with the same weights (``torch_geometric.nn``).

The mapping, layer by layer (PyG stores ``Linear`` weights as [out, in], distgnn's GCN as [in, out]):

- GCN: ``GCNConv(in, out)`` (self-loops added, symmetric normalisation: distgnn's ``gcn`` norm):
  ``lin.weight = weight.T``, ``bias = bias``; ReLU between layers;
- GraphSAGE: ``SAGEConv(in, out, aggr="mean")`` (``lin_l`` on the neighbour mean, ``lin_r`` on the node):
  ``lin_l.weight = lin_neigh.weight``, ``lin_l.bias = lin_self.bias``, ``lin_r.weight = lin_self.weight``;
  ReLU between layers;
- GAT: ``GATConv(in, out, heads, concat, negative_slope)`` (hidden layers concatenate their heads, the
  output layer averages its ``out_heads``; ELU between layers): ``lin.weight = lin.weight`` (``lin_src``
  in older PyG releases), ``att_src``/``att_dst`` = distgnn's [H, C] as [1, H, C],
  ``bias = bias``. Both drop the graph's self-loops and add one per node, score
  ``leaky_relu(a_src . W h_j + a_dst . W h_i)``, softmax over a node's in-edges and add the bias last;
- deepgcn (GCNII): ``h0 = relu(lin_in(x))``, then per layer l (1-based)
  ``h = relu(GCN2Conv(hidden, alpha, shared_weights=True, normalize=True)(h, h0))`` with
  ``weight1 = weight`` (both [in, out]) and ``beta`` = distgnn's ``log(lam / l + 1)``, then
  ``lin_out(h)``; ``lin_in``/``lin_out`` are copied ``nn.Linear`` modules.

What the graph must look like: distgnn drops the graph's self-loops and adds one per node where a layer
uses them; ``GCNConv``, ``GATConv`` and ``GCN2Conv`` do the same with any ``edge_index``, but ``SAGEConv``
averages over the edges it is given, so give it none (``remove_self_loops``). ``GCNConv`` and
``GCN2Conv`` scale an edge by both ends' in-degrees, distgnn by the source's out-degree and the
destination's in-degree: the same on an undirected graph (distgnn symmetrises on load unless asked not
to). Dropout is not carried: the module comes back in ``eval()`` mode, for inference.
"""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from distgnn.errors import DistGNNError
from distgnn.models.deepgcn import DeepGCN
from distgnn.models.gat import GAT
from distgnn.models.gcn import GCN
from distgnn.models.layered import LayeredModel
from distgnn.models.sage import GraphSAGE


class PyGStack(nn.Module):
    """PyG convolutions in order, ``activation`` between them: ``forward(x, edge_index) -> logits``."""

    def __init__(self, convs: list[nn.Module], activation: Literal["relu", "elu"] = "relu") -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.activation = activation

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = F.elu(x) if self.activation == "elu" else x.relu()
        return x


class PyGGCNII(nn.Module):
    """GCNII: ``h0 = relu(lin_in(x))``, each ``GCN2Conv(h, h0)`` followed by ReLU, then ``lin_out``."""

    def __init__(self, lin_in: nn.Linear, convs: list[nn.Module], lin_out: nn.Linear) -> None:
        super().__init__()
        self.lin_in, self.convs, self.lin_out = lin_in, nn.ModuleList(convs), lin_out

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = h0 = self.lin_in(x).relu()
        for conv in self.convs:
            h = conv(h, h0, edge_index).relu()
        return self.lin_out(h)


def to_pyg(model: LayeredModel) -> PyGStack | PyGGCNII:
    """A PyG module computing what ``model`` computes (GCN, GraphSAGE, GAT, deepgcn), with copies of its
    weights, in eval mode."""
    try:
        import torch_geometric.nn as pyg
    except ImportError:
        raise DistGNNError("to_pyg needs PyTorch Geometric: pip install 'distgnn[pyg]'") from None
    if isinstance(model, GCN):
        return PyGStack([_gcn(pyg, c) for c in model.convs]).eval()
    if isinstance(model, GraphSAGE):
        return PyGStack([_sage(pyg, c) for c in model.convs]).eval()
    if isinstance(model, GAT):
        return PyGStack([_gat(pyg, c) for c in model.convs], "elu").eval()
    if isinstance(model, DeepGCN):
        convs = [_gcn2(pyg, c, model.hidden) for c in model.convs]
        return PyGGCNII(copy.deepcopy(model.lin_in), convs, copy.deepcopy(model.lin_out)).eval()
    raise DistGNNError(
        f"no PyG equivalent of {type(model).__name__} with the same math: the built-in gcn, sage, gat and "
        "deepgcn map to GCNConv, SAGEConv, GATConv and GCN2Conv stacks (see distgnn/models/pyg.py)"
    )


def _gcn(pyg: ModuleType, c: nn.Module) -> nn.Module:
    conv = pyg.GCNConv(c.in_dim, c.out_dim)
    conv.lin.weight.data.copy_(c.weight.detach().t())
    conv.bias.data.copy_(c.bias.detach())
    return conv


def _sage(pyg: ModuleType, c: nn.Module) -> nn.Module:
    conv = pyg.SAGEConv(c.in_dim, c.out_dim, aggr="mean")
    conv.lin_l.weight.data.copy_(c.lin_neigh.weight.detach())
    conv.lin_l.bias.data.copy_(c.lin_self.bias.detach())
    conv.lin_r.weight.data.copy_(c.lin_self.weight.detach())
    return conv


def _gat(pyg: ModuleType, c: nn.Module) -> nn.Module:
    conv = pyg.GATConv(
        c.in_dim, c.out_dim, heads=c.heads, concat=c.concat, negative_slope=c.negative_slope,
        add_self_loops=True, bias=True,
    )  # fmt: skip
    lin = conv.lin if getattr(conv, "lin", None) is not None else conv.lin_src  # older PyG: lin_src
    lin.weight.data.copy_(c.lin.weight.detach())
    conv.att_src.data.copy_(c.att_src.detach().unsqueeze(0))
    conv.att_dst.data.copy_(c.att_dst.detach().unsqueeze(0))
    conv.bias.data.copy_(c.bias.detach())
    return conv


def _gcn2(pyg: ModuleType, c: nn.Module, width: int) -> nn.Module:
    conv = pyg.GCN2Conv(width, c.alpha, shared_weights=True, normalize=True)
    conv.beta = c.beta  # PyG's log(theta / layer + 1), taken as the value distgnn computed
    conv.weight1.data.copy_(c.weight.detach())
    return conv
