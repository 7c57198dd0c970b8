"""The one worker entry: what every process of a training job runs, whoever started it.

``torchrun -m distgnn train`` (through the CLI), the workers ``distgnn train --nproc`` forks
(:mod:`distgnn.runtime.launcher`) and the Ray Train launcher (``launch/ray_train.py``) all call
:func:`run_worker`, so every process gets the same life around the training loop: the partition
directory resolved and checked against the job's shape, the watchdog (a rank stopped longer than its
peers wait is killed), SIGINT/SIGTERM stopping every rank after the current epoch (with
``--checkpoint-on-exit`` a checkpoint first), and one line per failure naming the failing rank.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence

from distgnn.comm.layout import ProcessLayout
from distgnn.config import JobShape, TrainConfig
from distgnn.errors import AgreedError, DistGNNError, PeerFailedError, TrainingInterrupted
from distgnn.parallel.build import build_strategy
from distgnn.parallel.strategy import Strategy
from distgnn.profile.recorder import ProfileSession
from distgnn.runtime import failure, watchdog
from distgnn.runtime.interrupt import StopRequest
from distgnn.runtime.partitions import resolve_partitions
from distgnn.runtime.preflight import check_outputs, has_meta, partition_identity, require_part
from distgnn.train import StopFlag, Trainer, TrainResult

PROG = "distgnn train"
# A rank that stays silent about an error all ranks share exits this much later than the rank that prints
# it, so a launcher that stops the other workers on the first exit does not cut the printing one short.
AGREED_GRACE_S = 1.0
# A rank stopped by a peer's failure exits this much later than the failing rank, so the launcher, which
# stops the other workers on the first exit it sees, sees the root cause's exit code (2) first.
PEER_GRACE_S = 2.0


def run_worker(
    cfg: TrainConfig,
    layout: ProcessLayout | None = None,
    stop: StopRequest | None = None,
    on_interrupt: Callable[[TrainingInterrupted], None] | None = None,
) -> int:
    """One training process; returns its exit code, having printed what went wrong in one line.

    ``layout``: a process group someone else built (Ray); default: join the group torchrun's (or the
    local launcher's) environment describes. SIGINT/SIGTERM stop every rank after the current epoch
    (one line from rank 0, exit 130/143). ``stop``: a request fed from elsewhere (Ray: the training runs
    off the main thread, :meth:`StopRequest.polling`); default: this process's own signals.
    ``on_interrupt``: called on every rank instead of rank 0's line (Ray: the driver prints it)."""
    rank = layout.rank if layout is not None else int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        with (stop or StopRequest()).installed() as stop:  # main thread only (not a Ray worker's loop)
            try:
                join_and_train(cfg, layout, stop)
            except TrainingInterrupted as interrupted:
                if on_interrupt is not None:
                    on_interrupt(interrupted)
                elif rank == 0:
                    print(f"{PROG}: {interrupted}", file=sys.stderr, flush=True)
                return interrupted.exit_code
    except DistGNNError as err:
        return report(PROG, err, local_rank)
    return 0


def exit_grace(err: DistGNNError, local_rank: int) -> float:
    """How long a failing process waits before it exits: the launcher stops every other worker at the
    first exit it sees, so the rank that says an error all ranks share, and a failing rank's own report,
    must come before the others'."""
    if isinstance(err, AgreedError):
        return AGREED_GRACE_S if local_rank != 0 else 0.0
    return PEER_GRACE_S if isinstance(err, PeerFailedError) else 0.0


def report(prog: str, err: DistGNNError, local_rank: int) -> int:
    """Print ``err`` as one line (an error every rank shares: from local rank 0 only, once per node), wait
    its :func:`exit_grace`, and return its exit code: how every worker entry ends on an error."""
    if not (isinstance(err, AgreedError) and local_rank != 0):
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
    time.sleep(exit_grace(err, local_rank))
    return err.exit_code


def join_and_train(
    cfg: TrainConfig,
    layout: ProcessLayout | None,
    stop: StopRequest,
    callbacks: Sequence[Callable[[dict], None]] = (),
) -> TrainResult:
    """Join the group, check this rank's part, train; the watchdog runs while the group does.
    ``callbacks``: the trainer's per-epoch callbacks (``distgnn.fit``)."""
    job = cfg.job
    world = layout.world_size if layout is not None else int(os.environ.get("WORLD_SIZE", "1"))
    rank = layout.rank if layout is not None else int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    shape = JobShape.of(cfg.parallel, world)  # an impossible shape: one line on every rank, no group yet
    # A part-count mismatch fails on every rank at once, before the group exists; a node lacking the
    # directory or its part is found by all ranks together once the group exists (preflight).
    if job.partitions and world > 1 and not has_meta(job.partitions):
        part_dir = job.partitions
    else:
        part_dir = resolve_partitions(cfg, shape, rank=local_rank, timeout=job.timeout)
    if world > 1:  # a rank stopped (SIGSTOP) longer than its peers wait is killed (runtime/watchdog.py)
        watchdog.start(rank, grace=job.timeout)
    try:
        own = layout is None
        layout = ProcessLayout.init_from_env(timeout=job.timeout) if own else layout
        try:
            require_part(part_dir, layout, shape)  # one line on every rank, no hang
            return train_partition(cfg, part_dir, layout, stop, callbacks)[0]
        finally:
            if own:
                layout.destroy()
    finally:
        watchdog.stop()


def train_partition(
    cfg: TrainConfig,
    part_dir: str,
    layout: ProcessLayout,
    stop: StopFlag | None = None,
    callbacks: Sequence[Callable[[dict], None]] = (),
) -> tuple[TrainResult, Strategy]:
    """One rank of a job: build the strategy ``cfg`` names over ``layout``, train, drain the comm.
    ``stop``: the SIGINT/SIGTERM request (training then raises TrainingInterrupted after the epoch);
    ``callbacks``: called with each per-epoch metrics record (:meth:`distgnn.train.Trainer.fit`).
    A failure is one line naming the failing rank (runtime/failure.py)."""
    with failure.reported(layout.rank, layout.world_size, layout.store):
        check_outputs(cfg, layout.rank)
        strategy = build_strategy(cfg, part_dir, layout)
        session = ProfileSession.start(cfg, strategy, layout, part_dir)  # --profile-out / --trace
        trainer = Trainer(
            cfg,
            strategy,
            stop,
            partition_identity(part_dir),
            on_timeout=watchdog.set_grace,
            callbacks=callbacks,
        )
        try:
            result = trainer.fit()
        except TrainingInterrupted:
            strategy.flush()  # drain exchanges still in flight (stale halos) before the group goes away
            raise
        strategy.flush()
        session.finish(result.history)
    return result, strategy
