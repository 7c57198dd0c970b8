"""PyG baseline: full-graph training of a GCN built from ``torch_geometric.nn.GCNConv``.

Runs in the DGL/PyG venv (never imports distgnn); reads the graph npz with numpy. ``cached=True`` (the
normalised adjacency is computed once: PyG's setting for transductive full-graph training).
``--layout sparse`` passes a transposed torch.sparse CSR adjacency (PyG's SpMM path) instead of an
``edge_index`` (gather/scatter path). Prints one JSON line with per-epoch times (see baseline_loop.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_loop  # noqa: E402


class GCN(torch.nn.Module):
    def __init__(self, dims: list[tuple[int, int]], dropout: float) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.convs = torch.nn.ModuleList(GCNConv(i, o, cached=True) for i, o in dims)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, adj) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):  # dropout before every layer, ReLU between (as distgnn's GCN)
            h = conv(self.dropout(h), adj)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return h


def main() -> None:
    def add_layout(ap) -> None:
        ap.add_argument("--layout", choices=("edge_index", "sparse"), default="edge_index")

    args = baseline_loop.parse_args(__doc__.splitlines()[0], add_layout)
    layout = args.layout
    arrays = baseline_loop.load(args)
    import torch_geometric
    from torch_geometric.utils import remove_self_loops

    n = arrays["x"].shape[0]
    edge_index = torch.from_numpy(
        np.stack([arrays["edge_src"], arrays["edge_dst"]]).astype("int64", copy=False)
    )
    edge_index, _ = remove_self_loops(edge_index)  # GCNConv adds one self-loop per node itself
    if layout == "sparse":
        from torch_geometric.utils import to_torch_csr_tensor

        adj = to_torch_csr_tensor(edge_index.flip(0), size=(n, n))  # adj_t: row = target
    else:
        adj = edge_index
    x = torch.from_numpy(arrays["x"])
    y = torch.from_numpy(arrays["y"].astype("int64", copy=False))
    train_mask = torch.from_numpy(arrays["train_mask"])
    num_classes = baseline_loop.common.num_classes_of(arrays)
    model = GCN(baseline_loop.layer_dims(x.shape[1], args.hidden, num_classes, args.layers), args.dropout)
    baseline_loop.train(
        args,
        f"pyg-gcnconv-{layout}",
        model,
        lambda: model(x, adj),
        y,
        train_mask,
        {"torch_geometric": torch_geometric.__version__, "layout": layout},
    )


if __name__ == "__main__":
    main()
