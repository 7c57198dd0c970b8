"""The built-in models trained with their papers' recipes on Cora and CiteSeer, against the published numbers.

Each run trains on one process (graph strategy, one part; distributed runs compute the same function,
see tests/dist) and reports the test accuracy at the best validation epoch, chosen (and watched by
``--patience``) as in each paper's code: the lowest validation loss (GCNII; GCN approximately: Kipf's code
stops once the loss exceeds its 10-epoch mean and tests the final model), or the last epoch at least as
good as every earlier one in both validation accuracy and loss (GAT, ``val_acc_and_loss``).
Ten seeds per recipe and dataset by default: the table gives the mean, the standard deviation and the
range, next to the paper's figure.

    python benchmarks/models/recipes.py --datasets-dir ../shared/datasets --out runs/recipes.json
    python benchmarks/models/recipes.py --recipes gat --datasets cora --seeds 3 --jobs 2
    python benchmarks/models/recipes.py --recipes gcn --datasets cora citeseer synthetic \
        --precision fp32 bf16-mixed      # what --precision bf16-mixed costs, seed by seed

``synthetic`` is distgnn's default synthetic graph (20,000 nodes, 200,000 edges, 64 features, 8 classes;
no published figure; its signed features are not row-normalised). With several ``--precision`` values
every seed runs under each, and a second table gives the paired difference in test accuracy (same seed,
same recipe).

Recipes (row-normalised features and the public split everywhere):

- ``gcn``: Kipf & Welling (2017): 2 layers, 16 hidden, dropout 0.5, Adam 0.01, weight decay 5e-4 on the
  first layer, up to 200 epochs with a 10-epoch window on the validation loss. Published: Cora 81.5,
  CiteSeer 70.3 (Table 2).
- ``gat``: Velickovic et al. (2018): 2 layers, 8 heads x 8 features, one output head, ELU, dropout 0.6 on
  inputs and attention coefficients, Adam 0.005, weight decay 5e-4, patience 100 on validation loss and
  accuracy (of 1000 epochs). Published: Cora 83.0 +- 0.7, CiteSeer 72.5 +- 0.7 (Table 2).
- ``gcnii-8`` / ``gcnii-16``: Chen et al. (2020): GCNII at 8 and 16 layers, alpha 0.1, Adam 0.01, weight
  decay 0.01 on the convolutions and 5e-4 on the dense layers, patience 100 (of 1500 epochs); Cora: 64
  hidden, lambda 0.5, dropout 0.6; CiteSeer: 256 hidden, lambda 0.6, dropout 0.7 (its Section 6.1).
  Published (Table 3, accuracy by depth): Cora 84.2 (8) and 84.6 (16), CiteSeer 70.6 (8) and 72.9 (16).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DATASETS = ("cora", "citeseer", "synthetic")
PRECISIONS = ("fp32", "bf16-mixed")
KIPF = dict(model="gcn", layers=2, hidden=16, dropout=0.5, lr=0.01, weight_decay=5e-4,
            weight_decay_scope="first", epochs=200, patience=10, best_by="val_loss")  # fmt: skip
GAT = dict(model="gat", layers=2, hidden=8, heads=8, dropout=0.6, attention_dropout=0.6, lr=0.005,
           weight_decay=5e-4, epochs=1000, patience=100, best_by="val_acc_and_loss")  # fmt: skip
GCNII = dict(model="deepgcn", alpha=0.1, lr=0.01, weight_decay=5e-4, conv_weight_decay=0.01, epochs=1500,
             patience=100, best_by="val_loss")  # fmt: skip
GCNII_DATA = {
    "cora": dict(hidden=64, lam=0.5, dropout=0.6),
    "citeseer": dict(hidden=256, lam=0.6, dropout=0.7),
}
# recipe -> (options, per-dataset options, published test accuracy per dataset)
RECIPES: dict[str, tuple[dict, dict, dict]] = {
    "gcn": (KIPF, {}, {"cora": 81.5, "citeseer": 70.3}),
    "gat": (GAT, {}, {"cora": 83.0, "citeseer": 72.5}),
    "gcnii-8": (GCNII | dict(layers=8), GCNII_DATA, {"cora": 84.2, "citeseer": 70.6}),
    "gcnii-16": (GCNII | dict(layers=16), GCNII_DATA, {"cora": 84.6, "citeseer": 72.9}),
}


def run_one(part_dir: str, options: dict) -> dict:
    """Train one recipe/seed on one thread; the test accuracy at the best validation epoch."""
    import torch

    import distgnn

    torch.set_num_threads(1)
    cfg = distgnn.TrainConfig.from_flat(partitions=part_dir, eval_every=1, progress=False, **options)
    start = time.perf_counter()
    s = distgnn.fit(cfg).summary  # the best epoch by the recipe's --best-by
    return {
        "test_acc": 100 * s["test_acc_at_best_val"], "val_acc": 100 * s["best_val_acc"],
        "val_loss": s["best_val_loss"], "best_epoch": s["best_val_epoch"], "epochs": s["epochs"],
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip


def partition(datasets_dir: Path, name: str, root: Path) -> str:
    from distgnn.data.npz import load_npz
    from distgnn.data.synthetic import synthetic_graph
    from distgnn.partitioning import partition_graph

    path = datasets_dir / f"{name}.npz"
    if name == "synthetic":
        graph = synthetic_graph()
    elif not path.is_file():
        sys.exit(f"recipes: {path} not found; pass --datasets-dir (the folder with {name}.npz)")
    else:
        graph = load_npz(path)
    out = root / name
    partition_graph(graph, 1, str(out), progress=False)
    return str(out)


def summarise(rows: list[dict], published: float | None) -> dict:
    accs = [r["test_acc"] for r in rows]
    mean = statistics.fmean(accs)
    return {
        "mean": mean, "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "min": min(accs),
        "max": max(accs), "published": published, "gap": None if published is None else mean - published,
        "seeds": len(accs),
        "epochs": statistics.fmean(r["epochs"] for r in rows),
        "wall_s": statistics.fmean(r["wall_s"] for r in rows), "runs": rows,
    }  # fmt: skip


def table(results: dict) -> str:
    lines = [
        "| recipe | dataset | test acc (mean +- std) | range | published | gap | seeds | epochs | s/run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in results.items():
        recipe, dataset, precision = key.split("/")
        published = "-" if s["published"] is None else f"{s['published']:.1f}"
        gap = "-" if s["gap"] is None else f"{s['gap']:+.2f}"
        lines.append(
            f"| {recipe} ({precision}) | {dataset} | {s['mean']:.2f} +- {s['std']:.2f} | "
            f"{s['min']:.1f}-{s['max']:.1f} | {published} | {gap} | {s['seeds']} | {s['epochs']:.0f} | "
            f"{s['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def precision_table(results: dict, precisions: list[str]) -> str:
    """Each other precision against the first, seed by seed: the mean and spread of the differences."""
    base, others = precisions[0], precisions[1:]
    lines = [
        f"| recipe | dataset | precision | test acc | {base} | difference (mean +- std) | largest |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in results.items():
        recipe, dataset, precision = key.split("/")
        if precision not in others:
            continue
        ref = results[f"{recipe}/{dataset}/{base}"]
        diffs = [a["test_acc"] - b["test_acc"] for a, b in zip(s["runs"], ref["runs"], strict=True)]
        spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        lines.append(
            f"| {recipe} | {dataset} | {precision} | {s['mean']:.2f} | {ref['mean']:.2f} | "
            f"{statistics.fmean(diffs):+.2f} +- {spread:.2f} | {max(diffs, key=abs):+.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--datasets-dir",
        type=Path,
        default=Path("../shared/datasets"),
        help="folder holding cora.npz and citeseer.npz (default: ../shared/datasets)",
    )
    ap.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    ap.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=["fp32"],
        help="train every run under each (default fp32); the first is the reference of the paired table",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="runs at once, one thread each (default: the CPU count)",
    )
    ap.add_argument("--out", type=Path, help="write the summary and every run as JSON here")
    args = ap.parse_args(argv)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(args.jobs) as pool:
        dirs = {d: partition(args.datasets_dir, d, Path(tmp)) for d in args.datasets}
        futures = {}
        runs = [(r, d, p) for r in args.recipes for d in args.datasets for p in args.precision]
        for recipe, d, precision in runs:
            options, per_data, _ = RECIPES[recipe]
            for seed in range(args.seeds):
                # row-normalised features as in the papers; the synthetic graph's are signed, kept as they are
                norm = "none" if d == "synthetic" else "row"
                opts = options | per_data.get(d, {}) | dict(seed=seed, precision=precision, feature_norm=norm)
                futures[(recipe, d, precision, seed)] = pool.submit(run_one, dirs[d], opts)
        results = {}
        for recipe, d, precision in runs:
            rows = [futures[(recipe, d, precision, s)].result() | {"seed": s} for s in range(args.seeds)]
            key = f"{recipe}/{d}/{precision}"
            results[key] = s = summarise(rows, RECIPES[recipe][2].get(d))
            print(f"{key}: {s['mean']:.2f} +- {s['std']:.2f} (published {s['published']})",
                  file=sys.stderr, flush=True)  # fmt: skip
    print(table(results))
    if len(args.precision) > 1:
        print()
        print(precision_table(results, args.precision))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=lambda v: None if math.isnan(v) else v))


if __name__ == "__main__":
    main()
