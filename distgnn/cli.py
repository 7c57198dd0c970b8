"""The `distgnn` command line: thin wiring over the subcommand modules in distgnn/commands/."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

# Large tensors torch allocates (features, activations, gradients) are advised onto transparent huge pages
# (torch's c10 allocator reads this once, before torch's first allocation; it changes nothing where THP is
# off or "always"). With the "madvise" setting the kernels' random row gathers from GB-sized tables run
# on 4 KiB pages otherwise. A user's own setting wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from distgnn.errors import AgreedError, DistGNNError, PeerFailedError

# Each module defines `add_parser(subparsers)`, which registers its parser with `func=run`.
SUBCOMMANDS = ("partition", "info", "train", "profile")
# A rank that stays silent about an error all ranks share exits this much later than the rank that prints
# it, so a launcher that stops the other workers on the first exit does not cut the printing one short.
AGREED_GRACE_S = 1.0
# A rank stopped by a peer's failure exits this much later than the failing rank, so the launcher, which
# stops the other workers on the first exit it sees, sees the root cause's exit code (2) first.
PEER_GRACE_S = 2.0


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
    except DistGNNError as err:
        if isinstance(err, AgreedError) and os.environ.get("LOCAL_RANK", "0") != "0":
            time.sleep(AGREED_GRACE_S)  # every rank has it: local rank 0 says it, once per node
            return err.exit_code
        print(f"distgnn {args.command}: error: {err}", file=sys.stderr)
        if isinstance(err, PeerFailedError):
            time.sleep(PEER_GRACE_S)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"distgnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
