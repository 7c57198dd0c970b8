"""DGL's gSpMM (update_all(copy_u, sum)) on a graph written by bench_gspmm.py; prints JSON times.

Runs in the DGL venv (torch 2.2 + dgl 2.1): numpy, torch and dgl only, never distgnn. Input: an .npz with
``indptr``, ``indices`` (in-edge CSR: rows = destinations) and ``num_features``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import dgl
import dgl.function as fn
import numpy as np
import torch


def median_time(f, repeats: int) -> float:
    f()  # warm-up (DGL builds its formats lazily)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with np.load(args.graph, allow_pickle=False) as z:
        indptr, indices, f = z["indptr"], z["indices"], int(z["num_features"])
    n = indptr.size - 1
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    g = dgl.graph((torch.from_numpy(indices), torch.from_numpy(dst)), num_nodes=n)
    g.create_formats_()
    x = torch.randn(n, f)
    grad = torch.randn(n, f)

    def forward():
        with torch.no_grad():
            g.srcdata["h"] = x
            g.update_all(fn.copy_u("h", "m"), fn.sum("m", "out"))
            return g.dstdata.pop("out")

    xg = x.clone().requires_grad_()

    def forward_backward():
        xg.grad = None
        g.srcdata["h"] = xg
        g.update_all(fn.copy_u("h", "m"), fn.sum("m", "out"))
        g.dstdata.pop("out").backward(grad)

    res = {
        "dgl_version": dgl.__version__,
        "torch_version": torch.__version__,
        "forward_s": median_time(forward, args.repeats),
        "forward_backward_s": median_time(forward_backward, args.repeats),
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
