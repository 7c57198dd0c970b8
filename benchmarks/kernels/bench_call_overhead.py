"""Per-call overhead of the aggregation op on a small graph: ``gspmm`` vs the raw C++ kernel it runs.

On Cora-sized graphs (2,708 nodes, 13,264 edges with self-loops, 16 features) the kernel takes a tenth
of a millisecond, so Python-side argument checks, implementation selection and the autograd / custom-op
dispatch decide the epoch time. Prints the process CPU time per call (``time.process_time``, median of
``--repeats`` blocks of ``--calls`` calls) of: the raw kernel, ``gspmm`` forward without grad, and
``gspmm`` forward + backward (with the raw kernel's forward + transposed-backward pair beside it).
One thread, so CPU time is the work done.

    .venv/bin/python benchmarks/kernels/bench_call_overhead.py [--dataset cora.npz] [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from distgnn.kernels import CSR, gspmm
from distgnn.kernels.select import backend


def per_call_us(f: Callable[[], object], calls: int, repeats: int) -> float:
    """Median over ``repeats`` blocks of the process CPU time per call of ``f``, in microseconds."""
    for _ in range(min(calls, 50)):
        f()
    blocks = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(calls):
            f()
        blocks.append((time.process_time() - t0) / calls)
    return statistics.median(blocks) * 1e6


def graph(path: str | None) -> tuple[CSR, int]:
    """The graph of ``path`` (an .npz with edge_src / edge_dst / x) with self-loops, else a random one of
    Cora's size."""
    if path:
        d = np.load(path)
        n = int(d["x"].shape[0])
        src, dst = d["edge_src"], d["edge_dst"]
    else:
        n, rng = 2708, np.random.default_rng(0)
        src, dst = rng.integers(0, n, 10556), rng.integers(0, n, 10556)
    loops = np.arange(n)
    csr = CSR.from_edges(
        torch.as_tensor(np.concatenate([src, loops])), torch.as_tensor(np.concatenate([dst, loops])), n
    )
    return csr, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="an .npz graph (default: a random graph of Cora's size)")
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    csr, n = graph(args.dataset)
    t = csr.transposed()
    x = torch.randn(n, args.features)
    xg = x.clone().requires_grad_(True)
    dst_scale = torch.rand(n)
    cpu = backend("cpu")
    x3 = x.reshape(n, 1, args.features)

    def raw() -> None:
        cpu.spmm(csr.indptr, csr.indices, x3, None, None, dst_scale, None, False, False)

    def raw_pair() -> None:
        cpu.spmm(csr.indptr, csr.indices, x3, None, None, dst_scale, None, False, False)
        cpu.spmm(t.indptr, t.indices, x3, None, dst_scale, None, None, False, False)

    def fwd() -> None:
        with torch.no_grad():
            gspmm(csr, x, dst_scale=dst_scale)

    def fwd_bwd() -> None:
        gspmm(csr, xg, dst_scale=dst_scale).sum().backward()

    print(f"graph: {n} nodes, {csr.num_edges} edges, {args.features} features; 1 thread; us CPU per call")
    rows = [
        ("raw C++ kernel (forward)", raw),
        ("gspmm forward, no grad", fwd),
        ("raw C++ kernel x2 (forward + transposed)", raw_pair),
        ("gspmm forward + backward (+ sum)", fwd_bwd),
    ]
    for label, f in rows:
        print(f"{label:44s} {per_call_us(f, args.calls, args.repeats):8.1f}")


if __name__ == "__main__":
    main()
