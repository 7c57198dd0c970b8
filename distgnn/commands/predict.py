"""`distgnn predict`: a trained model's outputs for every node, in the graph's original node order."""

from __future__ import annotations

import argparse
import os
import sys

from distgnn.config import DEFAULT_TIMEOUT_S, KERNELS
from distgnn.errors import DistGNNError

EPILOG = """\
examples:
  distgnn predict --checkpoint runs/ckpt --partitions runs/cora-2 --nproc 2 --out runs/cora-logits.npy
  distgnn predict --checkpoint runs/gcn.pt --partitions runs/cora-1 --layer 1 --out runs/cora-emb.npy
  torchrun --nproc_per_node 4 -m distgnn predict --checkpoint runs/ckpt --partitions runs/cora-4 --out p.npy

The model may have been trained with any strategy and any process count: inference runs graph-parallel,
one process per part of --partitions, and is exact. Row i of the output is node i of the source graph.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="run a trained model over every node; write its outputs in original node order (.npy)",
        description="Full-graph inference with a trained model: logits or a layer's embeddings for every "
        "node, one process per part, written as one .npy in the graph's original node order.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a checkpoint directory (its newest complete set) or a file written by distgnn export",
    )
    p.add_argument("--partitions", required=True, metavar="DIR", help="partition directory of the graph")
    p.add_argument("--out", required=True, metavar="FILE.npy", help="where the [nodes, width] array goes")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--logits", action="store_true", help="the model's outputs (the default)")
    what.add_argument(
        "--layer", type=int, metavar="L", help="the input of layer L: embeddings after L layers"
    )
    p.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="stored dtype (default float32)"
    )
    p.add_argument("--kernel", choices=KERNELS, default="auto", help="aggregation kernel (default auto)")
    p.add_argument("--nproc", type=int, metavar="P", help="start P local processes (one per part)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SEC",
                   help=f"process-group timeout (default {DEFAULT_TIMEOUT_S:g})")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distgnn.runtime.predict import PredictJob

    job = PredictJob(
        model=args.checkpoint, partitions=args.partitions, out=args.out, layer=args.layer, dtype=args.dtype,
        kernel=args.kernel, timeout=args.timeout,
    )  # fmt: skip
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if args.nproc is not None and not launched:
        if args.nproc < 1:
            raise DistGNNError(f"nproc must be >= 1, got {args.nproc}")
        from distgnn.runtime.launcher import launch
        from distgnn.runtime.predict import load_model_dict

        load_model_dict(job.model)  # a bad model file is one line here, before any worker starts
        return launch(args.nproc, job, kernel=job.kernel)
    from distgnn.runtime.predict import run_predict

    code = run_predict(job)
    if code == 0 and int(os.environ.get("RANK", "0")) == 0:
        print(f"wrote {job.out}", file=sys.stderr)
    return code
