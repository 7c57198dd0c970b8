"""Checks every rank runs before training, agreed on by all ranks so one node's problem stops them all.

On several nodes each node may hold only its own ``part-<p>`` (copied from ``distgnn partition``'s
output). A node that lacks its part must not leave the other ranks waiting in their first collective
until the process-group timeout: every rank checks its own part, the ranks exchange what they found
(one small all-gather, right after the group forms) and every rank raises the same one-line error.

The same all-gather carries a sha256 of each rank's ``meta.json``: ranks pointed at different partition
directories (or at copies from different runs) stop with one error naming them. Then one all-to-all of
halo row counts checks that what part p will send part q is what q expects to receive: parts mixed up
between partitionings would otherwise hang an exchange, or silently corrupt one under NCCL.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from distgnn.comm.collectives import gather_json
from distgnn.comm.layout import ProcessLayout
from distgnn.config import JobShape, TrainConfig
from distgnn.errors import AgreedError, DistGNNError
from distgnn.metrics import summary_writer_class
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


def agree(layout: ProcessLayout, problem: str | None, found: list | None = None) -> None:
    """Share each rank's ``problem``; if any rank has one, raise the same AgreedError on every rank.
    ``found``: the problems already gathered (then no collective)."""
    if found is None:
        mine = None if problem is None else f"rank {layout.rank} on {socket.gethostname()}: {problem}"
        found = gather_json(mine, layout)
    bad = [p for p in found if p is not None]
    if bad:
        more = f" (and {len(bad) - 1} more rank(s))" if len(bad) > 1 else ""
        raise AgreedError(f"{bad[0]}{more}")


def meta_digest(part_dir: str | Path) -> str:
    """sha256 of ``meta.json``'s bytes (which embed every part file's checksum)."""
    return hashlib.sha256((Path(part_dir) / META_FILE).read_bytes()).hexdigest()


def partition_identity(part_dir: str | Path) -> dict:
    """What a checkpoint records of the partitioning it was trained on: the directory (for messages) and
    a sha256 of ``meta.json``'s per-file checksums, i.e. of the partition's content. Unlike
    :func:`meta_digest` it ignores what a re-run changes without changing the parts (timings)."""
    checksums = load_meta(part_dir).get("checksums", {})
    blob = json.dumps(checksums, sort_keys=True).encode()
    return {"dir": str(part_dir), "sha256": hashlib.sha256(blob).hexdigest()}


def halo_counts(part_dir: str | Path, part_id: int, num_parts: int) -> tuple[list[int], list[int]]:
    """(rows part ``part_id`` sends each part, rows it receives from each part), from its offsets files."""
    counts = []
    for name in ("send_offsets", "halo_offsets"):
        path = Path(part_dir) / part_dirname(part_id) / f"{name}.npy"
        try:
            offsets = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DistGNNError(f"cannot read {path}: {err}") from None
        if offsets.shape != (num_parts + 1,) or offsets.dtype.kind not in "iu":
            raise DistGNNError(f"{path} has shape {offsets.shape}, expected ({num_parts + 1},) integers")
        counts.append(np.diff(offsets).tolist())
    return counts[0], counts[1]


def halo_problem(layout: ProcessLayout, shape: JobShape, send: list[int], recv: list[int]) -> str | None:
    """One all-to-all: each rank tells each graph peer (same stage) how many rows it will send it."""
    num_parts = shape.parts
    stage, part = shape.stage_part(layout.rank)
    out = torch.zeros(layout.world_size, dtype=torch.int64)
    out[stage * num_parts : (stage + 1) * num_parts] = torch.tensor(send, dtype=torch.int64)
    got = torch.empty_like(out).to(layout.device)
    dist.all_to_all_single(got, out.to(layout.device), group=layout.group)
    got = got.cpu()[stage * num_parts : (stage + 1) * num_parts].tolist()
    wrong = [q for q in range(num_parts) if got[q] != recv[q]]
    if not wrong:
        return None
    q = wrong[0]
    return (
        f"part {part} expects {recv[q]} halo rows from part {q}, which would send {got[q]}: the parts come "
        "from different partitionings"
    )


def require_part(part_dir: str | Path, layout: ProcessLayout, shape: JobShape) -> None:
    """Every rank checks it holds its part of a ``shape.parts``-part directory, that all ranks read the
    same ``meta.json`` and that their halo counts match; all raise together if any check fails. Each rank
    reads its graph part of the job's shape."""
    num_parts = shape.parts
    _, part_id = shape.stage_part(layout.rank)
    problem = part_problem(part_dir, part_id, num_parts)
    digest = send = recv = None
    if problem is None:
        try:
            digest = meta_digest(part_dir)
            send, recv = halo_counts(part_dir, part_id, num_parts)
        except (OSError, DistGNNError) as err:
            problem = str(err)
    where = f"rank {layout.rank} on {socket.gethostname()}"
    found = gather_json([None if problem is None else f"{where}: {problem}", digest, str(part_dir)], layout)
    agree(layout, None, [f[0] for f in found])
    digests = {f[1] for f in found}
    if len(digests) > 1:
        first = {}
        for rank, (_, d, path) in enumerate(found):
            first.setdefault(d, f"rank {rank} read {path} (meta.json sha256 {d[:12]})")
        raise AgreedError(
            "the ranks read different partitions: " + "; ".join(first.values()) + ". Every rank must "
            "see the same meta.json (copy the whole partition's meta.json to every node)"
        )
    if layout.group is not None and num_parts > 1:
        mismatch = halo_problem(layout, shape, send, recv)
        agree(layout, None if mismatch is None else f"{where}: {mismatch}")


def writable_dir(path: str | Path, what: str) -> None:
    """Refuse a directory that cannot be created or written, without creating anything."""
    target = Path(path)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise DistGNNError(f"{what} {target} cannot be created: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DistGNNError(f"{what} {target} is not writable ({probe} is read-only here)")


def check_outputs(cfg: TrainConfig, rank: int) -> None:
    """Fail before training, not at the first save, when an output this rank writes has nowhere to go."""
    run = cfg.run
    if run.checkpoint_dir and (run.checkpoint_every or run.resume):
        writable_dir(run.checkpoint_dir, "checkpoint directory")
    if run.trace:
        writable_dir(run.trace, "trace directory")
    if rank == 0:
        for what, file in (("--metrics-out", run.metrics_out), ("--profile-out", run.profile_out)):
            if file:
                writable_dir(Path(file).parent, f"{what} directory")
        if run.tensorboard:
            summary_writer_class()  # the optional tensorboard package: one line now, not after set-up
            writable_dir(run.tensorboard, "--tensorboard directory")


def check_custom_model(cfg: TrainConfig) -> None:
    """Resolve a model of yours, build it and run it once on two dummy rows (the profiler's recording
    pass, which also checks its declared exchange widths): an import path that does not resolve, a
    factory that raises, or a model that breaks the contract is one line here, before any rank starts."""
    from distgnn.profile.exchanges import ModelSpec, layer_exchanges
    from distgnn.profile.partition_info import PartitionInfo

    m = cfg.model
    dims = (8, 2)  # the synthetic default graph's sizes do not matter for the check
    if cfg.job.partitions and (Path(cfg.job.partitions) / "meta.json").is_file():
        info = PartitionInfo.from_dir(cfg.job.partitions)
        dims = (info.feat_dim, info.num_classes)
    layer_exchanges(ModelSpec(m.name, m.layers, m.hidden, m.heads), *dims)
