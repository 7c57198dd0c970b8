"""The built-in GCN and GraphSAGE as PyG modules with the same weights (``torch_geometric.nn``).

The mapping, layer by layer (PyG stores ``Linear`` weights as [out, in], distgnn's GCN as [in, out]):

- GCN: ``GCNConv(in, out)`` (self-loops added, symmetric normalisation: distgnn's ``gcn`` norm):
  ``lin.weight = weight.T``, ``bias = bias``;
- GraphSAGE: ``SAGEConv(in, out, aggr="mean")`` (``lin_l`` on the neighbour mean, ``lin_r`` on the node):
  ``lin_l.weight = lin_neigh.weight``, ``lin_l.bias = lin_self.bias``, ``lin_r.weight = lin_self.weight``;
- ReLU between layers; dropout is off in evaluation, as in PyG's ``eval()``.

Not mapped, each with one clear line instead of a module that might compute something else: GAT (its
attention vectors, self-loop handling and head averaging have not been checked against PyG's
``GATConv`` by a test yet), and ``deepgcn`` (GCNII: PyG's ``GCN2Conv`` shares the initial-residual and
identity-mapping form, but its weight sharing and normalisation differ from this implementation's).
"""

from __future__ import annotations

from torch import Tensor, nn

from distgnn.errors import DistGNNError
from distgnn.models.gcn import GCN
from distgnn.models.layered import LayeredModel
from distgnn.models.sage import GraphSAGE


class PyGStack(nn.Module):
    """PyG convolutions applied in order with ReLU between them: ``forward(x, edge_index) -> logits``."""

    def __init__(self, convs: list[nn.Module]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = x.relu()
        return x


def to_pyg(model: LayeredModel) -> PyGStack:
    """A PyG module computing what ``model`` computes (GCN and GraphSAGE), with copies of its weights."""
    try:
        from torch_geometric.nn import GCNConv, SAGEConv
    except ImportError:
        raise DistGNNError("to_pyg needs PyTorch Geometric: pip install 'distgnn[pyg]'") from None
    convs: list[nn.Module] = []
    if isinstance(model, GCN):
        for c in model.convs:
            conv = GCNConv(c.in_dim, c.out_dim)
            conv.lin.weight.data.copy_(c.weight.detach().t())
            conv.bias.data.copy_(c.bias.detach())
            convs.append(conv)
    elif isinstance(model, GraphSAGE):
        for c in model.convs:
            conv = SAGEConv(c.in_dim, c.out_dim, aggr="mean")
            conv.lin_l.weight.data.copy_(c.lin_neigh.weight.detach())
            conv.lin_l.bias.data.copy_(c.lin_self.bias.detach())
            conv.lin_r.weight.data.copy_(c.lin_self.weight.detach())
            convs.append(conv)
    else:
        raise DistGNNError(
            f"no PyG equivalent of {type(model).__name__} with the same math: GCN and GraphSAGE map to "
            "GCNConv and SAGEConv stacks (distgnn/models/pyg.py says why the others do not)"
        )
    return PyGStack(convs).eval()
