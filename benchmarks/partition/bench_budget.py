"""`distgnn partition` in memory against out of core (`--memory-budget`), on one graph, side by side.

Each contender is a whole `distgnn partition` process reading the same source (an `.npz` or a graph
directory) and writing a full partition directory; ``--repeats`` rounds in rotating order, medians of wall
time and peak RSS (``common.run_measured``). The edge cut is the one meta.json states (the same function
for every contender). Prints a markdown table with bytes per input edge and the ratios the targets ask for:
the out-of-core cut within 1.05x of in-memory METIS's, its peak under the budget plus 0.5 GB.

    .venv/bin/python benchmarks/partition/bench_budget.py --graph G.npz --parts 8 --budget 2GB
    .venv/bin/python benchmarks/partition/bench_budget.py --graph G.npz --budget 2GB --no-in-memory
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

from distgnn.data.shape import source_shape  # noqa: E402
from distgnn.partitioning.budget import parse_size  # noqa: E402

CUT_LIMIT = 1.05  # out-of-core cut against in-memory METIS's
RSS_SLACK_MB = 500  # peak may exceed the budget by this much


def run_one(graph: str, parts: int, out: Path, method: str, budget: str | None) -> dict:
    cmd = [
        str(common.MAIN_PYTHON), "-m", "distgnn", "partition", "--dataset", graph, "--parts", str(parts),
        "--out", str(out), "--method", method, "--no-progress",
    ]  # fmt: skip
    if budget:
        cmd += ["--memory-budget", budget]
    res = common.check(common.run_measured(cmd), " ".join(cmd))
    meta = json.loads((out / "meta.json").read_text())
    shutil.rmtree(out)
    return {
        "wall_s": res.wall_s,
        "max_rss_mb": res.max_rss_mb,
        "edge_cut": meta["quality"]["edge_cut"],
        "method": meta["method"],
        "path": meta.get("memory", {}).get("path", "in-memory"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", required=True, help="an .npz or a graph directory")
    ap.add_argument("--parts", type=int, default=8)
    ap.add_argument("--budget", required=True, help="the out-of-core contender's --memory-budget")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-in-memory", action="store_true", help="only the out-of-core contender")
    ap.add_argument("--workdir", help="where outputs go (default: a temp dir beside the graph)")
    args = ap.parse_args()

    shape = source_shape(args.graph)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-budget-", dir=Path(args.graph).parent))
    contenders = {} if args.no_in_memory else {"in memory, METIS": ("metis", "1TB")}
    if not args.no_in_memory:
        contenders["in memory, KaMinPar"] = ("kaminpar", "1TB")
    contenders[f"out of core, --memory-budget {args.budget}"] = ("metis", args.budget)
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            method, budget = contenders[name]
            res = run_one(args.graph, args.parts, work / "out", method, budget)
            runs[name].append(res)
            print(f"round {r}: {name}: {res}", flush=True)

    print(
        f"\n{shape.num_nodes:,} nodes, {shape.num_edges:,} input edges, {shape.feat_dim} features, "
        f"{args.parts} parts; medians of {args.repeats}\n"
    )
    print("| contender | ran | wall s | peak RSS MB | bytes / input edge | edge cut | walls |")
    print("|---|---|---:|---:|---:|---:|---|")
    med = {}
    for name, rs in runs.items():
        wall = common.median([x["wall_s"] for x in rs])
        rss = common.median([x["max_rss_mb"] for x in rs])
        cut = common.median([x["edge_cut"] for x in rs])
        med[name] = (wall, rss, cut)
        ran = f"{rs[0]['method']}, {rs[0]['path']}"
        per_edge = rss * 2**20 / shape.num_edges
        walls = [round(x["wall_s"], 1) for x in rs]
        print(f"| {name} | {ran} | {wall:.1f} | {rss:.0f} | {per_edge:.1f} | {cut:,.0f} | {walls} |")
    bounded = med[names[-1]]
    budget_mb = parse_size(args.budget) / 2**20
    print(f"\n- peak {bounded[1]:.0f} MB <= budget {budget_mb:.0f} MB + {RSS_SLACK_MB}: "
          f"{'PASS' if bounded[1] <= budget_mb + RSS_SLACK_MB else 'FAIL'}")  # fmt: skip
    if not args.no_in_memory:
        ratio = bounded[2] / med[names[0]][2]
        verdict = "PASS" if ratio <= CUT_LIMIT else "FAIL"
        print(f"- cut vs in-memory METIS {ratio:.3f}x <= {CUT_LIMIT}: {verdict}")


if __name__ == "__main__":
    main()
