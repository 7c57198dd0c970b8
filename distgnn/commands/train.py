"""`distgnn train`: full-graph training on a partition directory, one process per part.

Three ways to start it, one code path:

- under torchrun (``torchrun --nproc_per_node P -m distgnn train ...``): RANK/WORLD_SIZE come from the
  launcher;
- ``--nproc P``: this process becomes a local launcher, starting P workers through torch's elastic
  agent (the engine behind torchrun) with the same arguments minus ``--nproc``;
- neither: a single process (world size 1).

Without ``--partitions`` the built-in synthetic graph is partitioned once into ``runs/`` (cached per
process count) and trained on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

from distgnn.config import COMM_DTYPES, FEATURE_NORMS, KERNELS, MODELS, WEIGHT_DECAY_SCOPES, TrainConfig
from distgnn.errors import DistGNNError

SYNTHETIC_SPEC = "synthetic"
CACHE_ROOT = Path("runs")
DEFAULT_TIMEOUT_S = 300.0

EPILOG = """\
examples:
  distgnn train                                   # synthetic graph, 1 process (partitioned into runs/ once)
  distgnn train --nproc 2                         # the same on 2 local processes
  distgnn partition --dataset data/cora.npz --parts 4 --out runs/cora-4
  distgnn train --partitions runs/cora-4 --nproc 4 --feature-norm row --metrics-out runs/cora.jsonl
  torchrun --nproc_per_node 4 -m distgnn train --partitions runs/cora-4 --model gat --hidden 8 --heads 8
  distgnn train --partitions runs/cora-4 --nproc 4 --model deepgcn --layers 32 --hidden 64 \\
      --halo-staleness 1 --comm-dtype bf16
  distgnn train --partitions runs/cora-4 --nproc 4 --checkpoint-dir runs/ckpt --checkpoint-every 50
  distgnn train --partitions runs/cora-4 --nproc 4 --checkpoint-dir runs/ckpt --resume

