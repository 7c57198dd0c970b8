"""Graph-parallel vs pipeline vs hybrid training of a deep GCN, side by side, interleaved.

16-layer deepgcn (hidden 64) on the 200,000-node / 4,000,000-edge synthetic graph, 1 thread per process:
graph (2 ranks), pipeline (2 and 4 stages), hybrid (2 stages x 2 parts), ``--chunks`` chunks (8). Per
configuration, median over the repeats of the median epoch time (epochs after the first two), and from
the last run: bytes per epoch, exposed communication, bubble, history bytes, final test accuracy, and the
peak RSS of the largest process (``RUSAGE_CHILDREN`` of a fresh parent per run). Configurations
alternate within each repeat (forward, then reversed).

    python benchmarks/pipeline/bench_pipeline.py --repeats 3 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

GRAPH = "synthetic:nodes=200000,edges=4000000,features=128,classes=16,seed=0"
MODEL = ["--model", "deepgcn", "--layers", "16", "--hidden", "64"]
CONFIGS = {  # name -> (parts, arguments)
    "graph 2 ranks": (2, ["--nproc", "2"]),
    "pipeline 2 stages": (1, ["--nproc", "2", "--strategy", "pipeline", "--stages", "2"]),
    "pipeline 4 stages": (1, ["--nproc", "4", "--strategy", "pipeline", "--stages", "4"]),
    "hybrid 2x2": (2, ["--nproc", "4", "--strategy", "hybrid", "--stages", "2"]),
}


# Runs a command and prints the peak RSS (MB) of its largest process: RUSAGE_CHILDREN of a fresh parent.
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def run(args: list[str], env: dict) -> float:
    """``distgnn ARGS``; returns the peak RSS in MB of its largest process (the largest rank)."""
    cmd = [sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "distgnn", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--graph", default=GRAPH)
    p.add_argument(
        "--only",
        action="append",
        default=[],
        choices=list(CONFIGS),
        help="a configuration to run (repeatable; default: all)",
    )
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    names = [n for n in CONFIGS if not args.only or n in args.only]
    times: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for parts in sorted({CONFIGS[n][0] for n in names}):
            run(
                ["partition", "--dataset", args.graph, "--parts", str(parts), "--out", f"{tmp}/p{parts}"], env
            )
        for rep in range(args.repeats):
            for name in names if rep % 2 == 0 else reversed(names):
                parts, extra = CONFIGS[name]
                metrics = Path(tmp) / "m.jsonl"
                chunks = ["--chunks", str(args.chunks)] if "--strategy" in extra else []
                train = ["train", "--partitions", f"{tmp}/p{parts}", *extra, *chunks, *MODEL]
                train += ["--epochs", str(args.epochs), "--eval-every", str(args.epochs)]
                rss = run([*train, "--metrics-out", str(metrics), "--no-progress"], env)
                recs = [json.loads(line) for line in metrics.read_text().splitlines()]
                times[name].append(statistics.median(r["epoch_s"] for r in recs[2:]))
                last[name] = recs[-1] | {"peak_rss_mb": rss}
                print(name, f"{times[name][-1]:.3f} s/epoch", json.dumps(last[name]), flush=True)
    base = statistics.median(times[names[0]])
    print(
        "\n| configuration | epoch s (median) | vs first | bytes/epoch | exposed comm s | bubble s | "
        "history MB | peak RSS MB (largest rank) | test acc | runs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in names:
        r, t = last[n], statistics.median(times[n])
        print(
            f"| {n} | {t:.3f} | {t / base:.2f}x | {r['comm_bytes']:,} | {r['exposed_comm_s']:.3f} | "
            f"{r['bubble_s']:.3f} | {r['history_bytes'] / 2**20:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{100 * r['test_acc']:.2f}% | "
            f"{[round(v, 3) for v in times[n]]} |"
        )


if __name__ == "__main__":
    main()
