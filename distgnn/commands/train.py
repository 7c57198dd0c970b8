"""`distgnn train`: full-graph training on a partition directory, one process per part.

Parse, then one of two things: ``--nproc P`` starts P local workers (:mod:`distgnn.runtime.launcher`);
otherwise this process is a worker (:func:`distgnn.runtime.worker.run_worker`): one of torchrun's
(``torchrun --nproc_per_node P -m distgnn train ...``: RANK/WORLD_SIZE come from the launcher) or a
single process. Without ``--partitions`` the built-in synthetic graph is partitioned once into ``runs/``
(cached per process count) and trained on.
"""

from __future__ import annotations

import argparse
import os

from distgnn.commands.options import add_config_arguments, config_from_args
from distgnn.config import MODELS
from distgnn.errors import DistGNNError

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
  distgnn train --partitions runs/cora-4 --nproc 4 --checkpoint-dir runs/ckpt --checkpoint-every 10 \\
      --max-restarts 3 --checkpoint-on-exit     # survive a killed worker; save on Ctrl-C / SIGTERM
  distgnn partition --dataset data/cora.npz --parts 1 --out runs/cora-1
  distgnn train --partitions runs/cora-1 --nproc 4 --strategy pipeline --stages 4 --chunks 8 \
      --model deepgcn --layers 16 --hidden 64 --exact-epochs 10

The number of processes must be stages x the number of parts (graph: the parts; pipeline: the stages,
on a 1-part directory). Metrics: one JSON object per epoch (epoch, loss, train/val/test accuracy, epoch_s,
compute_s, comm_s, exposed_comm_s, comm_bytes, bubble_s, history_bytes, stale_read_frac, minor_faults,
sys_s, ...; see docs/training.md) written by rank 0 to --metrics-out.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a GNN on a partition directory (one process per part)",
        description=(
            "Full-graph GNN training: every epoch computes every layer on every node. --strategy graph "
            "(default): each process owns one part and exchanges halo rows with its peers, exact (equal to "
            "single-process training) unless --halo-staleness 1 or a 16-bit --comm-dtype is asked for. "
            "--strategy pipeline: each process runs a range of layers over the whole graph while chunks "
            "stream through the stages; neighbours in chunks not yet computed this epoch are read from a "
            "historical-embedding cache (last epoch's rows): exact with --chunks 1, approximate otherwise. "
            "Evaluation is always exact."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distgnn.kernels import isa

    cfg = config_from_args(args)
    isa.chosen()  # a DISTGNN_CPU_ISA this CPU cannot run is one line here, before any process starts
    if cfg.model.name not in MODELS:
        from distgnn.runtime.preflight import check_custom_model

        check_custom_model(cfg)
    job = cfg.job
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if job.max_restarts and (job.nproc is None or launched):
        raise DistGNNError("--max-restarts needs --nproc (under torchrun, give torchrun --max-restarts)")
    if job.nproc is not None:
        if launched and int(os.environ["WORLD_SIZE"]) != job.nproc:
            raise DistGNNError(
                f"--nproc {job.nproc} conflicts with the launcher's WORLD_SIZE={os.environ['WORLD_SIZE']}"
            )
        if not launched:
            from distgnn.runtime.launcher import launch_local

            return launch_local(cfg)
    from distgnn.runtime.worker import run_worker

    return run_worker(cfg)
