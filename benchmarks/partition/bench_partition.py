"""Side-by-side partitioning benchmark: `distgnn partition` (METIS, KaMinPar) versus DGL's partition_graph.

Generates one seeded synthetic graph (default 2,000,000 nodes, 40,000,000 directed edges, 128 float32
features; not timed) and writes it as our npz, the input every contender reads. Then, in one run, it
partitions that file into ``--parts`` parts with each contender as a whole process, ``--repeats`` times in
rotating order (the machine is noisy: medians), recording per process the wall time and peak RSS
(``os.wait4``), and scoring each result's edge cut with the same function (directed edges whose endpoints
land in different parts). Prints a table with ratios against DGL and the targets' verdicts.

    .venv/bin/python benchmarks/partition/bench_partition.py            # full size (~10+ minutes)
    .venv/bin/python benchmarks/partition/bench_partition.py --small    # 200k nodes / 4M edges
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

HERE = Path(__file__).resolve().parent
FULL = {"nodes": 2_000_000, "edges": 40_000_000}
SMALL = {"nodes": 200_000, "edges": 4_000_000}
# Targets, as ratios of the DGL figure (lower is better).
TARGETS = {
    ("metis", "wall_s"): 0.75,
    ("metis", "max_rss_mb"): 0.5,
    ("metis", "edge_cut"): 1.0,
    ("kaminpar", "wall_s"): 0.4,
}


def make_graph(path: Path, nodes: int, edges: int, features: int, classes: int, seed: int) -> None:
    """Write the synthetic graph once; a sidecar records its parameters so a rerun can reuse it."""
    params = {"nodes": nodes, "edges": edges, "features": features, "classes": classes, "seed": seed}
    sidecar = path.with_suffix(".params.json")
    if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == params:
        print(f"reusing {path}", flush=True)
        return
    from distgnn.data.npz import save_npz
    from distgnn.data.synthetic import synthetic_graph

    print(f"generating {nodes:,} nodes / {edges:,} edges / {features} features -> {path}", flush=True)
    graph = synthetic_graph(
        num_nodes=nodes, num_edges=edges, num_features=features, num_classes=classes, seed=seed
    )
    save_npz(graph, path)
    del graph
    sidecar.write_text(json.dumps(params))


def distgnn_assignment(part_dir: Path) -> tuple[np.ndarray, dict]:
    """Part of each original node, from each part's ``orig_ids``; plus meta.json."""
    meta = json.loads((part_dir / "meta.json").read_text())
    ids = [np.load(part_dir / f"part-{p}" / "orig_ids.npy") for p in range(meta["num_parts"])]
    assignment = np.full(sum(a.shape[0] for a in ids), -1, dtype=np.int64)
    for p, a in enumerate(ids):
        assignment[a] = p
    if (assignment < 0).any():
        raise SystemExit(f"{part_dir}: some nodes are in no part")
    return assignment, meta


def reported_cut(meta: dict) -> int | None:
    """The edge cut distgnn's own quality report states, wherever it keeps it (for cross-checking)."""
    quality = meta.get("quality", {})
    for key in ("edge_cut", "cut_edges", "edgecut"):
        if key in quality:
            return int(quality[key])
    return None


