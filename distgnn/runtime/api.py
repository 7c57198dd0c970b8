"""``distgnn.fit``: training from a Python script, run as one process or under torchrun.

It is the worker entry (:mod:`distgnn.runtime.worker`) for a script: the same job shape and partition
checks, the watchdog, the process group joined from torchrun's environment (or a ``layout`` someone else
built), every rank's part checked, SIGINT/SIGTERM stopping every rank after the current epoch, a failure
named by its rank (:mod:`distgnn.runtime.failure`). Where ``distgnn train`` prints one line and exits,
``fit`` raises: :class:`~distgnn.errors.DistGNNError` (its message the line), or
:class:`~distgnn.errors.TrainingInterrupted` after a signal.

    import distgnn
    cfg = distgnn.TrainConfig.from_flat(model="gcn", partitions="runs/syn-2", epochs=50)
    result = distgnn.fit(cfg, callbacks=[lambda record: print(record["epoch"], record["loss"])])
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from distgnn.comm.layout import ProcessLayout
from distgnn.config import MODELS, TrainConfig
from distgnn.errors import AgreedError, DistGNNError, PeerFailedError
from distgnn.runtime.interrupt import StopRequest
from distgnn.runtime.preflight import check_custom_model
from distgnn.runtime.worker import exit_grace, join_and_train
from distgnn.train import TrainResult

Callback = Callable[[dict], None]


def fit(
    cfg: TrainConfig, *, callbacks: Iterable[Callback] = (), layout: ProcessLayout | None = None
) -> TrainResult:
    """Train ``cfg`` in this process, as one rank of the job torchrun's environment describes (RANK,
    WORLD_SIZE, MASTER_ADDR/PORT) or, without one, alone; every rank of a job calls it.

    ``callbacks``: each called on every rank with every epoch's metrics record (the dicts
    ``--metrics-out`` gets), in epoch order, in batches at evaluation epochs, checkpoints and the end
    (:meth:`distgnn.train.Trainer.fit`); what one raises propagates from this rank, and its peers stop
    with a :class:`~distgnn.errors.PeerFailedError` instead of waiting. ``layout``: a process group
    someone else built (``ProcessLayout.from_group``); default: join torchrun's.

    Returns this rank's :class:`~distgnn.train.TrainResult` (history, summary, model; the history and
    summary are the same on every rank). Raises DistGNNError (one line) on bad input or a failed rank.
    """
    if not isinstance(cfg, TrainConfig):
        raise DistGNNError(f"distgnn.fit needs a TrainConfig, got {type(cfg).__name__}")
    calls = tuple(callbacks)
    for call in calls:
        if not callable(call):
            raise DistGNNError(f"a callback must be callable with one metrics record, got {call!r}")
    check_job(cfg, layout)
    if cfg.model.name not in MODELS:  # a model of yours: resolved, built and run once, as the CLI does
        check_custom_model(cfg)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        with StopRequest().installed() as stop:  # main thread only, as in the worker
            return join_and_train(cfg, layout, stop, calls)
    except (AgreedError, PeerFailedError) as err:  # end in the order the worker's processes end
        time.sleep(exit_grace(err, local_rank))
        raise


def check_job(cfg: TrainConfig, layout: ProcessLayout | None) -> None:
    """Refuse what only ``distgnn train`` can do: start processes (``nproc`` other than the job's world
    size) or restart them (``max_restarts``: give torchrun ``--max-restarts``)."""
    job = cfg.job
    world = layout.world_size if layout is not None else int(os.environ.get("WORLD_SIZE", "1"))
    if job.nproc is not None and job.nproc != world:
        raise DistGNNError(
            f"nproc={job.nproc} but this job has {world} process{'es' if world > 1 else ''}: distgnn.fit "
            f"trains in the processes that call it; start them with torchrun --nproc_per_node {job.nproc}"
        )
    if job.max_restarts:
        raise DistGNNError(
            "max_restarts needs distgnn train --nproc; run the script under torchrun --max-restarts "
            "(a restarted group resumes from checkpoint_dir)"
        )
