"""Checks every rank runs before training, agreed on by all ranks so one node's problem stops them all.

On several nodes each node may hold only its own ``part-<p>`` (copied from ``distgnn partition``'s
output). A node that lacks its part must not leave the other ranks waiting in their first collective
until the process-group timeout: every rank checks its own part, the ranks exchange what they found
(one small all-gather, right after the group forms) and every rank raises the same one-line error.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch.distributed as dist

from distgnn.errors import DistGNNError
from distgnn.parallel.layout import ProcessLayout
from distgnn.partitioning import load_meta
from distgnn.partitioning.format import ARRAYS, META_FILE, part_dirname


def has_meta(part_dir: str | Path) -> bool:
    """True if this node sees ``part_dir/meta.json``."""
    return (Path(part_dir) / META_FILE).is_file()


def part_problem(part_dir: str | Path, part_id: int, num_parts: int) -> str | None:
    """Why this rank cannot train on ``part_id`` of a ``num_parts``-part ``part_dir`` (None if it can).
    Reads no arrays."""
    root = Path(part_dir)
    try:
        found = int(load_meta(root)["num_parts"])
    except DistGNNError as err:
        return str(err)
    if found != num_parts:
        return f"{root} has {found} parts but the job needs {num_parts}"
    sub = root / part_dirname(part_id)
    if not sub.is_dir():
        return f"{sub} is missing (this node needs {part_dirname(part_id)} of {root})"
    missing = [f"{name}.npy" for name in ARRAYS if not (sub / f"{name}.npy").is_file()]
    if missing:
        return f"{sub} is incomplete: {', '.join(missing)} missing"
    return None


def agree(layout: ProcessLayout, problem: str | None) -> None:
    """Share each rank's ``problem``; if any rank has one, raise the same DistGNNError on every rank."""
    mine = None if problem is None else f"rank {layout.rank} on {socket.gethostname()}: {problem}"
    if layout.group is None:
        found = [mine]
    else:
        found = [None] * layout.world_size
        dist.all_gather_object(found, mine, group=layout.group)
    bad = [p for p in found if p is not None]
    if bad:
        more = f" (and {len(bad) - 1} more rank(s))" if len(bad) > 1 else ""
        raise DistGNNError(f"{bad[0]}{more}")


def require_part(part_dir: str | Path, layout: ProcessLayout, num_parts: int) -> None:
    """Every rank checks it holds its part of a ``num_parts``-part directory; all raise together if any
    rank does not. Rank r reads part ``r % num_parts`` (the graph rank of the stage-major process mesh)."""
    agree(layout, part_problem(part_dir, layout.rank % num_parts, num_parts))
