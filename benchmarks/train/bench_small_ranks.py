"""Per-epoch cost of graph-parallel training on a small graph over several ranks (the accuracy tests' setup).

Partitions the graph (METIS, not timed) into each ``--ranks`` count, starts that many gloo ranks on this
machine (one thread each, a FileStore, as tests/dist/helpers.py does) and trains the 2-layer GCN of the
GCN paper (hidden 16, dropout 0.5, Adam 0.01, weight decay 5e-4 on the first layer, row-normalised
features, evaluation only at the end, ``--kernel cpu``) ``--runs`` times, seeds 0, 1, ... in one process
group. Per run it takes the wall time of ``train_partition`` on rank 0 (set-up of the strategy, 200
epochs, the final evaluation: what each accuracy-test case pays once the group is up) and the median
``epoch_s`` of the run's epochs; it prints the medians over runs and the final loss of each run (equal
losses across code versions show the results did not change).

``--count`` (with ``--runs 2`` or more) also counts, on rank 0, the collective calls and host reads of
the first run (wrapping ``torch.distributed``'s collectives and the host reads tests/dist/sync_audit.py
watches) and the Python function calls of the second (cProfile), per epoch; their timings are then
inflated, so time without it. ``--collectives`` first times, in the same group, each collective an
epoch makes alone (wall and process CPU per call, Cora-sized payloads).

    .venv/bin/python benchmarks/train/bench_small_ranks.py --dataset cora.npz --ranks 2 4 --runs 5
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch.multiprocessing as mp

KIPF = dict(
    model="gcn", layers=2, hidden=16, dropout=0.5, lr=0.01, weight_decay=5e-4, weight_decay_scope="first",
    feature_norm="row", eval_every=200, kernel="cpu", progress=False,
)  # fmt: skip
COLLECTIVES = ("all_reduce", "all_to_all_single", "broadcast", "barrier", "all_gather", "all_gather_object")


def _count_calls(counts: collections.Counter) -> None:
    """Wrap the collectives of torch.distributed so that each call adds one to ``counts[name]``."""
    import torch.distributed as dist

    for name in COLLECTIVES:
        fn = getattr(dist, name)

        def wrapped(*args, _fn=fn, _name=name, **kwargs):
            counts[_name] += 1
            return _fn(*args, **kwargs)

        setattr(dist, name, wrapped)


def collective_costs(world: int, rank: int, calls: int = 300) -> dict[str, tuple[float, float]]:
    """Per call of each collective an epoch makes, on this group: (median wall us, process CPU us per
    call, all threads: gloo's own included). Payloads as in a 2-layer GCN epoch on Cora: 120 rows x 16
    float32 to every peer (a halo exchange) and the 23,063 float32 gradients (the gradient sum)."""
    import torch
    import torch.distributed as dist

    rows = torch.randn(120 * world, 16)
    got, splits = torch.empty_like(rows), [120] * world
    grads = torch.randn(23063)

    def exchange() -> None:
        dist.all_to_all_single(got, rows, splits, splits, async_op=True).wait()

    out = {}
    for name, call in [
        ("halo all_to_all_single (launch + wait)", exchange),
        ("gradient all_reduce", lambda: dist.all_reduce(grads)),
        ("barrier", dist.barrier),
    ]:
        for _ in range(20):
            call()
        dist.barrier()
        walls, c0 = [], time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            call()
            walls.append(time.perf_counter() - t0)
        out[name] = (1e6 * statistics.median(walls), 1e6 * (time.process_time() - c0) / calls)
    return out


def _rank(rank: int, world: int, store_path: str, part_dir: str, args: argparse.Namespace, out) -> None:
    import torch
    import torch.distributed as dist

    from distgnn.comm.layout import ProcessLayout
    from distgnn.config import TrainConfig
    from distgnn.runtime.worker import train_partition

    torch.set_num_threads(1)
    layout = ProcessLayout.init(
        rank=rank, world_size=world, backend="gloo", store=dist.FileStore(store_path, world), device="cpu"
    )
    costs = collective_costs(world, rank) if args.collectives else None
    counts: collections.Counter = collections.Counter()
    if args.count:
        _count_calls(counts)
    runs = []
    for seed in range(args.runs + 1):  # run 0 warms up (imports, extension, allocator)
        cfg = TrainConfig.from_flat(**KIPF, epochs=args.epochs, seed=seed, halo_staleness=args.staleness)
        layout.barrier()
        counts.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        if args.count and seed == 1:
            sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "dist"))
            from sync_audit import SyncAudit

            with SyncAudit().active() as audit:
                result, _ = train_partition(cfg, part_dir, layout)
            reads = collections.Counter(f"{w} {f}:{fn}" for w, f, fn in audit.calls)
        elif args.count and seed == 2:  # Python function calls (cProfile's count; no dispatch mode)
            profile = cProfile.Profile()
            profile.enable()
            result, _ = train_partition(cfg, part_dir, layout)
            profile.disable()
            reads = {"python calls": pstats.Stats(profile).total_calls}
        else:
            result, _ = train_partition(cfg, part_dir, layout)
            reads = None
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        epoch_s = [h["epoch_s"] for h in result.history]
        if seed:
            runs.append(
                {
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "sum_epoch_s": sum(epoch_s),
                    "epoch_s": statistics.median(epoch_s),
                    "loss": result.history[-1]["loss"],
                    "test_acc": result.summary["final_test_acc"],
                    "calls": dict(counts) if args.count and seed == 1 else None,
                    "reads": dict(reads) if reads else None,  # seed 2: {"python calls": n}
                }
            )
    layout.destroy()
    if rank == 0:
        out.put((runs, costs))


def run_world(world: int, part_dir: str, args: argparse.Namespace) -> tuple[list[dict], dict | None]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="bench-small-") as tmp:
        procs = [
            ctx.Process(target=_rank, args=(r, world, os.path.join(tmp, "store"), part_dir, args, out))
            for r in range(world)
        ]
        for p in procs:
            p.start()
        result = out.get(timeout=args.timeout)
        for p in procs:
            p.join(args.timeout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="a graph .npz (e.g. the shared cora.npz)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--runs", type=int, default=5, help="timed runs (seeds) per world size, after a warm-up")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--staleness", type=int, default=0)
    ap.add_argument("--count", action="store_true", help="count rank 0's collectives and host reads")
    ap.add_argument("--collectives", action="store_true", help="time each collective of an epoch alone")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", help="append one JSON line per world size to this file")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    from distgnn.data.npz import load_npz
    from distgnn.partitioning import partition_graph

    graph = load_npz(args.dataset)
    with tempfile.TemporaryDirectory(prefix="bench-small-parts-") as tmp:
        for world in args.ranks:
            part_dir = os.path.join(tmp, f"p{world}")
            partition_graph(graph, world, part_dir, method="metis", progress=False)
            runs, costs = run_world(world, part_dir, args)
            wall = statistics.median(r["wall_s"] for r in runs)
            epoch = statistics.median(r["epoch_s"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            outside = statistics.median(r["wall_s"] - r["sum_epoch_s"] for r in runs)
            losses = " ".join(repr(r["loss"]) for r in runs)
            print(
                f"P={world}: per run {wall:.3f} s ({1000 * wall / args.epochs:.2f} ms/epoch), "
                f"median epoch_s {1000 * epoch:.2f} ms, rank 0 CPU {1000 * cpu / args.epochs:.2f} ms/epoch, "
                f"outside epochs {outside:.3f} s; final losses {losses}",
                flush=True,
            )
            for name, (wall_us, cpu_us) in (costs or {}).items():
                print(f"  {name}: {wall_us:.0f} us wall (median), {cpu_us:.0f} us CPU per call (rank 0)")
            if args.count:
                calls = {k: v / args.epochs for k, v in sorted(runs[0]["calls"].items())}
                print(f"  rank 0 collectives per epoch: {calls}")
                for site, n in sorted(runs[0]["reads"].items(), key=lambda kv: -kv[1]):
                    print(f"  host read {site}: {n} ({n / args.epochs:.2f}/epoch)")
                if len(runs) > 1:
                    calls = runs[1]["reads"]["python calls"]
                    print(f"  rank 0 Python function calls per epoch: {calls / args.epochs:.0f}")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps({"world": world, "runs": runs}) + "\n")


if __name__ == "__main__":
    main()