The number of processes must equal the number of parts in the partition directory.
Metrics: one JSON object per epoch (epoch, loss, train/val/test accuracy, epoch_s, compute_s, comm_s,
exposed_comm_s, comm_bytes summed over ranks) written by rank 0 to --metrics-out.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a GNN on a partition directory (one process per part)",
        description=(
            "Full-graph GNN training: every epoch computes every layer on every node; each process owns "
            "one part and exchanges halo rows with its peers. Exact (equal to single-process training) "
            "unless --halo-staleness 1 or a 16-bit --comm-dtype is asked for."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = TrainConfig()
    p.add_argument(
        "--partitions", metavar="DIR", help="partition directory (default: synthetic graph in runs/)"
    )
    p.add_argument("--model", choices=MODELS, default=d.model, help=f"model family (default {d.model})")
    p.add_argument("--layers", type=int, default=d.layers, metavar="L", help=f"layers (default {d.layers})")
    p.add_argument(
        "--hidden", type=int, default=d.hidden, metavar="H", help="hidden width (per head for GAT)"
    )
    p.add_argument("--heads", type=int, default=d.heads, metavar="K", help=f"GAT heads (default {d.heads})")
    p.add_argument("--epochs", type=int, default=d.epochs, metavar="E", help=f"epochs (default {d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    p.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, metavar="WD", help="L2 (default 5e-4)"
    )
    p.add_argument(
        "--weight-decay-scope",
        choices=WEIGHT_DECAY_SCOPES,
        default=d.weight_decay_scope,
        help="parameters the L2 applies to: all (default) or first (the first layer only, as in the GCN "
        "paper and PyG's Planetoid example)",
    )
    p.add_argument(
        "--dropout", type=float, default=d.dropout, metavar="D", help=f"dropout (default {d.dropout})"
    )
    p.add_argument(
        "--feature-norm",
        choices=FEATURE_NORMS,
        default=d.feature_norm,
        help="row: scale each node's features to sum 1, as in the GCN paper (default none)",
    )
    p.add_argument(
        "--seed", type=int, default=d.seed, metavar="S", help="seed for init and dropout (default 0)"
    )
    p.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
    p.add_argument(
        "--halo-staleness",
        type=int,
        choices=(0, 1),
        default=d.halo_staleness,
        help="1: use one-epoch-stale halo rows/gradients, overlapping all communication (approximate)",
    )
    p.add_argument(
        "--comm-dtype",
        choices=COMM_DTYPES,
        default=d.comm_dtype,
        help="halo wire format (default fp32)",
    )
    p.add_argument("--no-overlap", action="store_true", help="exchange halos before aggregating (no overlap)")
    p.add_argument("--kernel", choices=KERNELS, default=d.kernel, help="aggregation kernel (default auto)")
    p.add_argument(
        "--eval-every", type=int, default=d.eval_every, metavar="N", help="evaluate every N epochs"
    )
    p.add_argument("--nproc", type=int, metavar="P", help="start P local worker processes (torch elastic)")
    p.add_argument("--metrics-out", metavar="FILE", help="JSON lines, one per epoch (written by rank 0)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="where checkpoints go (one file per rank)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K", help="checkpoint every K epochs")
    p.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in --checkpoint-dir"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SEC",
        help=f"process-group timeout: a dead peer ends the job after SEC (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar or summary table")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The validated TrainConfig (raises DistGNNError with one line on a bad value)."""
    return TrainConfig(
        model=args.model,
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        weight_decay_scope=args.weight_decay_scope,
        dropout=args.dropout,
        feature_norm=args.feature_norm,
        seed=args.seed,
        deterministic=args.deterministic,
        halo_staleness=args.halo_staleness,
        comm_dtype=args.comm_dtype,
        overlap=not args.no_overlap,
        kernel=args.kernel,
        eval_every=args.eval_every,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        metrics_out=args.metrics_out,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.timeout <= 0:
        raise DistGNNError(f"timeout must be > 0 seconds, got {args.timeout}")
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if args.nproc is not None:
        if args.nproc < 1:
            raise DistGNNError(f"nproc must be >= 1, got {args.nproc}")
        if launched and int(os.environ["WORLD_SIZE"]) != args.nproc:
            raise DistGNNError(
                f"--nproc {args.nproc} conflicts with the launcher's WORLD_SIZE={os.environ['WORLD_SIZE']}"
            )
        if not launched:
            return launch_local(args)
    return worker(args, cfg)


# -- the local launcher -------------------------------------------------------------------------------


def launch_local(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` workers with torch's elastic agent (what torchrun runs), standalone mode."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = args.nproc
    part_dir = resolve_partitions(args, nproc, rank=0)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"distgnn-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    child = ["-m", "distgnn", "train", *worker_argv(args, part_dir)]
    saved = os.environ.get("OMP_NUM_THREADS")
    if saved is None:  # as torchrun does: P processes should not each spawn one thread per core
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        elastic_launch(config, entrypoint=sys.executable)(*child)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        raise DistGNNError(
            f"worker rank {rank} failed with exit code {failure.exitcode}; the other workers were stopped"
        ) from None
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    return 0


def worker_argv(args: argparse.Namespace, part_dir: str) -> list[str]:
    """The arguments a worker gets: everything the user gave, minus ``--nproc``, plus the partitions."""
    out = ["--partitions", part_dir]
    valued = (
        "model", "layers", "hidden", "heads", "epochs", "lr", "weight_decay", "weight_decay_scope", "dropout",
        "feature_norm", "seed", "halo_staleness", "comm_dtype", "kernel", "eval_every", "metrics_out",
        "checkpoint_dir", "checkpoint_every", "timeout",
    )  # fmt: skip
    for name in valued:
        value = getattr(args, name)
        if value is not None:
            out += [f"--{name.replace('_', '-')}", str(value)]
    for name in ("deterministic", "no_overlap", "resume", "no_progress"):
        if getattr(args, name):
            out.append(f"--{name.replace('_', '-')}")
    return out


# -- partitions ---------------------------------------------------------------------------------------


def synthetic_cache(num_parts: int) -> Path:
    return CACHE_ROOT / f"synthetic-{num_parts}p"


def resolve_partitions(args: argparse.Namespace, world_size: int, *, rank: int, timeout: float = 0.0) -> str:
    """The partition directory to train on, checked against the world size before any process group.

    Without ``--partitions``, the synthetic graph is partitioned into ``runs/synthetic-<P>p`` once:
    the first local process writes it (atomically), the others wait for it to appear.
    """
    from distgnn.partitioning import load_meta

    if args.partitions:
        part_dir = args.partitions
    else:
        part_dir = str(synthetic_cache(world_size))
        if not (Path(part_dir) / "meta.json").exists():
            if rank == 0:
                from distgnn.data import load_graph
                from distgnn.partitioning import partition_graph

                progress = not args.no_progress
                if progress:
                    print(
                        f"no --partitions: partitioning the synthetic graph into {part_dir}", file=sys.stderr
                    )
                graph = load_graph(SYNTHETIC_SPEC, progress=progress)
                partition_graph(graph, world_size, part_dir, progress=progress)
            else:
                _wait_for(Path(part_dir) / "meta.json", timeout)
    num_parts = int(load_meta(part_dir)["num_parts"])
    if num_parts != world_size:
        noun = "process" if world_size == 1 else "processes"
        raise DistGNNError(
            f"partition directory {part_dir} has {num_parts} parts but the job has {world_size} {noun}; "
            f"run with --nproc {num_parts} (or torchrun --nproc_per_node {num_parts})"
        )
    return part_dir


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise DistGNNError(f"timed out after {timeout:g}s waiting for rank 0 to write {path}")
        time.sleep(0.2)


# -- one worker ---------------------------------------------------------------------------------------


def worker(args: argparse.Namespace, cfg: TrainConfig) -> int:
    """One training process: join the group, load this rank's part, train, report on rank 0."""
    from distgnn.parallel.layout import ProcessLayout
    from distgnn.train import train_partition

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    # Checked before the process group exists: a mismatch fails on every rank at once, nobody waits.
    part_dir = resolve_partitions(args, world, rank=local_rank, timeout=args.timeout)
    layout = ProcessLayout.init_from_env(timeout=args.timeout)
    try:
        train_partition(cfg, part_dir, layout)
    finally:
        layout.destroy()
    return 0
