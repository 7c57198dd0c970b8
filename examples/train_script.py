"""Train from a script with distgnn.fit: a config built in Python, a callback per epoch record.

    python examples/train_script.py                          # one process
    torchrun --nproc_per_node 2 examples/train_script.py     # two, one part each

Without --partitions a small synthetic graph is partitioned into runs/train-script-<P>p, P = WORLD_SIZE
(local rank 0 writes it once, the other ranks wait for it). A model of your own: model="pkg.mod:build"
or distgnn.register_model (docs/models.md).
"""

import argparse
import math
import os

import distgnn
from distgnn.runtime.partitions import partition_once

GRAPH = "synthetic:nodes=2000,edges=20000"


def main() -> None:
    parser = argparse.ArgumentParser(description="distgnn.fit from a script")
    parser.add_argument("--partitions", help="a partition directory with WORLD_SIZE parts")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--metrics-out", help="the same records as JSON lines (rank 0)")
    args = parser.parse_args()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    parts = args.partitions or partition_once(GRAPH, world, f"runs/train-script-{world}p", rank=local_rank)
    cfg = distgnn.TrainConfig.from_flat(
        model="gcn", layers=2, hidden=64, epochs=args.epochs, eval_every=10,
        partitions=parts, metrics_out=args.metrics_out, progress=False,
    )  # fmt: skip

    def show(record: dict) -> None:  # every rank gets every record; rank 0 prints the evaluated ones
        if rank == 0 and not math.isnan(record["val_acc"]):
            print(f"epoch {record['epoch']:3d}  loss {record['loss']:.4f}  val acc {record['val_acc']:.3f}")

    result = distgnn.fit(cfg, callbacks=[show])
    if rank == 0:
        print(f"final test acc {result.summary['final_test_acc']:.3f}")


if __name__ == "__main__":
    main()
