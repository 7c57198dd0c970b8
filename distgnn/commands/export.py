"""`distgnn export`: one model file from a checkpoint set, loadable in one process."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  distgnn export --checkpoint runs/ckpt --out runs/gcn.pt
  python -c "from distgnn.models import load_exported; print(load_exported('runs/gcn.pt'))"

The file holds the model's state_dict (every rank's and every pipeline stage's parameters, gathered)
and its options; torch.load(path, weights_only=True) reads it, distgnn.models.load_exported builds it.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="gather a checkpoint's shards into one model file",
        description="Gather the model of a checkpoint set (every rank's and stage's parameters) into one "
        "file with its options.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint", required=True, metavar="DIR", help="checkpoint directory of a training run"
    )
    p.add_argument("--epoch", type=int, metavar="E", help="which complete set (default: the newest)")
    p.add_argument("--out", required=True, metavar="FILE", help="the model file to write (e.g. model.pt)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distgnn.checkpoint.export import gather_model, save_exported

    data = gather_model(args.checkpoint, args.epoch)
    save_exported(args.out, data)
    c = data["config"]
    print(f"wrote {args.out}: {c['name']}, {c['layers']} layers, epoch {data['epoch']}", file=sys.stderr)
    return 0
