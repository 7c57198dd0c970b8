"""DGL baseline: full-graph training of a GCN built from ``dgl.nn.GraphConv`` (norm='both', self-loops).

Runs in the DGL venv (never imports distgnn); reads the graph npz with numpy. Prints one JSON line
with per-epoch times (see baseline_loop.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baseline_loop  # noqa: E402


class GCN(torch.nn.Module):
    def __init__(self, dims: list[tuple[int, int]], dropout: float) -> None:
        super().__init__()
        from dgl.nn import GraphConv

        self.convs = torch.nn.ModuleList(GraphConv(i, o, norm="both") for i, o in dims)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, g, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):  # dropout before every layer, ReLU between (as distgnn's GCN)
            h = conv(g, self.dropout(h))
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return h


def main() -> None:
    args = baseline_loop.parse_args(__doc__.splitlines()[0])
    arrays = baseline_loop.load(args)
    import dgl

    n = arrays["x"].shape[0]
    src = torch.from_numpy(arrays["edge_src"].astype("int64", copy=False))
    dst = torch.from_numpy(arrays["edge_dst"].astype("int64", copy=False))
    g = dgl.graph((src, dst), num_nodes=n, idtype=torch.int64)
    # GCN's A + I: DGL's GraphConv refuses zero in-degree nodes, and self-loops are the standard fix.
    g = dgl.add_self_loop(dgl.remove_self_loop(g))
    g = g.formats(["csc", "csr"])  # what full-graph training reads (built once, outside the timing)
    x = torch.from_numpy(arrays["x"])
    y = torch.from_numpy(arrays["y"].astype("int64", copy=False))
    train_mask = torch.from_numpy(arrays["train_mask"])
    num_classes = baseline_loop.common.num_classes_of(arrays)
    model = GCN(baseline_loop.layer_dims(x.shape[1], args.hidden, num_classes, args.layers), args.dropout)
    baseline_loop.train(
        args, "dgl-graphconv", model, lambda: model(g, x), y, train_mask, {"dgl": dgl.__version__}
    )


if __name__ == "__main__":
    main()
