"""`distgnn partition`: load a graph, partition it offline, write a partition directory."""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
import time
from pathlib import Path

from distgnn.errors import DistGNNError
from distgnn.partitioning.budget import (
    DEFAULT_SHARE,
    MemoryPlan,
    available_memory,
    format_size,
    parse_size,
    plan_memory,
)
from distgnn.partitioning.build import REORDERS
from distgnn.partitioning.methods import METHODS, OBJECTIVES

EPILOG = """\
examples:
  distgnn partition --dataset synthetic --parts 2 --out runs/demo-parts
  distgnn partition --dataset data/cora.npz --parts 4 --out runs/cora-4
  distgnn partition --dataset synthetic:nodes=200000,edges=4000000,features=128 --parts 8 \\
      --method kaminpar --out runs/synth-8
  distgnn partition --dataset data/cora.npz --parts 4 --out runs/cora-4 --objective vol --seed 1 --force
  distgnn partition --dataset data/big-graph/ --parts 64 --out runs/big-64 --memory-budget 12GB

The directory holds meta.json and part-<p>/<array>.npy files; inspect it with `distgnn info DIR`.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "partition",
        help="partition a graph offline into a partition directory",
        description=(
            "Split a graph into P parts (one per training process): assign nodes to parts, relabel them "
            "so each part owns a contiguous ID range, build each part's local CSR, halo and send lists, "
            "and write them atomically with checksums."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="SRC",
        help="graph source: a path (.npz, graph directory with graph.json, OGB dir, edge list) or "
        "synthetic[:key=value,...]",
    )
    parser.add_argument(
        "--parts", required=True, type=int, metavar="P", help="number of parts (training processes)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="partition directory to create")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="metis",
        help="metis (default; pymetis), kaminpar (needs the kaminpar extra), random or contiguous baselines",
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="cut",
        help="what METIS minimises: edge cut (default) or total communication volume (metis only)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for metis, kaminpar and random (default 0)")
    parser.add_argument(
        "--reorder",
        choices=REORDERS,
        default="none",
        help="order nodes inside each part for gather locality: rcm (reverse Cuthill-McKee, needs scipy), "
        "metis (METIS sub-parts of ~4096 nodes), degree (hubs first), or none (default: original order)",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="memory the command may use, e.g. 12GB or 800MB (default: half the available memory, "
        "printed). A graph whose in-memory partitioning would need more is normalised on disk and "
        "partitioned out of core (KaMinPar on its compressed graph); a budget even that cannot meet is "
        "refused before any work",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace DIR if it already exists and is not empty"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars or status lines on stderr"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distgnn.partitioning.format import check_target
    from distgnn.partitioning.methods import check_options

    progress = not args.no_progress
    # Cheap checks first: a bad request should not wait for a large graph to load.
    check_options(args.parts, args.method, args.objective, args.seed)
    check_target(Path(args.out), args.force)
    plan = memory_plan(args)
    if progress:
        print(f"memory budget {budget_words(plan, args)}: {plan.why}", file=sys.stderr, flush=True)

    try:
        return partition(args, plan, progress)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = Path(err.filename).parent if err.filename else Path(args.out).absolute().parent
        need = f"; out of core it needs about {format_size(plan.disk_need)} there" if plan.bounded else ""
        raise DistGNNError(f"no space left on the device of {where}{need}") from None


def partition(args: argparse.Namespace, plan: MemoryPlan, progress: bool) -> int:
    """Load, partition, write and print the summary; scratch and partial files go on any failure."""
    from distgnn.data import load_graph
    from distgnn.data.assemble import in_memory_csr
    from distgnn.data.csr_on_disk import CsrOnDisk
    from distgnn.partitioning import partition_graph
    from distgnn.partitioning.bounded import features_on_disk
    from distgnn.partitioning.format import scratch_beside

    t0 = time.perf_counter()
    with scratch_beside(args.out) if plan.bounded else contextlib.nullcontext() as scratch:
        csr = CsrOnDisk(scratch / "csr", plan.csr_budget, progress) if plan.bounded else in_memory_csr
        graph = load_graph(args.dataset, progress=progress, csr=csr)
        if plan.bounded:
            graph = features_on_disk(graph, scratch)  # the in-memory copy goes before KaMinPar runs
        load_s = time.perf_counter() - t0
        meta = partition_graph(
            graph,
            args.parts,
            args.out,
            method=args.method,
            objective=args.objective,
            seed=args.seed,
            reorder=args.reorder,
            overwrite=args.force,
            progress=progress,
            memory=plan,
            scratch=scratch,
            symmetric=True,  # load_graph symmetrises, drops self-loops and merges repeats
        )
        del graph  # its memory-mapped CSR lives in scratch
    total_s = time.perf_counter() - t0
    print(summary(meta, args.out, load_s, total_s))
    return 0


def memory_plan(args: argparse.Namespace) -> MemoryPlan:
    """The budget (given, or the default share of the available memory) and the path that fits it."""
    from distgnn.data.shape import source_shape
    from distgnn.partitioning.methods import import_kaminpar

    budget = parse_size(args.memory_budget) if args.memory_budget else default_budget()
    try:
        shape = source_shape(args.dataset)
    except DistGNNError:
        shape = None  # the loader says what is wrong with it
    plan = plan_memory(shape, args.method, args.parts, budget)
    if plan.bounded and args.objective == "vol":
        raise DistGNNError(
            f"--objective vol needs METIS in memory (about {format_size(plan.in_memory_need)}, over the "
            f"{format_size(budget)} budget); --objective cut partitions it out of core"
        )
    if plan.bounded and plan.method == "kaminpar":
        import_kaminpar()  # missing: one line now, not after the CSR is built
    return plan


def default_budget() -> int:
    return int(DEFAULT_SHARE * available_memory())


def budget_words(plan: MemoryPlan, args: argparse.Namespace) -> str:
    size = format_size(plan.budget)
    if args.memory_budget:
        return size
    return f"{size} ({DEFAULT_SHARE:.0%} of the available memory; --memory-budget sets it)"


def summary(meta: dict, out: str, load_s: float, total_s: float) -> str:
    """A few lines: where it went, how long each phase took, how good the split is, peak memory."""
    from distgnn.partitioning.budget import peak_rss

    q = meta["quality"]
    t = meta["timings_s"]
    how = meta["method"] + (f", objective {meta['objective']}" if meta["objective"] else "")
    how += f", seed {meta['seed']}" if meta["seed"] is not None else ""

    def bal(key: str) -> str:
        return "n/a" if q[key] is None else f"{q[key]:.3f}"

    peak = peak_rss()
    mem = meta.get("memory")
    where = "memory: peak RSS " + format_size(peak)
    if mem is not None:
        where += f" under a {format_size(mem['budget_bytes'])} budget ({mem['path']})"

    return "\n".join(
        [
            f"wrote {meta['num_parts']} parts of {meta['dataset']} ({meta['num_nodes']:,} nodes, "
            f"{meta['num_edges']:,} edges) to {out} ({how})",
            f"  time: load {load_s:.2f}s, partition {t['partition']:.2f}s, "
            f"build+write {t['build_write']:.2f}s, total {total_s:.2f}s",
            f"  edge cut {q['edge_cut']:,} ({100 * q['edge_cut_fraction']:.2f}% of edges), "
            f"halo volume {q['halo_volume']:,} rows, replication factor {q['replication_factor']:.3f}",
            f"  balance (max/mean): nodes {bal('node_balance')}, edges {bal('edge_balance')}, "
            f"train nodes {bal('train_balance')}",
            f"  {where}",
        ]
    )
