"""gSpMM sum, forward and forward+backward: distgnn ``cpu`` vs torch CSR ``sparse.mm`` vs DGL, side by side.

Two graphs with 128 float32 features on 2 threads: a uniform random graph (500k nodes / 8M edges) and a
planted-community graph (200k nodes / 4M edges, ``distgnn.data.synthetic_graph``, IDs shuffled), the
latter also in METIS sub-part order and RCM order (``distgnn.kernels.locality_order``). Prints medians of
several repeats, the achieved gather bandwidth (edges x width x 4 bytes / forward time) beside the
machine's copy bandwidth and random-row gather bandwidth, and the ratios the issue targets.

    .venv/bin/python benchmarks/kernels/bench_gspmm.py [--dgl-python /work/venvs/dgl/bin/python] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from distgnn.kernels import CSR, gspmm, locality_order
from distgnn.kernels.reorder import permute_csr

HERE = Path(__file__).resolve().parent
DEFAULT_DGL = Path("/work/venvs/dgl/bin/python")


def median_time(f, repeats: int) -> float:
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_graph(n: int, e: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, e, dtype=np.int64)
    dst = rng.integers(0, n, e, dtype=np.int64)
    order = np.argsort(dst, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
    return indptr, src[order]


def community_graph(n: int, e: int, communities: int) -> tuple[np.ndarray, np.ndarray]:
    from distgnn.data import synthetic

    g = synthetic.synthetic_graph(
        num_nodes=n, num_edges=e, num_features=1, num_classes=8, communities=communities, seed=0
    )
    return g.indptr.astype(np.int64), g.indices.astype(np.int64)


def time_ours(indptr: np.ndarray, indices: np.ndarray, f: int, repeats: int) -> dict:
    csr = CSR.from_numpy(indptr, indices)
    csr.transposed()  # built once per graph and cached, as in training
    x = torch.randn(csr.num_src, f)
    grad = torch.randn(csr.num_dst, f)
    xg = x.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return gspmm(csr, x, impl="cpu")

    def fwd_bwd():
        xg.grad = None
        gspmm(csr, xg, impl="cpu").backward(grad)

    return {"forward_s": median_time(fwd, repeats), "forward_backward_s": median_time(fwd_bwd, repeats)}


def time_torch_csr(indptr: np.ndarray, indices: np.ndarray, f: int, repeats: int) -> dict:
    n = indptr.size - 1
    ip, ix = torch.from_numpy(indptr), torch.from_numpy(indices)
    a = torch.sparse_csr_tensor(ip, ix, torch.ones(ix.numel()), size=(n, n), check_invariants=False)
    x = torch.randn(n, f)
    grad = torch.randn(n, f)
    xg = x.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            return torch.sparse.mm(a, x)

    def fwd_bwd():
        xg.grad = None
        torch.sparse.mm(a, xg).backward(grad)

    return {"forward_s": median_time(fwd, repeats), "forward_backward_s": median_time(fwd_bwd, repeats)}


def time_dgl(dgl_python: Path | None, indptr, indices, f: int, repeats: int, threads: int) -> dict | None:
    if dgl_python is None or not dgl_python.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="distgnn-bench-") as tmp:
        path = Path(tmp) / "graph.npz"
        np.savez(path, indptr=indptr, indices=indices, num_features=np.int64(f))
        cmd = [str(dgl_python), str(HERE / "dgl_gspmm.py"), str(path), "--threads", str(threads)]
        cmd += ["--repeats", str(repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"  DGL run failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_bandwidth(repeats: int) -> dict:
    """Big-copy bandwidth and random 512-byte-row gather bandwidth (GB/s of data read)."""
    src = torch.randn(128 * 1024 * 1024)  # 512 MiB
    dst = torch.empty_like(src)
    t_copy = median_time(lambda: dst.copy_(src), repeats)
    table = torch.randn(500_000, 128)
    idx = torch.randint(0, table.shape[0], (4_000_000,))
    out = torch.empty(idx.numel(), 128)
    t_gather = median_time(lambda: torch.index_select(table, 0, idx, out=out), repeats)
    return {
        "copy_GBps": 128 * 1024 * 1024 * 4 / t_copy / 1e9,
        "random_row_gather_GBps": idx.numel() * 512 / t_gather / 1e9,
    }


def report(name: str, e: int, f: int, rows: dict[str, dict | None]) -> None:
    print(f"\n== {name}: {e:,} edges, {f} features")
    print(f"{'impl':34s} {'fwd (s)':>9s} {'fwd+bwd (s)':>12s} {'gather GB/s':>12s}")
    for label, r in rows.items():
        if r is None:
            print(f"{label:34s}  (skipped: DGL python not found or failed)")
            continue
        bw = e * f * 4 / r["forward_s"] / 1e9
        print(f"{label:34s} {r['forward_s']:9.3f} {r['forward_backward_s']:12.3f} {bw:12.2f}")


def ratio(rows: dict, a: str, b: str, key: str = "forward_backward_s") -> str:
    if rows.get(a) is None or rows.get(b) is None:
        return "n/a"
    return f"{rows[b][key] / rows[a][key]:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dgl-python", type=Path, default=DEFAULT_DGL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="graphs 10x smaller (a smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    f, rep, scale = args.features, args.repeats, (10 if args.quick else 1)
    dgl_py = args.dgl_python if args.dgl_python.exists() else None
    if dgl_py is None:
        print(f"note: {args.dgl_python} not found, DGL is skipped", file=sys.stderr)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {rep} repeats")
    gspmm(CSR.from_numpy(*random_graph(10, 20)), torch.randn(10, 4), impl="cpu")  # build the extension first
    bw = machine_bandwidth(rep)
    print(
        f"machine: copy {bw['copy_GBps']:.1f} GB/s, "
        f"random 512-byte row gather {bw['random_row_gather_GBps']:.1f} GB/s"
    )

    # --- random graph
    ip, ix = random_graph(500_000 // scale, 8_000_000 // scale)
    rows = {
        "distgnn cpu": time_ours(ip, ix, f, rep),
        "torch CSR sparse.mm": time_torch_csr(ip, ix, f, rep),
        "DGL update_all(copy_u, sum)": time_dgl(dgl_py, ip, ix, f, rep, args.threads),
    }
    report("random graph", ix.size, f, rows)
    print(
        f"fwd+bwd speed-up: vs DGL {ratio(rows, 'distgnn cpu', 'DGL update_all(copy_u, sum)')} "
        "(target 1.2x), "
        f"vs torch CSR {ratio(rows, 'distgnn cpu', 'torch CSR sparse.mm')} (target 2.5x)"
    )

    # --- community graph, as given (shuffled IDs) and in METIS / RCM order
    ip, ix = community_graph(200_000 // scale, 4_000_000 // scale, communities=64)
    t0 = time.perf_counter()
    perm_metis = locality_order(ip, ix, method="metis")
    t_metis = time.perf_counter() - t0
    t0 = time.perf_counter()
    perm_rcm = locality_order(ip, ix, method="rcm")
    t_rcm = time.perf_counter() - t0
    mp, mx = permute_csr(ip, ix, perm_metis)
    rp, rx = permute_csr(ip, ix, perm_rcm)
    rows = {
        "distgnn cpu (given order)": time_ours(ip, ix, f, rep),
        "distgnn cpu (METIS order)": time_ours(mp, mx, f, rep),
        "distgnn cpu (RCM order)": time_ours(rp, rx, f, rep),
        "torch CSR sparse.mm (given order)": time_torch_csr(ip, ix, f, rep),
        "DGL (given order)": time_dgl(dgl_py, ip, ix, f, rep, args.threads),
        "DGL (METIS order)": time_dgl(dgl_py, mp, mx, f, rep, args.threads),
    }
    report("community graph", ix.size, f, rows)
    print(f"ordering time: METIS sub-parts {t_metis:.1f}s, RCM {t_rcm:.1f}s")
    print(
        f"fwd+bwd speed-up, ours in METIS order vs DGL as given: "
        f"{ratio(rows, 'distgnn cpu (METIS order)', 'DGL (given order)')} (target 2x); "
        f"vs DGL in METIS order: {ratio(rows, 'distgnn cpu (METIS order)', 'DGL (METIS order)')}; "
        "ours given order vs DGL given order: "
        f"{ratio(rows, 'distgnn cpu (given order)', 'DGL (given order)')}"
    )


if __name__ == "__main__":
    main()
