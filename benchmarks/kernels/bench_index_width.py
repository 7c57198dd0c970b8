"""int32 vs int64 CSR indices, interleaved: gSpMM sum fwd+bwd on the C++ kernels, and a 1-rank epoch.

Kernel: the uniform random graph of bench_gspmm.py (500k nodes / 8M edges, 128 float32 features), the
same CSR (and its cached transpose) stored with int32 and with int64 indices; each round times one
forward+backward of each width in turn (the order alternates per round), wall and process CPU time (the
latter counts less of the time other processes take on a shared machine). Reported: the medians, and the
median of the per-round int32/int64 ratios (adjacent runs share the machine's load).
Training (unless ``--skip-train``): ``distgnn train`` on 1 rank x 2 threads on bench_train.py's synthetic
graph (200k nodes / 4M edges, 3-layer GCN 128, dropout 0.5), once with the automatic choice (int32 here)
and once with int64 forced (the int32 limit set to 0 in the process), alternating; the median epoch time
of each run after the warm-up epochs and its peak RSS, medians over runs. Prints the index memory of both
widths.

    .venv/bin/python -W ignore benchmarks/kernels/bench_index_width.py [--rounds 7] [--train-runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from distgnn.kernels import CSR, gspmm, isa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "train"))
import bench_train  # noqa: E402
import common  # noqa: E402
from bench_gspmm import random_graph  # noqa: E402

WIDTHS = {"int32": torch.int32, "int64": torch.int64}
# `distgnn train` with the int32 limit at 0, so every CSR the run builds is int64.
FORCE_INT64 = (
    "import runpy, sys, distgnn.kernels.csr as c; c.INT32_LIMIT = 0; sys.argv[0] = 'distgnn'; "
    "runpy.run_module('distgnn', run_name='__main__', alter_sys=True)"
)


def index_mb(csr: CSR) -> float:
    """MB of the CSR's index arrays, its transpose's and the transpose's edge permutation."""
    t = csr.transposed()
    return (csr.index_bytes() + t.index_bytes() + t.perm.numel() * t.perm.element_size()) / 2**20


def kernel_rounds(nodes: int, edges: int, features: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    indptr, indices = random_graph(nodes, edges)
    csrs = {name: CSR.from_numpy(indptr, indices, dtype=dt) for name, dt in WIDTHS.items()}
    for name, csr in csrs.items():
        print(f"{name}: CSR + transpose + perm index memory {index_mb(csr):.1f} MB", flush=True)
    x = torch.randn(nodes, features, requires_grad=True)
    grad = torch.randn(nodes, features)
    wall: dict[str, list[float]] = {name: [] for name in csrs}
    cpu: dict[str, list[float]] = {name: [] for name in csrs}

    def once(csr: CSR) -> tuple[float, float]:
        x.grad = None
        t0, c0 = time.perf_counter(), time.process_time()
        gspmm(csr, x, impl="cpu").backward(grad)
        return time.perf_counter() - t0, time.process_time() - c0

    for csr in csrs.values():  # warm-up: first-touch of the inputs and outputs
        once(csr)
    names = list(csrs)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            w, c = once(csrs[name])
            wall[name].append(w)
            cpu[name].append(c)
        line = ", ".join(f"{n} {wall[n][-1]:.3f} s (cpu {cpu[n][-1]:.3f} s)" for n in names)
        print(f"round {r + 1}: {line}, load {common.load1():.1f}", flush=True)
    return {"wall": wall, "process cpu": cpu}


def train_once(parts: Path, width: str, args: argparse.Namespace, work: Path) -> tuple[float, float]:
    metrics = work / f"metrics-{width}.jsonl"
    metrics.unlink(missing_ok=True)
    launcher = ["-m", "distgnn"] if width == "int32" else ["-c", FORCE_INT64]
    cmd = [
        str(common.MAIN_PYTHON), *launcher, "train", "--partitions", str(parts), "--model", "gcn",
        "--layers", "3", "--hidden", "128", "--epochs", str(args.epochs), "--dropout", "0.5",
        "--eval-every", str(args.epochs), "--metrics-out", str(metrics), "--no-progress",
    ]  # fmt: skip
    res = common.check(common.run_measured(cmd, env=common.thread_env(2)), f"distgnn train ({width})")
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return statistics.median(r["epoch_s"] for r in records[args.warmup :]), res.max_rss_mb


def train_runs(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    graph_args = argparse.Namespace(nodes=200_000, edges=4_000_000, features=128, classes=16, seed=0)
    times: dict[str, list[float]] = {name: [] for name in WIDTHS}
    rss: dict[str, list[float]] = {name: [] for name in WIDTHS}
    try:
        parts = bench_train.partition(bench_train.make_graph(work, graph_args), 1, work, "none")
        for r in range(args.train_runs):
            for name in list(WIDTHS) if r % 2 == 0 else list(WIDTHS)[::-1]:
                epoch, peak = train_once(parts, name, args, work)
                times[name].append(epoch)
                rss[name].append(peak)
                load = common.load1()
                print(f"run {r + 1}: {name} {epoch:.3f} s/epoch, peak RSS {peak:.0f} MB, load {load:.1f}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return {"epoch": times, "peak RSS (MB)": rss}


def summary(what: str, series: dict[str, dict[str, list[float]]]) -> list[str]:
    """Per measure: medians (min, max) of both widths, their ratio and the median per-round ratio."""
    lines = []
    for measure, values in series.items():
        med = {n: statistics.median(v) for n, v in values.items()}
        spread = ", ".join(
            f"{n} {med[n]:.3f} (min {min(v):.3f}, max {max(v):.3f})" for n, v in values.items()
        )
        paired = statistics.median(a / b for a, b in zip(values["int32"], values["int64"], strict=True))
        lines.append(
            f"{what}, {measure}: {spread}; int32/int64 of medians {med['int32'] / med['int64']:.3f}, "
            f"median per-round ratio {paired:.3f}"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=500_000)
    ap.add_argument("--edges", type=int, default=8_000_000)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--train-runs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workdir", help="keep the training graph and partition here (default: a temp dir)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{common.machine_line()} | {isa.describe()} | load {common.load1():.1f}", flush=True)
    lines = summary("gspmm sum fwd+bwd", kernel_rounds(args.nodes, args.edges, args.features, args.rounds))
    if not args.skip_train:
        lines += summary("1-rank epoch", train_runs(args))
    print("\n".join(lines + [f"1-min load average at the end: {common.load1():.1f}"]))


if __name__ == "__main__":
    main()
