"""Accuracy of the pipeline and hybrid strategies against exact graph-parallel training.

For each dataset and model, 5 seeds of: exact training (one process; equal to graph-parallel training on
any number of ranks), chunked pipeline training (``--strategy pipeline --chunks C``; one stage computes
exactly what 2 or 4 stages compute, see tests/dist/test_pipeline.py) and 2x2 hybrid training (per-part
chunks, 4 processes). Reports mean final-model test accuracy per strategy and the difference to exact.
Every run goes through ``distgnn train``'s parser and entry point (``train_partition``); one-process runs
stay in this interpreter, multi-process ones start ``distgnn train --nproc``.

    python benchmarks/pipeline/accuracy.py --datasets ../shared/datasets/cora.npz,synthetic --out acc.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = {
    "gcn4": ["--model", "gcn", "--layers", "4", "--hidden", "64"],
    "deepgcn8": ["--model", "deepgcn", "--layers", "8", "--hidden", "64"],
}
STRATEGIES = {  # name -> (parts of the partition directory, extra arguments)
    "exact": (1, []),
    "pipeline": (1, ["--strategy", "pipeline", "--stages", "1"]),
    "hybrid2x2": (2, ["--nproc", "4", "--strategy", "hybrid", "--stages", "2"]),
    # the convergence options, one at a time (pipeline, one stage: what any number of stages computes)
    "pipeline-shuffle": (1, ["--strategy", "pipeline", "--stages", "1", "--chunk-order", "shuffle"]),
    "pipeline-defer": (1, ["--strategy", "pipeline", "--stages", "1", "--history-grad", "defer"]),
    "pipeline-warmup": (1, ["--strategy", "pipeline", "--stages", "1", "--lr-warmup-epochs", "20"]),
    "pipeline-exact10": (1, ["--strategy", "pipeline", "--stages", "1", "--exact-epochs", "10"]),
    "pipeline-bf16": (1, ["--strategy", "pipeline", "--stages", "1", "--history-dtype", "bf16"]),
}


def distgnn(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "distgnn", *args], check=True, stdout=subprocess.DEVNULL)


def train_in_process(*args: str) -> None:
    """``distgnn train ARGS`` on one process without a new interpreter (the same parser and entry point)."""
    from distgnn.cli import build_parser
    from distgnn.comm.layout import ProcessLayout
    from distgnn.commands.options import config_from_args
    from distgnn.runtime.worker import train_partition

    parsed = build_parser().parse_args(["train", *args])
    cfg = config_from_args(parsed)
    train_partition(cfg, cfg.job.partitions, ProcessLayout.single("cpu"))


def final_test_acc(metrics: Path) -> float:
    return json.loads(metrics.read_text().splitlines()[-1])["test_acc"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="synthetic", help="comma-separated --dataset specs")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--out", type=Path, required=True, help="JSON results (rewritten after every run)")
    args = p.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.datasets.split(","):
            name = Path(spec).stem
            norm = ["--feature-norm", "row"] if spec.endswith(".npz") else []
            for parts in (1, 2):
                distgnn(
                    "partition", "--dataset", spec, "--parts", str(parts), "--out", f"{tmp}/{name}-{parts}"
                )
            for model in args.models.split(","):
                for strategy in args.strategies.split(","):
                    parts, extra = STRATEGIES[strategy]
                    run = distgnn if "--nproc" in extra else train_in_process
                    accs = []
                    for seed in range(args.seeds):
                        metrics = Path(tmp) / "m.jsonl"
                        chunks = ["--chunks", str(args.chunks)] if strategy != "exact" else []
                        head = ["train"] if run is distgnn else []
                        run(
                            *head, "--partitions", f"{tmp}/{name}-{parts}", *MODELS[model], *extra, *chunks,
                            *norm, "--epochs", str(args.epochs), "--eval-every", str(args.epochs),
                            "--seed", str(seed), "--metrics-out", str(metrics), "--no-progress",
                        )  # fmt: skip
                        accs.append(final_test_acc(metrics))
                    results[f"{name}/{model}/{strategy}"] = {"mean": statistics.mean(accs), "accs": accs}
                    print(name, model, strategy, f"{100 * statistics.mean(accs):.2f}%", accs, flush=True)
                    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
