"""``distgnn train --nproc P``: start P local workers with torch's elastic agent (what torchrun runs).

The workers are forked from a server that imported torch once (:mod:`distgnn.runtime.forkserver`) and
each runs :func:`distgnn.runtime.worker.run_worker` with the job's config, as torchrun's and Ray's
workers do. The agent's rendezvous and the workers' store listen on loopback only
(:mod:`distgnn.comm.loopback`). A worker that dies restarts the group up to ``--max-restarts`` times.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from distgnn.comm import loopback
from distgnn.config import JobShape, TrainConfig
from distgnn.errors import DistGNNError, PeerFailedError
from distgnn.runtime.partitions import resolve_partitions

SHARE_STORE_OPT_OUT = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
AGENT_LOGGERS = ("torch.distributed.elastic", "torch.multiprocessing")  # the agent's and its worker pool's
INTERRUPTED = {128 + signal.SIGINT, 128 + signal.SIGTERM}  # exit codes of a worker stopped by a signal


def launch_local(cfg: TrainConfig) -> int:
    """Start ``cfg.job.nproc`` training workers, standalone; returns the job's exit code."""
    nproc = cfg.job.nproc
    assert nproc is not None
    shape = JobShape.of(cfg.parallel, nproc)
    part_dir = resolve_partitions(cfg, shape, rank=0)
    job = worker_config(cfg, part_dir)
    return launch(nproc, job, kernel=cfg.parallel.kernel, max_restarts=cfg.job.max_restarts)


def launch(nproc: int, job: Any, *, kernel: str, max_restarts: int = 0) -> int:
    """Start ``nproc`` workers that each run ``job`` (a TrainConfig: training; a PredictJob: inference;
    :func:`distgnn.runtime.forkserver.worker_main` dispatches)."""
    from distgnn.runtime import forkserver

    with worker_environment(nproc):
        # Workers are forked from a server that imports torch once, started now (it inherits the
        # environment set above) so that its imports overlap the kernel build check and the rendezvous.
        return _launch(nproc, job, kernel, max_restarts, forkserver.start())


def worker_config(cfg: TrainConfig, part_dir: str) -> TrainConfig:
    """What each worker gets: the job's config with the partitions resolved here and no ``--nproc`` nor
    ``--max-restarts`` (they are the workers; the agent restarts them)."""
    return replace(cfg, job=replace(cfg.job, partitions=part_dir, nproc=None, max_restarts=0))


def _launch(nproc: int, job: Any, kernel: str, max_restarts: int, start_method: str) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from distgnn.kernels.build import prebuild
    from distgnn.runtime import forkserver

    prebuild(kernel)  # compile the C++ kernels once here, not in every worker's first epoch
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"distgnn-{uuid.uuid4().hex[:12]}",
        rdzv_backend=loopback.register_backend(),  # torch's c10d rendezvous on a loopback-only store
        rdzv_endpoint=f"{loopback.LOOPBACK}:0",
        local_addr=loopback.LOOPBACK,  # MASTER_ADDR: the workers' store listens on loopback only too
        max_restarts=max_restarts,
        monitor_interval=0.1,
        start_method=start_method,
    )
    if "LOGLEVEL" not in os.environ:
        quiet_agent_warnings()
    try:
        elastic_launch(config, entrypoint=forkserver.worker_main)(job)
    except SignalException as sig:  # SIGINT/SIGTERM here: forwarded to the workers, which stopped cleanly
        return 128 + int(sig.sigval)
    except ChildFailedError as err:
        codes = {f.exitcode for f in err.failures.values()}
        if codes <= INTERRUPTED:  # the workers themselves were signalled; rank 0 printed the line
            return max(codes)
        rank, failure = min(
            err.failures.items(), key=lambda kv: (cause_rank(kv[1].exitcode), kv[1].timestamp)
        )
        code = failure.exitcode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"failed with exit code {code}"
        raise DistGNNError(f"worker rank {rank} {how}; the other workers were stopped") from None
    return 0


@contextlib.contextmanager
def worker_environment(nproc: int) -> Iterator[None]:
    """The launcher's environment, which its workers inherit, while the job runs."""
    saved = os.environ.get("OMP_NUM_THREADS")
    if saved is None:  # as torchrun does: P processes should not each spawn one thread per core
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    # A restarted group must not reuse the agent's store: its keys from the failed attempt send the new
    # workers to dead peers (pytorch/pytorch#135712). Opting out gives every attempt a fresh store.
    os.environ.setdefault(SHARE_STORE_OPT_OUT, "1")
    if "lo" in {name for _, name in socket.if_nameindex()}:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo's sockets: loopback only, as the stores
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def cause_rank(exitcode: int) -> int:
    """How likely a worker's exit code is the job's root cause (lower: likelier): distgnn's own error
    (exit 2), then any other failure (a bug, a signal: killed by the OOM killer or by its watchdog), last
    a rank that only stopped because a peer failed (exit 3). Ties go to whichever the agent saw first."""
    if exitcode == DistGNNError.exit_code:
        return 0
    return 2 if exitcode == PeerFailedError.exit_code else 1


def quiet_agent_warnings() -> None:
    """Keep the elastic agent's errors, one line each, but not its warnings ("Sending process N closing
    signal SIGTERM" on every restart or Ctrl-C) nor the traceback it logs with a failed worker's exit
    code: distgnn says what happened in one line of its own."""
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith(AGENT_LOGGERS) and isinstance(logger, logging.Logger):
            logger.setLevel(max(logger.level, logging.ERROR))
            logger.addFilter(_without_traceback)


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True
