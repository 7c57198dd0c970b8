"""gSpMM sum, forward and forward+backward: distgnn ``cpu`` vs torch CSR ``sparse.mm`` vs DGL, interleaved.

Two graphs with 128 float32 features on 2 threads: a uniform random graph (500k nodes / 8M edges) and a
planted-community graph (200k nodes / 4M edges, ``distgnn.data.synthetic_graph``, IDs as generated),
the latter also in METIS sub-part order and RCM order (``distgnn.partitioning.reorder.locality_order``,
what ``distgnn partition --reorder`` applies per part). DGL runs in
its own venv as a worker process (``dgl_gspmm.py``) that times one repeat per request, so every repeat
runs each implementation once in turn (A B C A B C ...): load from other processes on a shared machine
then hits all of them alike. Prints min / median / max over the repeats, the forward's gather bandwidth
(edges x width x 4 bytes / forward time) beside the machine's copy and random-row gather bandwidth, and
the ratios the issue targets (of medians). Graph formats / transposes are built once before timing.

    .venv/bin/python -W ignore benchmarks/kernels/bench_gspmm.py [--repeats 9] [--dgl-python PY] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from distgnn.kernels import CSR, gspmm, isa
from distgnn.partitioning.reorder import locality_order, permute_csr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import baseline_python  # noqa: E402

DGL_LABEL = "DGL update_all(copy_u, sum)"


def median_time(f: Callable[[], object], repeats: int) -> float:
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


class Runner:
    """One implementation on one graph: ``forward()`` / ``forward_backward()`` run one timed repeat."""

    def forward(self) -> tuple[float, float]:
        raise NotImplementedError

    def forward_backward(self) -> tuple[float, float]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalRunner(Runner):
    """An in-process implementation given as op(x) -> out."""

    def __init__(self, op: Callable[[torch.Tensor], torch.Tensor], n_src: int, n_dst: int, f: int) -> None:
        self.op = op
        self.x = torch.randn(n_src, f)
        self.grad = torch.randn(n_dst, f)
        self.xg = self.x.clone().requires_grad_()

    def forward(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.op(self.x)
        t1 = time.perf_counter()
        del out
        return t1 - t0, 0.0

    def forward_backward(self) -> tuple[float, float]:
        self.xg.grad = None
        t0 = time.perf_counter()
        out = self.op(self.xg)
        t1 = time.perf_counter()
        out.backward(self.grad)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1


def ours(indptr: np.ndarray, indices: np.ndarray, f: int) -> LocalRunner:
    csr = CSR.from_numpy(indptr, indices)
    csr.transposed()  # built once per graph and cached, as in training
    return LocalRunner(lambda x: gspmm(csr, x, impl="cpu"), csr.num_src, csr.num_dst, f)


def torch_csr(indptr: np.ndarray, indices: np.ndarray, f: int) -> LocalRunner:
    n = indptr.size - 1
    ip, ix = torch.from_numpy(indptr), torch.from_numpy(indices)
    a = torch.sparse_csr_tensor(ip, ix, torch.ones(ix.numel()), size=(n, n), check_invariants=False)
    return LocalRunner(lambda x: torch.sparse.mm(a, x), n, n, f)


class DGLRunner(Runner):
    """dgl_gspmm.py in the DGL venv, one repeat per request over a pipe."""

    def __init__(self, python: Path, indptr: np.ndarray, indices: np.ndarray, f: int, threads: int) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="distgnn-bench-")
        path = Path(self.tmp.name) / "graph.npz"
        np.savez(path, indptr=indptr, indices=indices, num_features=np.int64(f))
        cmd = [str(python), str(HERE / "dgl_gspmm.py"), str(path), "--threads", str(threads)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        ready = self._reply()
        if not ready.get("ready"):
            raise RuntimeError(f"DGL worker failed: {ready.get('error', ready)}")

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"DGL worker exited (code {self.proc.wait()})")
        return json.loads(line)

    def _ask(self, cmd: str) -> tuple[float, float]:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        r = self._reply()
        return r["forward_s"], r["backward_s"]

    def forward(self) -> tuple[float, float]:
        return self._ask("forward")

    def forward_backward(self) -> tuple[float, float]:
        return self._ask("forward_backward")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self.tmp.cleanup()


def interleaved(runners: dict[str, Runner], repeats: int) -> dict[str, dict[str, list[float]]]:
    """One warm-up, then ``repeats`` rounds; each round runs every runner's forward, then every fwd+bwd."""
    times = {k: {"fwd": [], "fwd+bwd": [], "bwd": []} for k in runners}
    for rnd in range(repeats + 1):
        for k, r in runners.items():
            t, _ = r.forward()
            if rnd:
                times[k]["fwd"].append(t)
        for k, r in runners.items():
            tf, tb = r.forward_backward()
            if rnd:
                times[k]["fwd+bwd"].append(tf + tb)
                times[k]["bwd"].append(tb)
    return times


