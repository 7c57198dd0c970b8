"""The `distgnn` command line: thin wiring over the subcommand modules in distgnn/commands/."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Large tensors torch allocates (features, activations, gradients) are advised onto transparent huge pages
# (torch's c10 allocator reads this once, before torch's first allocation; it changes nothing where THP is
# off or "always"). With the "madvise" setting the kernels' random row gathers from GB-sized tables run
# on 4 KiB pages otherwise. A user's own setting wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from distgnn.errors import DistGNNError

# Each module defines `add_parser(subparsers)`, which registers its parser with `func=run`.
SUBCOMMANDS = ("partition", "info", "train", "predict", "export", "profile")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distgnn",
        description="Distributed full-graph GNN training: partition a graph offline, then train on it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"distgnn.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DistGNNError as err:  # a training worker reports its own (distgnn.runtime.worker)
        print(f"distgnn {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"distgnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
