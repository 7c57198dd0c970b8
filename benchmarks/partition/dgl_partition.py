"""DGL baseline: partition a graph npz with ``dgl.distributed.partition_graph`` (METIS) as a DGL user would.

Runs in the DGL venv (never imports distgnn). Builds a ``dgl.graph`` with the features, labels and
masks as ndata, then calls ``partition_graph`` the way DGL's own distributed example does
(examples/distributed/graphsage: ``--balance_train --balance_edges``, i.e.
``balance_ntypes=train_mask, balance_edges=True``; also the docstring's example). Prints one JSON line:
{wall_s, partition_s, edge_cut, ...}; ``--assignment-out`` saves the part of each original node so a
driver can score every partitioner with the same cut function.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

T_START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402


def node_assignment(out_dir: Path, graph_name: str, orig_nids: np.ndarray) -> np.ndarray:
    """Part of each *original* node ID, from the saved node_map ranges and the returned shuffle map."""
    meta = json.loads((out_dir / f"{graph_name}.json").read_text())
    ranges = meta["node_map"]["_N"]
    shuffled = np.empty(orig_nids.shape[0], dtype=np.int64)
    for part, (lo, hi) in enumerate(ranges):
        shuffled[lo:hi] = part
    assignment = np.empty_like(shuffled)
    assignment[orig_nids] = shuffled  # new ID i is original node orig_nids[i]
    return assignment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", required=True, help="graph .npz in distgnn's schema")
    ap.add_argument("--parts", type=int, default=8)
    ap.add_argument("--out", help="partition output dir (default: a temp dir, removed afterwards)")
    ap.add_argument(
        "--no-balance",
        action="store_true",
        help="call partition_graph with its bare defaults (balance nodes only) instead of the example's",
    )
    ap.add_argument("--assignment-out", help="save the part of each node (int64 .npy)")
    ap.add_argument("--no-cut", action="store_true", help="skip computing the edge cut in this process")
    args = ap.parse_args()

    import dgl  # late: import time is part of what a user pays, but keep argparse errors fast
    import torch

    arrays = common.load_npz(args.graph)
    src = torch.from_numpy(arrays["edge_src"].astype(np.int64, copy=False))
    dst = torch.from_numpy(arrays["edge_dst"].astype(np.int64, copy=False))
    n = arrays["x"].shape[0]
    g = dgl.graph((src, dst), num_nodes=n, idtype=torch.int64)
    g.ndata["feat"] = torch.from_numpy(arrays["x"])
    g.ndata["label"] = torch.from_numpy(arrays["y"])
    for m in ("train_mask", "val_mask", "test_mask"):
        g.ndata[m] = torch.from_numpy(arrays[m])
    del arrays, src, dst

    tmp = None
    if args.out:
        out_dir = Path(args.out)
    else:
        tmp = tempfile.mkdtemp(prefix="dgl-partition-")
        out_dir = Path(tmp)
    try:
        balance = {} if args.no_balance else {"balance_ntypes": g.ndata["train_mask"], "balance_edges": True}
        t0 = time.perf_counter()
        orig_nids, _orig_eids = dgl.distributed.partition_graph(
            g, "graph", args.parts, str(out_dir), part_method="metis", return_mapping=True, **balance
        )
        partition_s = time.perf_counter() - t0
        assignment = node_assignment(out_dir, "graph", orig_nids.numpy())
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    wall_s = time.perf_counter() - T_START

    if args.assignment_out:
        np.save(args.assignment_out, assignment)
    result = {
        "tool": "dgl",
        "dgl_version": dgl.__version__,
        "parts": args.parts,
        "balanced": not args.no_balance,
        "wall_s": round(wall_s, 3),
        "partition_s": round(partition_s, 3),
        "part_sizes": np.bincount(assignment, minlength=args.parts).tolist(),
    }
    if not args.no_cut:
        src_np, dst_np = (t.numpy() for t in g.edges())
        result["edge_cut"] = common.edge_cut(src_np, dst_np, assignment)
        result["num_edges"] = int(g.num_edges())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