def dgl_runner(py: Path | None, indptr, indices, f: int, threads: int) -> DGLRunner | None:
    if py is None:
        return None
    try:
        return DGLRunner(py, indptr, indices, f, threads)
    except (RuntimeError, OSError) as exc:
        print(f"  DGL skipped: {exc}", file=sys.stderr)
        return None


def run_section(name: str, e: int, f: int, runners: dict[str, Runner | None], repeats: int) -> dict:
    live = {k: r for k, r in runners.items() if r is not None}
    try:
        times = interleaved(live, repeats)
    finally:
        for r in live.values():
            r.close()
    print(f"\n== {name}: {e:,} edges, {f} features; seconds, min / median / max of {repeats}")
    print(f"{'impl':34s} {'fwd':>22s} {'bwd':>22s} {'fwd+bwd':>22s} {'fwd GB/s':>9s}")
    fmt = lambda v: f"{min(v):6.3f} {statistics.median(v):6.3f} {max(v):6.3f}"
    med = {}
    for k, t in times.items():
        med[k] = {m: statistics.median(v) for m, v in t.items()}
        bw = e * f * 4 / med[k]["fwd"] / 1e9
        print(f"{k:34s} {fmt(t['fwd']):>22s} {fmt(t['bwd']):>22s} {fmt(t['fwd+bwd']):>22s} {bw:9.2f}")
    return med


def ratio(med: dict, fast: str, slow: str, key: str = "fwd+bwd") -> str:
    if fast not in med or slow not in med:
        return "n/a"
    return f"{med[slow][key] / med[fast][key]:.2f}x"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dgl-python", type=Path, default=baseline_python())
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="graphs 10x smaller (a smoke run)")
    ap.add_argument("--skip-community", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    f, rep, scale, th = args.features, args.repeats, (10 if args.quick else 1), args.threads
    dgl_py = args.dgl_python if args.dgl_python.exists() else None
    if dgl_py is None:
        print(f"note: {args.dgl_python} not found, DGL is skipped", file=sys.stderr)
    print(f"torch {torch.__version__}, {th} threads, load average at start {os.getloadavg()}")
    print(isa.describe())  # the ISA entry point the C++ kernels run, and the CPU model
    gspmm(CSR.from_numpy(*random_graph(10, 20)), torch.randn(10, 4), impl="cpu")  # build the extension first
    bw = machine_bandwidth(5)
    print(
        f"machine: copy {bw['copy_GBps']:.1f} GB/s, "
        f"random 512-byte row gather (torch index_select) {bw['random_row_gather_GBps']:.1f} GB/s"
    )

    ip, ix = random_graph(500_000 // scale, 8_000_000 // scale)
    runners = {
        "distgnn cpu": ours(ip, ix, f),
        "torch CSR sparse.mm": torch_csr(ip, ix, f),
        DGL_LABEL: dgl_runner(dgl_py, ip, ix, f, th),
    }
    med = run_section("random graph", ix.size, f, runners, rep)
    print(
        f"fwd+bwd speed-up (medians): vs DGL {ratio(med, 'distgnn cpu', DGL_LABEL)} (target 1.2x), "
        f"vs torch CSR {ratio(med, 'distgnn cpu', 'torch CSR sparse.mm')} (target 2.5x)"
    )
    del runners
    if args.skip_community:
        print(f"load average at end {os.getloadavg()}")
        return

    ip, ix = community_graph(200_000 // scale, 4_000_000 // scale, communities=64)
    t0 = time.perf_counter()
    perm_metis = locality_order(ip, ix, method="metis")
    t_metis = time.perf_counter() - t0
    t0 = time.perf_counter()
    perm_rcm = locality_order(ip, ix, method="rcm")
    t_rcm = time.perf_counter() - t0
    mp, mx = permute_csr(ip, ix, perm_metis)
    rp, rx = permute_csr(ip, ix, perm_rcm)
    runners = {
        "distgnn cpu (given order)": ours(ip, ix, f),
        "distgnn cpu (METIS order)": ours(mp, mx, f),
        "distgnn cpu (RCM order)": ours(rp, rx, f),
        "torch CSR sparse.mm (given order)": torch_csr(ip, ix, f),
        "DGL (given order)": dgl_runner(dgl_py, ip, ix, f, th),
        "DGL (METIS order)": dgl_runner(dgl_py, mp, mx, f, th),
    }
    med = run_section("community graph", ix.size, f, runners, rep)
    print(f"ordering time: METIS sub-parts {t_metis:.1f}s, RCM {t_rcm:.1f}s")
    print(
        f"fwd+bwd speed-up (medians), ours in METIS order vs DGL as given: "
        f"{ratio(med, 'distgnn cpu (METIS order)', 'DGL (given order)')} (target 2x); "
        f"vs DGL in METIS order: {ratio(med, 'distgnn cpu (METIS order)', 'DGL (METIS order)')}; "
        "ours given order vs DGL given order: "
        f"{ratio(med, 'distgnn cpu (given order)', 'DGL (given order)')}"
    )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
