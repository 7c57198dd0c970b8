"""gSpMM sum, forward + backward, on one device: distgnn vs torch CSR ``sparse.mm`` vs PyG's GCNConv path.

Two graphs: a uniform random graph and a planted-community graph (``distgnn.data.synthetic_graph``),
2M nodes / 40M edges each by default, float32 features of ``--width``. Implementations: distgnn
``gspmm`` (``auto``: Triton on CUDA, the C++ kernels on CPU), torch's CSR ``sparse.mm`` (cuSPARSE on
CUDA) and PyG's ``GCNConv.propagate`` (the gather + scatter-add its GCN layer runs; skipped when
torch_geometric is not installed). Before timing, the three outputs and input gradients must agree to
1e-4 (relative to the largest value); the first disagreement prints a ``FAIL`` line and exits 1.
Repeats are interleaved (A B C A B C ...), times are CUDA events on CUDA and host timers on CPU (the
``distgnn.comm.clock`` clocks), and the medians are printed with their ratios and written as JSON.

    python benchmarks/gpu/bench_spmm.py --device cuda --out runs/gpu-check/spmm.json
    python benchmarks/gpu/bench_spmm.py --device cpu --nodes 5000 --edges 50000 --repeats 2  # smoke
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from distgnn.comm.clock import clock_for
from distgnn.kernels import CSR, gspmm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernels"))
from bench_gspmm import community_graph, random_graph  # noqa: E402  (the CPU benchmark's graphs)

Op = Callable[[torch.Tensor], torch.Tensor]


def implementations(indptr: np.ndarray, indices: np.ndarray, device: torch.device) -> dict[str, Op]:
    n = indptr.size - 1
    ip, ix = torch.from_numpy(indptr).to(device), torch.from_numpy(indices).to(device)
    csr = CSR(ip, ix, n, validate=False)
    csr.transposed()  # built once and cached, as in training
    adj = torch.sparse_csr_tensor(ip, ix, torch.ones(ix.numel(), device=device), size=(n, n))
    ops: dict[str, Op] = {
        "distgnn gspmm": lambda x: gspmm(csr, x),
        "torch sparse.mm (CSR)": lambda x: torch.sparse.mm(adj, x),
    }
    if importlib.util.find_spec("torch_geometric") is not None:
        from torch_geometric.nn import GCNConv

        conv = GCNConv(1, 1, normalize=False, bias=False).to(device)
        rows = torch.repeat_interleave(
            torch.arange(n, device=device), ip[1:] - ip[:-1], output_size=ix.numel()
        )
        edge_index = torch.stack([ix, rows])  # source -> destination
        ops["PyG GCNConv.propagate"] = lambda x: conv.propagate(edge_index, x=x, edge_weight=None)
    return ops


def check_agreement(ops: dict[str, Op], n: int, width: int, device: torch.device, graph: str) -> None:
    """Forward outputs and input gradients of every op equal the first op's to 1e-4 (of the max)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, width, generator=g).to(device)
    grad = torch.randn(n, width, generator=g).to(device)
    first = None
    for name, op in ops.items():
        xg = x.clone().requires_grad_()
        out = op(xg)
        out.backward(grad)
        got = (out.detach(), xg.grad)
        if first is None:
            first = (name, got)
            continue
        for what, a, b in zip(("forward", "input gradient"), got, first[1], strict=True):
            err = float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))
            if not err <= 1e-4:
                print(f"FAIL spmm {graph}: {name} {what} differs from {first[0]} by {err:.2e} (> 1e-4)")
                sys.exit(1)
    print(f"ok   spmm {graph}: {', '.join(ops)} agree to 1e-4 (forward and input gradient)", flush=True)


def time_all(ops: dict[str, Op], n: int, width: int, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of forward + backward per op, repeats interleaved."""
    clock = clock_for(device)
    x = torch.randn(n, width, device=device).requires_grad_()
    grad = torch.randn(n, width, device=device)
    times: dict[str, list[float]] = {k: [] for k in ops}
    for rep in range(repeats + 1):  # the first round warms up (autotuning, allocator)
        for name, op in ops.items():
            x.grad = None
            a = clock.mark()
            op(x).backward(grad)
            b = clock.mark()
            clock.wait(b)
            if rep:
                times[name].append(clock.seconds(a, b))
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--nodes", type=int, default=2_000_000)
    ap.add_argument("--edges", type=int, default=40_000_000)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("FAIL spmm: --device cuda but torch sees no CUDA device")
        return 1
    results = {}
    builds = {
        "random": lambda: random_graph(args.nodes, args.edges),
        "community": lambda: community_graph(args.nodes, args.edges, max(args.nodes // 2000, 8)),
    }
    for graph, build in builds.items():
        indptr, indices = build()
        ops = implementations(indptr, indices, device)
        check_agreement(ops, args.nodes, args.width, device, graph)
        med = time_all(ops, args.nodes, args.width, device, args.repeats)
        ours = med["distgnn gspmm"]
        for name, t in med.items():
            print(
                f"time spmm {graph}: {name:<24} fwd+bwd median {1e3 * t:9.2f} ms  ({t / ours:5.2f} x distgnn)"
            )
        results[graph] = {"edges": int(indices.size), "median_fwd_bwd_s": med}
        del ops
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    meta |= {"nodes": args.nodes, "width": args.width, "repeats": args.repeats, "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(meta | {"graphs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
