"""Workers of ``distgnn train --nproc``, forked from a server that has imported torch once.

A fresh interpreter per worker spends seconds of CPU importing torch and torch._dynamo (which
``torch.optim`` loads), and an elastic restart pays it again for every worker. Instead the launcher starts
multiprocessing's forkserver with those modules preloaded (:func:`start`, before the workers are needed,
so the import overlaps the launcher's own set-up) and torch's elastic agent forks each worker, and each
restarted worker, from it (``LaunchConfig(start_method="forkserver")`` with :func:`worker_main` as the
entrypoint). A worker runs the same worker entry a torchrun worker does (:mod:`distgnn.runtime.worker`),
handed the job's config.

The forkserver reads its environment when it starts: the launcher sets ``OMP_NUM_THREADS``,
``GLOO_SOCKET_IFNAME`` and the like before calling :func:`start`. It ignores SIGINT (multiprocessing's
doing) and SIGTERM (:mod:`distgnn.runtime.forkserver_init`), so a signal sent to the whole process group
(Ctrl-C, Slurm's SIGTERM before preemption) reaches the launcher and the workers but leaves the server
up: were it to die, the launcher would see every worker as exited and stop waiting for them.

As with any multiprocessing start method but fork, a script that calls ``distgnn.cli.main([..., "--nproc",
...])`` itself needs the ``if __name__ == "__main__":`` guard (each worker imports the script's main
module); the ``distgnn`` command and ``python -m distgnn`` have it. The server lives as long as the
process that started it and keeps the environment it started with.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distgnn.config import TrainConfig
    from distgnn.runtime.predict import PredictJob

START_METHOD = "forkserver"
NAME_PREFIX = "distgnn-r"  # a worker's process name: distgnn-r<RANK> (15 characters at most on Linux)
# What a worker imports before its first epoch (seconds of CPU each time, in a fresh interpreter).
PRELOAD = [
    "distgnn.runtime.forkserver_init",
    "torch",
    "torch._dynamo",
    "torch.distributed",
    "distgnn.runtime.worker",
    "distgnn.kernels.cpu",
]


def start() -> str:
    """Start the preloading forkserver now (it imports in the background); returns the start method."""
    multiprocessing.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()
    return START_METHOD


def worker_main(job: TrainConfig | PredictJob) -> None:
    """A worker: :func:`distgnn.runtime.worker.run_worker` (a training config) or
    :func:`distgnn.runtime.predict.run_predict` (a prediction job) in this forked process, ending with its
    exit code.

    torch's elastic agent counts a returned function as success and a process's non-zero exit code as
    a failure, so a non-zero code leaves through ``SystemExit``; an unexpected exception prints its
    traceback and exits 1, as it would in a fresh interpreter."""
    from distgnn.runtime.predict import PredictJob, run_predict
    from distgnn.runtime.worker import run_worker

    # This process's own default start method, as in a fresh interpreter, not the forkserver's (whose
    # locks are named semaphores: tqdm's would be reported as leaked when a worker is killed).
    multiprocessing.set_start_method(None, force=True)
    name_process(os.environ.get("RANK"))
    try:
        code = run_predict(job) if isinstance(job, PredictJob) else run_worker(job)
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stderr.flush()
    if code:
        sys.exit(code)


def name_process(rank: str | None) -> None:
    """Name this worker ``distgnn-r<RANK>`` (``ps``, ``top``). A forked worker's ``/proc/PID/environ``
    is the forkserver's start environment, without the ``RANK`` the agent set after the fork, so tools
    that find ranks from outside (benchmarks/rank_memory.py) read the name instead."""
    if rank is None:
        return
    with contextlib.suppress(OSError):  # no /proc (not Linux): the name is only a convenience
        Path("/proc/self/comm").write_text(f"{NAME_PREFIX}{rank}")
