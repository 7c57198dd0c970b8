"""How close the aggregation kernels come to this machine's memory system: a roofline in bytes per second.

Measures, on ``--threads`` threads with torch: sequential read (a sum over 1 GiB), STREAM-style copy, and
random row gather (``index_select`` of rows of 64-512 bytes from a 2 GiB table, far beyond any L3), then
the C++ gSpMM (sum) forward and backward on a uniform random graph (500k nodes / 8M edges, 128 float32
features by default), each as the bytes of source rows it reads per second and as a share of the
sequential read bandwidth, the ceiling no gather can pass. The C++ entry point is the best this CPU runs,
or ``DISTGNN_CPU_ISA`` (run once per ISA); the header names the CPU and the ISA.

    .venv/bin/python benchmarks/roofline.py [--threads 2] [--repeats 7] [--json-out FILE]
    DISTGNN_CPU_ISA=avx2 .venv/bin/python benchmarks/roofline.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from distgnn.kernels import CSR, gspmm, isa

sys.path.insert(0, str(Path(__file__).resolve().parent / "kernels"))
from bench_gspmm import median_time, random_graph  # noqa: E402  (the kernel benchmark's graph and timer)

GiB = 1 << 30


def sequential(repeats: int) -> dict:
    """Sequential read (a sum over 1 GiB) and STREAM-style copy (512 MiB), GB/s."""
    big = torch.ones(GiB // 4)
    read = GiB / median_time(lambda: big.sum(), repeats) / 1e9
    src, dst = big[: GiB // 8], torch.empty(GiB // 8)
    t_copy = median_time(lambda: dst.copy_(src), repeats)
    return {
        "seq_read_GBps": read,
        "copy_read_GBps": GiB / 2 / t_copy / 1e9,
        "copy_moved_GBps": GiB / t_copy / 1e9,
    }


def gather(row_bytes: int, repeats: int) -> float:
    """Random rows of ``row_bytes`` gathered from a 2 GiB table by ``index_select``: GB/s read."""
    width = row_bytes // 4
    table = torch.ones(2 * GiB // row_bytes, width)
    idx = torch.randint(0, table.shape[0], (GiB // 2 // row_bytes,))
    buf = torch.empty(idx.numel(), width)
    return (
        idx.numel()
        * row_bytes
        / median_time(lambda: torch.index_select(table, 0, idx, out=buf), repeats)
        / 1e9
    )


def machine(repeats: int) -> dict:
    """Sequential read, copy and random row gather bandwidth, GB/s of data read (copy: also moved)."""
    out = sequential(repeats)
    for row_bytes in (64, 128, 256, 512):
        out[f"gather_{row_bytes}B_GBps"] = gather(row_bytes, repeats)
    return out


def kernel(nodes: int, edges: int, features: int, repeats: int) -> dict:
    """gSpMM sum forward and backward (the cpu implementation): seconds and source-row bytes read per s."""
    csr = CSR.from_numpy(*random_graph(nodes, edges))
    csr.transposed()  # built once and cached, as in training
    x = torch.randn(nodes, features, requires_grad=True)
    grad = torch.randn(nodes, features)
    fwd = median_time(lambda: gspmm(csr, x.detach(), impl="cpu"), repeats)
    bwd_times = []
    for _ in range(repeats + 1):  # the backward alone: the forward of each repeat is not timed
        x.grad = None
        out = gspmm(csr, x, impl="cpu")
        t0 = time.perf_counter()
        out.backward(grad)
        bwd_times.append(time.perf_counter() - t0)
    bwd = statistics.median(bwd_times[1:])
    rows = edges * features * 4  # every edge reads one source row (forward) / one gradient row (backward)
    return {"fwd_s": fwd, "bwd_s": bwd, "fwd_GBps": rows / fwd / 1e9, "bwd_GBps": rows / bwd / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--nodes", type=int, default=500_000)
    ap.add_argument("--edges", type=int, default=8_000_000)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--json-out", help="also write the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{isa.describe()} | {args.threads} threads | load {os.getloadavg()[0]:.1f}", flush=True)
    m = machine(args.repeats)
    k = kernel(args.nodes, args.edges, args.features, args.repeats)
    read = m["seq_read_GBps"]
    print(f"sequential read {read:.1f} GB/s | copy {m['copy_read_GBps']:.1f} GB/s read "
          f"({m['copy_moved_GBps']:.1f} moved)")  # fmt: skip
    for b in (64, 128, 256, 512):
        g = m[f"gather_{b}B_GBps"]
        print(f"random {b:3d} B row gather (index_select) {g:5.1f} GB/s = {100 * g / read:3.0f}% of seq read")
    print(f"gSpMM sum, {args.nodes:,} nodes / {args.edges:,} edges, F={args.features}:")
    for d in ("fwd", "bwd"):
        g = k[f"{d}_GBps"]
        verdict = "PASS" if g >= 0.7 * read else "MISS"
        print(f"  {d} {k[f'{d}_s']:.3f} s, source rows read at {g:5.1f} GB/s = {100 * g / read:3.0f}% of seq "
              f"read ({verdict} the 70% target)")  # fmt: skip
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"isa": isa.describe(), "threads": args.threads, **m, **k}, f, indent=1)


if __name__ == "__main__":
    main()
