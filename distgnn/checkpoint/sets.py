"""Checkpoint sets across ranks: a save is complete or absent, and every rank resumes from the same set.

Saving: every rank writes its file, one all-reduce shares each rank's outcome (size and sha256, or the
errno of a failed write), and only when all succeeded does rank 0 write the manifest that makes the set
complete. A failed write (a full disk, a read-only directory) fails that save only: one warning, the
set's leftovers are removed, earlier sets and the run go on. Resuming: rank 0 proposes the newest set
with a manifest, every rank verifies and loads its own file, and one all-reduce decides; a set with a
truncated or corrupt file is skipped with one warning naming the file, and the next older one is tried.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist

from distgnn.checkpoint import files as ckpt
from distgnn.comm.collectives import all_reduce
from distgnn.comm.layout import ProcessLayout
from distgnn.errors import AgreedError, DistGNNError

_DIGEST_WORDS = 4  # a sha256 as four int64


def warn(message: str) -> None:
    print(f"distgnn: warning: {message}", file=sys.stderr, flush=True)


def restart_count() -> int:
    """How often torch's elastic agent (torchrun, ``--nproc``) has restarted this worker group."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def _sum(t: torch.Tensor, world: ProcessLayout) -> torch.Tensor:
    """``t`` (on the host) summed over ``world``, back on the host."""
    return all_reduce(t.to(world.device), world).cpu() if world.is_distributed else t


def _broadcast(values: list[int], world: ProcessLayout) -> list[int]:
    t = torch.tensor(values, dtype=torch.int64)
    if world.is_distributed:
        t = t.to(world.device)
        dist.broadcast(t, src=dist.get_global_rank(world.group, 0), group=world.group)
    return [int(v) for v in t.cpu().tolist()]


def save_set(world: ProcessLayout, root: str, epoch: int, state: dict, *, keep: int, run: str | None) -> bool:
    """Every rank: save ``state`` as this rank's part of ``epoch``'s set. True when the set is complete."""
    if world.rank == 0 and (ckpt.epoch_dir(root, epoch) / ckpt.MANIFEST).exists():
        ckpt.discard(root, epoch)  # rewritten below: it must not look complete while it changes
    world.barrier()
    status = torch.zeros(world.world_size, 2 + _DIGEST_WORDS, dtype=torch.int64)
    try:
        rec = ckpt.save_rank_state(root, epoch, world.rank, state)
        digest = np.frombuffer(bytes.fromhex(rec.sha256), dtype="<i8")
        status[world.rank, 1] = rec.size
        status[world.rank, 2:] = torch.from_numpy(digest.copy())
    except OSError as err:
        status[world.rank, 0] = err.errno or -1
    except Exception:  # anything else is a bug: still tell the peers, so that nobody waits forever
        status[world.rank, 0] = -1
        _sum(status, world)
        raise
    status = _sum(status, world)
    failed = [(r, int(code)) for r, code in enumerate(status[:, 0].tolist()) if code]
    if world.rank != 0:
        return not failed
    if failed:
        ckpt.discard(root, epoch)
        rank, code = failed[0]
        why = os.strerror(code) if code > 0 else "an unexpected error"
        warn(
            f"checkpoint of epoch {epoch} not saved: rank {rank} could not write "
            f"{ckpt.rank_file(root, epoch, rank)} ({why}); earlier checkpoints are kept"
        )
        return False
    records = [ckpt.FileRecord(int(row[1]), row[2:].numpy().astype("<i8").tobytes().hex()) for row in status]
    try:
        ckpt.write_manifest(root, epoch, records, run)
    except OSError as err:
        ckpt.discard(root, epoch)
        warn(f"checkpoint of epoch {epoch} not saved: cannot write its manifest ({err.strerror or err})")
        return False
    ckpt.prune(root, epoch, keep)
    return True


def _candidate(root: str, below: int | None, run: str | None) -> tuple[int, int]:
    """Rank 0: (epoch, world size) of the newest set below ``below`` with a readable manifest (of run
    ``run`` when given); (-1, 0) when there is none. An unreadable manifest is skipped with a warning."""
    for epoch in ckpt.complete_epochs(root):
        if below is not None and epoch >= below:
            continue
        try:
            meta = ckpt.read_manifest(root, epoch)
        except DistGNNError as err:
            warn(f"{err}; trying an older checkpoint")
            continue
        if run is None or meta.get("run") == run:
            return epoch, int(meta["world_size"])
    if ckpt.saved_epochs(root):  # e.g. sets of an older distgnn (no manifest), or all damaged
        mine = " written by this run" if run else ""
        warn(f"no complete and intact checkpoint set{mine} in {root} ({len(ckpt.saved_epochs(root))} saved)")
    return -1, 0


def resume_set(world: ProcessLayout, root: str, *, run: str | None = None) -> tuple[int, dict] | None:
    """Every rank: (epoch, this rank's state) of the newest set every rank can load, or None.

    ``run``: only sets written by that run (an elastic restart resumes its own run, never an older
    run's checkpoints left in the same directory).
    """
    below = None
    while True:
        found = _candidate(root, below, run) if world.rank == 0 else (0, 0)
        epoch, saved_world = _broadcast(list(found), world)
        if epoch < 0:
            return None
        if saved_world != world.world_size:  # broadcast from rank 0: every rank raises it, printed once
            raise AgreedError(
                f"checkpoint in {root} was written by {saved_world} processes, "
                f"this job has {world.world_size}"
            )
        state, reason = None, None
        try:
            reason = ckpt.verify_rank_file(root, epoch, world.rank, ckpt.read_manifest(root, epoch))
            if reason is None:
                state = ckpt.load_rank_state(root, epoch, world.rank)
        except DistGNNError as err:
            reason = f"cannot be used ({err})"
        bad = torch.zeros(world.world_size, dtype=torch.int64)
        bad[world.rank] = int(reason is not None)
        bad = _sum(bad, world)
        if not bool(bad.any()):
            assert state is not None
            return epoch, state
        if world.rank == int(bad.nonzero()[0]):  # the lowest failing rank names its file, once
            more = int(bad.sum()) - 1
            others = f" (and {more} other rank file{'s' * (more > 1)})" if more else ""
            path = ckpt.rank_file(root, epoch, world.rank)
            warn(f"checkpoint file {path} {reason}{others}; falling back to an older checkpoint")
        below = epoch
