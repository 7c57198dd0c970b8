"""Side-by-side training benchmark: epoch time of a 3-layer GCN (hidden 128), distgnn vs DGL vs PyG.

One seeded synthetic graph (default 200,000 nodes, 4,000,000 directed edges, 128 float32 features) is
written once as our npz; distgnn partitions it (1 and 2 parts, METIS; not timed) and every contender
trains on exactly those edges, full-graph, with Adam, the same model shape and the same 2 cores:

- distgnn, 1 rank x 2 threads (``distgnn train``, OMP_NUM_THREADS=2), in float32 and with
  ``--precision bf16-mixed``;
- distgnn, 2 ranks x 1 thread (``distgnn train --nproc 2``, OMP_NUM_THREADS=1), halo staleness 0;
- DGL ``GraphConv`` and PyG ``GCNConv`` (edge_index and torch.sparse layouts), 2 threads, in the
  baseline venv (dgl_gcn.py, pyg_gcn.py).

Each runs ``--repeats`` times in rotating order; per run the median epoch time over the epochs after
``--warmup``; reported is the median over runs. For 2 ranks it also reports the share of halo exchange
time hidden behind computation, ``1 - sum(exposed_comm_s) / sum(comm_s)`` over the kept epochs.

    .venv/bin/python benchmarks/train/bench_train.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from distgnn.kernels import isa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGET_DGL_RATIO = 0.45  # distgnn 1-rank fp32 epoch <= 0.45x DGL GraphConv's
TARGET_PYG_RATIO = 0.5  # ... and <= 0.5x PyG GCNConv's (its faster layout)
TARGET_BF16_RATIO = 0.3  # distgnn 1-rank bf16-mixed epoch <= 0.3x DGL GraphConv's (float32)
TARGET_HIDDEN = 0.8  # >= 80% of halo exchange hidden on 2 ranks (staleness 0)
TARGET_TWO_RANK_RATIO = 0.45  # distgnn 2-rank fp32 epoch <= 0.45x DGL GraphConv's (2M nodes)
TARGET_RANK_RSS = 0.45  # each rank's peak RSS <= 0.45x DGL's single-process peak
TARGET_SYS_SHARE = 0.10  # system time < 10% of a 2-rank epoch
TARGET_RANK_SPREAD = 1.15  # no rank's peak RSS more than 1.15x another's


def make_graph(work: Path, args: argparse.Namespace) -> Path:
    """Write the synthetic graph npz once (reused when the parameters match)."""
    params = {
        "nodes": args.nodes, "edges": args.edges, "features": args.features,
        "classes": args.classes, "seed": args.seed,
    }  # fmt: skip
    path = work / f"train-synthetic-{args.nodes}-{args.edges}-{args.features}.npz"
    sidecar = path.with_suffix(".params.json")
    if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == params:
        print(f"reusing {path}", flush=True)
        return path
    from distgnn.data.npz import save_npz
    from distgnn.data.synthetic import synthetic_graph

    print(f"generating {args.nodes:,} nodes / {args.edges:,} edges / {args.features} features", flush=True)
    graph = synthetic_graph(
        num_nodes=args.nodes,
        num_edges=args.edges,
        num_features=args.features,
        num_classes=args.classes,
        seed=args.seed,
    )
    save_npz(graph, path)
    sidecar.write_text(json.dumps(params))
    return path


def partition(graph: Path, parts: int, work: Path, reorder: str) -> Path:
    out = work / f"parts-{parts}-{reorder}"
    if (out / "meta.json").exists():
        return out
    cmd = [
        str(common.MAIN_PYTHON), "-m", "distgnn", "partition", "--dataset", str(graph),
        "--parts", str(parts), "--out", str(out), "--method", "metis", "--reorder", reorder,
        "--no-progress", "--force",
    ]  # fmt: skip
    common.check(common.run_measured(cmd), f"distgnn partition --parts {parts}")
    return out


def kept_epochs(records: list[dict], warmup: int) -> list[dict]:
    return records[warmup:] or records


def run_distgnn(
    parts_dir: Path,
    nproc: int,
    threads: int,
    args: argparse.Namespace,
    work: Path,
    extra: tuple[str, ...] = (),
) -> dict:
    metrics = work / f"metrics-{nproc}.jsonl"
    metrics.unlink(missing_ok=True)
    cmd = [
        str(common.MAIN_PYTHON), "-m", "distgnn", "train", "--partitions", str(parts_dir),
        "--model", "gcn", "--layers", "3", "--hidden", str(args.hidden), "--epochs", str(args.epochs),
        "--dropout", "0.5", "--lr", "0.01", "--halo-staleness", "0", "--eval-every", str(args.epochs),
        "--metrics-out", str(metrics), "--no-progress", *extra,
    ]  # fmt: skip
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    measured = common.run_measured(cmd, env=common.thread_env(threads), per_rank=nproc > 1)
    res = common.check(measured, f"distgnn train x{nproc}")
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    metrics.unlink()
    kept = kept_epochs(records, args.warmup)
    comm = sum(r["comm_s"] for r in kept)
    exposed = sum(r["exposed_comm_s"] for r in kept)
    return {
        "median_epoch_s": common.median([r["epoch_s"] for r in kept]),
        # per rank and kept epoch: pages faulted in and system (kernel) CPU time during the step
        "minor_faults": common.median([r["minor_faults"] / nproc for r in kept]),
        "sys_s": common.median([r["sys_s"] for r in kept]),
        "comm_s": comm / len(kept),
        "exposed_comm_s": exposed / len(kept),
        "hidden_share": (1.0 - exposed / comm) if comm > 0 else None,
        "epoch_s": [round(r["epoch_s"], 4) for r in records],
        "first_loss": records[0]["loss"],
        "last_loss": records[-1]["loss"],
        "max_rss_mb": res.max_rss_mb,
        # per rank (sampled from /proc under the launcher); one process: its own peak
        "rank_rss_mb": [res.rank_rss_mb[r] for r in sorted(res.rank_rss_mb)] or [res.max_rss_mb],
    }


def run_baseline(script: str, extra: list[str], graph: Path, args: argparse.Namespace) -> dict:
    cmd = [
        str(common.BASELINE_PYTHON), str(HERE / script), "--graph", str(graph), "--epochs", str(args.epochs),
        "--warmup", str(args.warmup), "--hidden", str(args.hidden), "--layers", "3", "--threads", "2",
        *extra,
    ]  # fmt: skip
    res = common.check(common.run_measured(cmd, env=common.thread_env(2)), script)
    out = common.last_json_line(res.stdout)
    out["max_rss_mb"] = res.max_rss_mb
    return out


CONTENDERS = {
    "distgnn 1 rank x 2 threads": lambda ctx: run_distgnn(ctx["parts1"], 1, 2, ctx["args"], ctx["work"]),
    "distgnn 1 rank x 2 threads bf16-mixed": lambda ctx: run_distgnn(
        ctx["parts1"], 1, 2, ctx["args"], ctx["work"], ("--precision", "bf16-mixed")
    ),
    "distgnn 2 ranks x 1 thread": lambda ctx: run_distgnn(ctx["parts2"], 2, 1, ctx["args"], ctx["work"]),
    "distgnn 2 ranks x 1 thread bf16-mixed": lambda ctx: run_distgnn(
        ctx["parts2"], 2, 1, ctx["args"], ctx["work"], ("--precision", "bf16-mixed")
    ),
    "DGL GraphConv (2 threads)": lambda ctx: run_baseline("dgl_gcn.py", [], ctx["graph"], ctx["args"]),
    "PyG GCNConv edge_index (2 threads)": lambda ctx: run_baseline(
        "pyg_gcn.py", ["--layout", "edge_index"], ctx["graph"], ctx["args"]
    ),
    "PyG GCNConv torch.sparse (2 threads)": lambda ctx: run_baseline(
        "pyg_gcn.py", ["--layout", "sparse"], ctx["graph"], ctx["args"]
    ),
}
DGL = "DGL GraphConv (2 threads)"
ONE_RANK = "distgnn 1 rank x 2 threads"
ONE_RANK_BF16 = "distgnn 1 rank x 2 threads bf16-mixed"
PYG = ("PyG GCNConv edge_index (2 threads)", "PyG GCNConv torch.sparse (2 threads)")
TWO_RANKS = "distgnn 2 ranks x 1 thread"
TWO_RANKS_BF16 = "distgnn 2 ranks x 1 thread bf16-mixed"


def rank_peaks(rs: list[dict]) -> list[float]:
    """Each rank's peak RSS over a contender's runs (MB)."""
    return [max(vals) for vals in zip(*(r["rank_rss_mb"] for r in rs), strict=True)]


def report(runs: dict[str, list[dict]], header: str) -> str:
    med = {name: common.median([r["median_epoch_s"] for r in rs]) for name, rs in runs.items()}
    lines = [
        header,
        "",
        "| contender | epoch s (median) | vs DGL GraphConv | peak RSS MB | peak RSS MB per rank | "
        "minor faults per rank-epoch | system s per rank-epoch | per-run medians (s) |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, rs in runs.items():
        rss = max(r["max_rss_mb"] for r in rs)
        ranks = "-" if "rank_rss_mb" not in rs[0] else " / ".join(f"{v:.0f}" for v in rank_peaks(rs))
        per_run = [round(r["median_epoch_s"], 3) for r in rs]
        faults = (
            "-" if "minor_faults" not in rs[0] else f"{common.median([r['minor_faults'] for r in rs]):.0f}"
        )
        sys_s = "-" if "sys_s" not in rs[0] else f"{common.median([r['sys_s'] for r in rs]):.3f}"
        lines.append(
            f"| {name} | {med[name]:.3f} | {common.ratio(med[name], med[DGL]):.2f}x | {rss:.0f} | {ranks} | "
            f"{faults} | {sys_s} | {per_run} |"
        )
    lines.append("")
    if ONE_RANK in runs:
        r1 = common.ratio(med[ONE_RANK], med[DGL])
        lines.append(
            f"- distgnn 1-rank epoch <= {TARGET_DGL_RATIO}x DGL GraphConv: {r1:.2f}x -> "
            f"{common.verdict(r1, TARGET_DGL_RATIO)}"
        )
        pyg = [name for name in PYG if name in runs]
        if pyg:
            fastest = min(pyg, key=lambda name: med[name])
            rp = common.ratio(med[ONE_RANK], med[fastest])
            lines.append(
                f"- distgnn 1-rank epoch <= {TARGET_PYG_RATIO}x {fastest}: {rp:.2f}x -> "
                f"{common.verdict(rp, TARGET_PYG_RATIO)}"
            )
    if ONE_RANK_BF16 in runs:
        rb = common.ratio(med[ONE_RANK_BF16], med[DGL])
        lines.append(
            f"- distgnn 1-rank bf16-mixed epoch <= {TARGET_BF16_RATIO}x DGL GraphConv (fp32): {rb:.2f}x -> "
            f"{common.verdict(rb, TARGET_BF16_RATIO)}"
        )
    if TWO_RANKS not in runs:  # --only without the 2-rank contender: no halo figures
        return "\n".join(lines)
    two = runs[TWO_RANKS]
    r2 = common.ratio(med[TWO_RANKS], med[DGL])
    lines.append(
        f"- distgnn 2-rank epoch <= {TARGET_TWO_RANK_RATIO}x DGL GraphConv: {r2:.2f}x -> "
        f"{common.verdict(r2, TARGET_TWO_RANK_RATIO)}"
    )
    sys_share = common.median([r["sys_s"] / r["median_epoch_s"] for r in two])
    lines.append(
        f"- system time < {TARGET_SYS_SHARE:.0%} of the 2-rank epoch: {sys_share:.1%} (minor faults per rank "
        f"and epoch: {common.median([r['minor_faults'] for r in two]):.0f}) -> "
        f"{'PASS' if sys_share < TARGET_SYS_SHARE else 'MISS'}"
    )
    peaks, dgl_rss = rank_peaks(two), max(r["max_rss_mb"] for r in runs[DGL])
    worst = common.ratio(max(peaks), dgl_rss)
    spread = common.ratio(max(peaks), min(peaks))
    lines.append(
        f"- each rank's peak RSS <= {TARGET_RANK_RSS}x DGL's ({dgl_rss:.0f} MB): largest "
        f"{max(peaks):.0f} MB = {worst:.2f}x -> {common.verdict(worst, TARGET_RANK_RSS)}; largest / smallest "
        f"rank <= {TARGET_RANK_SPREAD}x: {spread:.2f}x -> {common.verdict(spread, TARGET_RANK_SPREAD)}"
    )
    shares = [r["hidden_share"] for r in two if r["hidden_share"] is not None]
    if shares:
        share = common.median(shares)
        comm = common.median([r["comm_s"] for r in two])
        exposed = common.median([r["exposed_comm_s"] for r in two])
        verdict = "PASS" if share >= TARGET_HIDDEN else "MISS"
        lines.append(
            f"- halo exchange hidden on 2 ranks (staleness 0) >= {TARGET_HIDDEN:.0%}: {share:.1%} "
            f"(comm {comm:.3f} s/epoch, exposed {exposed:.3f} s/epoch, medians) -> {verdict}"
        )
    else:
        lines.append("- halo exchange hidden on 2 ranks: no comm time reported -> MISS")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200_000)
    ap.add_argument("--edges", type=int, default=4_000_000)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--classes", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--reorder",
        default="none",
        choices=("none", "rcm", "metis", "degree"),
        help="distgnn partition --reorder for distgnn's parts (DGL and PyG keep the order as generated)",
    )
    ap.add_argument(
        "--only", action="append", choices=tuple(CONTENDERS), help="run only these contenders (repeatable)"
    )
    ap.add_argument("--workdir", help="keep the graph and partitions here (default: a temp dir, removed)")
    ap.add_argument("--json-out", help="also write the raw runs as JSON here")
    args = ap.parse_args()
    if args.only and DGL not in args.only:
        args.only.append(DGL)  # every ratio is against DGL

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        graph = make_graph(work, args)
        ctx = {"args": args, "work": work, "graph": graph}
        names = [n for n in CONTENDERS if not args.only or n in args.only]
        if ONE_RANK in names:
            ctx["parts1"] = partition(graph, 1, work, args.reorder)
        if TWO_RANKS in names or TWO_RANKS_BF16 in names:
            ctx["parts2"] = partition(graph, 2, work, args.reorder)
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for rep in range(args.repeats):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                r = CONTENDERS[name](ctx)
                r["load1"] = common.load1()  # sampled as the run ends
                runs[name].append(r)
                if args.json_out:  # after every run: a later contender's failure keeps these
                    Path(args.json_out).write_text(json.dumps({"runs": runs}, indent=1))
                extra = ""
                if r.get("hidden_share") is not None:
                    extra = f", comm {r['comm_s']:.3f}s, exposed {r['exposed_comm_s']:.3f}s"
                print(
                    f"[{rep + 1}/{args.repeats}] {name}: {r['median_epoch_s']:.3f} s/epoch{extra}, "
                    f"load {r['load1']:.1f}",
                    flush=True,
                )
        with np.load(graph) as z:
            n_edges = int(z["edge_src"].shape[0])
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    loads = [r["load1"] for rs in runs.values() for r in rs]
    header = (
        f"{datetime.date.today()} | {common.machine_line()} | {isa.describe()} | "
        f"graph: {args.nodes:,} nodes, "
        f"{n_edges:,} directed edges (symmetric), {args.features} float32 features, "
        f"{args.classes} classes, seed {args.seed} "
        f"| GCN 3 layers, hidden {args.hidden}, dropout 0.5, Adam lr 0.01 wd 5e-4 | {args.epochs} epochs, "
        f"first {args.warmup} dropped, {args.repeats} runs each | 1-min load average after each run: "
        f"{min(loads):.1f}-{max(loads):.1f}"
    )
    print()
    print(report(runs, header))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"header": header, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