def run_distgnn(
    method: str, graph: Path, parts: int, work: Path, edges: tuple[np.ndarray, np.ndarray]
) -> dict:
    out = work / f"distgnn-{method}"
    cmd = [
        str(common.MAIN_PYTHON), "-m", "distgnn", "partition",
        "--dataset", str(graph), "--parts", str(parts), "--out", str(out), "--method", method,
    ]  # fmt: skip
    res = common.check(common.run_measured(cmd), f"distgnn partition --method {method}")
    try:
        assignment, meta = distgnn_assignment(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cut = common.edge_cut(*edges, assignment)
    stated = reported_cut(meta)
    return {
        "wall_s": res.wall_s,
        "max_rss_mb": res.max_rss_mb,
        "edge_cut": cut,
        "reported_cut": stated,
        "part_sizes": np.bincount(assignment, minlength=parts).tolist(),
    }


def run_dgl(graph: Path, parts: int, work: Path, edges: tuple[np.ndarray, np.ndarray], plain: bool) -> dict:
    assign_path = work / "dgl-assignment.npy"
    cmd = [
        str(common.BASELINE_PYTHON), str(HERE / "dgl_partition.py"), "--graph", str(graph),
        "--parts", str(parts), "--out", str(work / "dgl-out"),
        "--assignment-out", str(assign_path), "--no-cut",
    ]  # fmt: skip
    if plain:
        cmd.append("--no-balance")
    try:
        res = common.check(common.run_measured(cmd), "DGL partition_graph")
        assignment = np.load(assign_path)
    finally:
        shutil.rmtree(work / "dgl-out", ignore_errors=True)
        assign_path.unlink(missing_ok=True)
    inner = common.last_json_line(res.stdout)
    return {
        "wall_s": res.wall_s,
        "max_rss_mb": res.max_rss_mb,
        "edge_cut": common.edge_cut(*edges, assignment),
        "partition_s": inner["partition_s"],
        "part_sizes": np.bincount(assignment, minlength=parts).tolist(),
    }


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    out = {}
    for name, rs in runs.items():
        out[name] = {
            "wall_s": common.median([r["wall_s"] for r in rs]),
            "max_rss_mb": common.median([r["max_rss_mb"] for r in rs]),
            "edge_cut": common.median([r["edge_cut"] for r in rs]),
            "walls": [round(r["wall_s"], 1) for r in rs],
            "max_part_over_mean": max(
                max(r["part_sizes"]) / (sum(r["part_sizes"]) / len(r["part_sizes"])) for r in rs
            ),
        }
    return out


def table(summary: dict[str, dict], num_edges: int) -> str:
    base = summary["dgl"]
    lines = [
        "| contender | wall s (median) | peak RSS MB (median) | edge cut (% of edges) | max part / mean "
        "| wall vs DGL | RSS vs DGL | cut vs DGL | runs (wall s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['wall_s']:.1f} | {s['max_rss_mb']:.0f} | {s['edge_cut']:,.0f} "
            f"({100 * s['edge_cut'] / num_edges:.2f}%) | {s['max_part_over_mean']:.3f} "
            f"| {common.ratio(s['wall_s'], base['wall_s']):.2f}x "
            f"| {common.ratio(s['max_rss_mb'], base['max_rss_mb']):.2f}x "
            f"| {common.ratio(s['edge_cut'], base['edge_cut']):.3f}x | {s['walls']} |"
        )
    return "\n".join(lines)


def verdicts(summary: dict[str, dict]) -> str:
    lines = []
    for (name, metric), limit in TARGETS.items():
        r = common.ratio(summary[name][metric], summary["dgl"][metric])
        lines.append(f"- {name} {metric} <= {limit}x DGL: {r:.3f}x -> {common.verdict(r, limit)}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="200k nodes / 4M edges (a quick check)")
    ap.add_argument("--nodes", type=int, help="override the node count")
    ap.add_argument("--edges", type=int, help="override the directed edge count")
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--classes", type=int, default=16)
    ap.add_argument("--parts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--dgl-plain",
        action="store_true",
        help="also run DGL with partition_graph's bare defaults (node balance only), as 'dgl-plain'",
    )
    ap.add_argument("--workdir", help="where the graph npz and outputs go (default: a temp dir under /tmp)")
    ap.add_argument("--keep-graph", action="store_true", help="keep the generated npz for a rerun")
    ap.add_argument("--json-out", help="also write the raw runs and medians as JSON here")
    args = ap.parse_args()

    size = SMALL if args.small else FULL
    nodes, edges = args.nodes or size["nodes"], args.edges or size["edges"]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-partition-"))
    work.mkdir(parents=True, exist_ok=True)
    graph = work / f"synthetic-{nodes}-{edges}-{args.features}.npz"
    try:
        make_graph(graph, nodes, edges, args.features, args.classes, args.seed)
        with np.load(graph) as z:
            edge_arrays = (z["edge_src"], z["edge_dst"])
        num_edges = int(edge_arrays[0].shape[0])

        contenders = ["metis", "kaminpar", "dgl"] + (["dgl-plain"] if args.dgl_plain else [])
        runs: dict[str, list[dict]] = {c: [] for c in contenders}
        for rep in range(args.repeats):
            order = contenders[rep % len(contenders) :] + contenders[: rep % len(contenders)]
            for name in order:
                if name in ("metis", "kaminpar"):
                    r = run_distgnn(name, graph, args.parts, work, edge_arrays)
                else:
                    r = run_dgl(graph, args.parts, work, edge_arrays, plain=name == "dgl-plain")
                r["load1"] = common.load1()  # sampled as the run ends
                runs[name].append(r)
                print(
                    f"[{rep + 1}/{args.repeats}] {name}: wall {r['wall_s']:.1f}s, "
                    f"peak RSS {r['max_rss_mb']:.0f} MB, "
                    f"cut {r['edge_cut']:,}, load {r['load1']:.1f}"
                    + (f" (reported {r['reported_cut']:,})" if r.get("reported_cut") else ""),
                    flush=True,
                )
    finally:
        if not args.keep_graph and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    summary = summarise(runs)
    loads = [r["load1"] for rs in runs.values() for r in rs]
    header = (
        f"{datetime.date.today()} | {common.machine_line()} | graph: {nodes:,} nodes, "
        f"{num_edges:,} directed edges, {args.features} float32 features, seed {args.seed} "
        f"| {args.parts} parts | {args.repeats} repeats, medians | 1-min load average after each run: "
        f"{min(loads):.1f}-{max(loads):.1f}"
    )
    print()
    print(header)
    print(table(summary, num_edges))
    print(verdicts(summary))
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"header": header, "runs": runs, "summary": summary}, indent=1)
        )


if __name__ == "__main__":
    main()
