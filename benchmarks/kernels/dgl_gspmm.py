"""DGL's gSpMM (update_all(copy_u, sum)) as a timing worker driven by bench_gspmm.py over stdin/stdout.

Runs in the DGL venv (torch 2.2 + dgl 2.1): numpy, torch and dgl only, never distgnn. Input: an .npz with
``indptr``, ``indices`` (in-edge CSR: rows = destinations) and ``num_features``. Protocol, one JSON line
per reply: after loading, building every sparse format (the transpose the backward needs, like distgnn's
cached transposed CSR), one warm-up forward+backward and a correctness check of that backward, it prints
``{"ready": ...}``; then each stdin line ``forward`` / ``forward_backward`` runs one timed repeat and prints
``{"forward_s": ..., "backward_s": ...}``; ``quit`` (or EOF) ends it. One repeat per request lets the
caller alternate implementations (A B A B) so machine load hits them alike.

The backward is the real one: ``x`` requires grad, the upstream gradient is a random [N, F] tensor (not
``out.sum()``), ``x.grad`` is reset every repeat and nothing is cached between repeats except the graph
formats. The check compares DGL's ``x.grad`` with A^T @ grad computed independently for sampled rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import dgl
import dgl.function as fn
import numpy as np
import torch


def check_backward(indptr: np.ndarray, indices: np.ndarray, grad: torch.Tensor, got: torch.Tensor) -> float:
    """Max abs error of x.grad vs A^T @ grad on up to 64 source rows (A: dst x src, CSR by dst)."""
    rng = np.random.default_rng(0)
    dst = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    rows = rng.choice(got.shape[0], size=min(64, got.shape[0]), replace=False)
    err = 0.0
    for j in rows:
        want = grad[torch.from_numpy(dst[indices == j])].sum(0)
        err = max(err, float((got[j] - want).abs().max()))
    return err


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with np.load(args.graph, allow_pickle=False) as z:
        indptr, indices, f = z["indptr"], z["indices"], int(z["num_features"])
    n = indptr.size - 1
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    g = dgl.graph((torch.from_numpy(indices), torch.from_numpy(dst)), num_nodes=n)
    g.create_formats_()  # COO, CSR and CSC once, outside the timings
    x = torch.randn(n, f)
    grad = torch.randn(n, f)
    xg = x.clone().requires_grad_()

    def forward() -> dict:
        t0 = time.perf_counter()
        with torch.no_grad():
            g.srcdata["h"] = x
            g.update_all(fn.copy_u("h", "m"), fn.sum("m", "out"))
            out = g.dstdata.pop("out")
        t1 = time.perf_counter()
        del out
        return {"forward_s": t1 - t0, "backward_s": 0.0}

    def forward_backward() -> dict:
        xg.grad = None
        t0 = time.perf_counter()
        g.srcdata["h"] = xg
        g.update_all(fn.copy_u("h", "m"), fn.sum("m", "out"))
        out = g.dstdata.pop("out")
        t1 = time.perf_counter()
        out.backward(grad)
        t2 = time.perf_counter()
        g.srcdata.pop("h")
        return {"forward_s": t1 - t0, "backward_s": t2 - t1}

    forward()
    forward_backward()
    err = check_backward(indptr, indices, grad, xg.grad)
    scale = max(1.0, float(xg.grad.abs().max()))
    if not err <= 1e-4 * scale:
        print(json.dumps({"error": f"DGL backward does not match A^T grad (max err {err:.3g})"}), flush=True)
        sys.exit(1)
    print(json.dumps({"ready": True, "dgl_version": dgl.__version__, "backward_check_err": err}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        res = forward() if cmd == "forward" else forward_backward() if cmd == "forward_backward" else None
        print(json.dumps(res if res is not None else {"error": f"unknown command {cmd!r}"}), flush=True)


if __name__ == "__main__":
    main()
