#!/usr/bin/env python
"""Run `distgnn train` on a Ray cluster with Ray Train's TorchTrainer (one worker per part/device).

    python launch/ray_train.py --workers 4 [--address ray://head:10001] [--gpu] -- \\
        --partitions /shared/parts --model gcn --epochs 200 --metrics-out /shared/runs/m.jsonl

Everything after ``--`` is a ``distgnn train`` option (``--nproc`` excepted: ``--workers`` sets the size).
Ray starts the workers and their process group (gloo on CPU, NCCL with ``--gpu``); each worker wraps it
with ``ProcessLayout.from_group()`` and runs the worker entry every launcher uses
(``distgnn.runtime.worker.run_worker``: the part check, the watchdog, one line per failure).
Partitions, metrics and checkpoints are paths every worker can read: shared storage on a cluster.
Without ``--address`` a local Ray instance is started; its dashboard is off unless ``--dashboard`` (then
bound to 127.0.0.1 unless ``--dashboard-host``).

SIGINT/SIGTERM act as under torchrun: sent to this script (Ctrl-C, a scheduler's stop) or to a worker
process (a preemption), every worker stops after the same epoch (``--checkpoint-on-exit``: saved first),
this script prints the workers' one ``interrupted`` line and exits 130/143. Ray Train runs the training
function off its actor's main thread, so neither reaches it as a signal: this script relays its own
through a small actor the workers poll (:class:`StopBoard`), and each worker's main thread records its
own (:func:`distgnn.runtime.interrupt.record_signals`, installed by the torch backend before training).
A second signal to this script ends the job at once, not waiting for the checkpoint.
Needs the ``ray`` extra: ``pip install 'distgnn[ray]'``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from distgnn.errors import DistGNNError

if TYPE_CHECKING:
    from ray.actor import ActorHandle
    from ray.train.torch import TorchConfig, TorchTrainer

    from distgnn.config import TrainConfig

# A local instance (no --address), set before Ray is imported (it reads them once) and inherited by its
# processes: node address 127.0.0.1 rather than the host's outward IP, so the GCS, raylet, agents and
# workers listen on loopback only; no usage-stats reporting; no idle workers prestarted for a driver
# that runs no tasks (two processes' start-up saved on a small machine). A caller's own values win.
LOCAL_RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_prestart_worker_first_driver": "0",
}
LOCAL_OBJECT_STORE_BYTES = 80 * 2**20  # Ray's minimum is 75 MiB; only the job's arguments pass through it
PATH_OPTIONS = ("job.partitions", "run.metrics_out", "run.checkpoint_dir")  # made absolute for the workers
RELAYED = (signal.SIGINT, signal.SIGTERM)  # to the workers, which stop after the current epoch
JOIN_S = 0.2  # how often the driver's main thread looks at the signals it got
BOARD_TIMEOUT_S = 30.0  # a call to the job's StopBoard actor


def parse(argv: list[str]) -> tuple[argparse.Namespace, TrainConfig]:
    """(launcher options, the ``distgnn train`` config) from ``LAUNCHER_OPTS -- TRAIN_OPTS``."""
    from distgnn.cli import build_parser
    from distgnn.commands.options import config_from_args

    if "--" in argv:
        cut = argv.index("--")
        own, rest = argv[:cut], argv[cut + 1 :]
    else:
        own, rest = argv, []
    p = argparse.ArgumentParser(prog="launch/ray_train.py", description=__doc__.split("\n")[1])
    p.add_argument("--workers", type=int, required=True, metavar="W", help="training workers (= parts)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker, NCCL (default: CPU, gloo)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C", help="default 1")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--dashboard", action="store_true", help="start the dashboard of the local instance")
    p.add_argument("--dashboard-host", default="127.0.0.1", help="its bind address (default 127.0.0.1)")
    p.add_argument("--storage", default="runs/ray", help="Ray Train's run storage (default runs/ray)")
    own_args = p.parse_args(own)
    if own_args.workers < 1:
        raise DistGNNError(f"--workers must be >= 1, got {own_args.workers}")
    train_args = build_parser().parse_args(["train", *rest])
    for name in PATH_OPTIONS:
        value = getattr(train_args, name)
        if value is not None:
            setattr(train_args, name, os.path.abspath(value))
    cfg = config_from_args(train_args)  # bad values fail here, before any worker starts
    if cfg.job.nproc is not None:
        raise DistGNNError("--nproc is not a Ray option: the job size is --workers")
    if not cfg.job.partitions:
        raise DistGNNError("--partitions is required (a directory every Ray worker can read)")
    return own_args, cfg


class StopBoard:
    """A Ray actor, one per job: the signal this script got, polled by every worker (their training runs
    off the main thread, where no handler can catch a signal), and rank 0's ``interrupted`` line back."""

    def __init__(self) -> None:
        self.signum, self.outcome = 0, None

    def request(self, signum: int) -> None:
        self.signum = self.signum or signum

    def requested(self) -> int:
        return self.signum

    def report(self, line: str, code: int) -> None:
        self.outcome = (line, code)

    def result(self) -> tuple[str, int] | None:
        return self.outcome


def train_loop(config: dict) -> None:
    """One Ray Train worker: Ray's process group -> ProcessLayout -> the worker entry every launcher uses."""
    import ray

    from distgnn.comm.layout import ProcessLayout, store_from_env
    from distgnn.kernels.build import prebuild
    from distgnn.runtime import interrupt
    from distgnn.runtime.worker import run_worker

    cfg, board = config["cfg"], config["board"]
    prebuild(cfg.parallel.kernel)  # a no-op where the launcher (or another worker on this node) built it
    layout = ProcessLayout.from_group(store=store_from_env())  # Ray's env:// group and its store

    def requested() -> int:  # this actor's own SIGINT/SIGTERM, else the driver's
        return interrupt.received_signal() or ray.get(board.requested.remote(), timeout=BOARD_TIMEOUT_S)

    stopped = []
    with interrupt.StopRequest().polling(requested) as stop:
        code = run_worker(cfg, layout, stop, on_interrupt=stopped.append)
    if stopped:  # every rank stopped after the same epoch; the driver prints rank 0's line
        if layout.rank == 0:
            ray.get(board.report.remote(str(stopped[0]), code), timeout=BOARD_TIMEOUT_S)
        return
    if code:  # the worker printed its one line; Ray reports the failed worker to the driver
        raise DistGNNError(f"worker rank {layout.rank} failed with exit code {code}")


def torch_config(config_cls: type[TorchConfig], backend: str, timeout_s: int) -> TorchConfig:
    """Ray's TorchConfig whose backend, before training starts, makes each worker's main thread record its
    SIGINT/SIGTERM for the training thread (Ray's own handler would end the actor mid-epoch)."""
    from distgnn.runtime.interrupt import record_signals

    class SignalsBackend(config_cls().backend_cls):
        def on_training_start(self, worker_group, backend_config) -> None:
            super().on_training_start(worker_group, backend_config)
            worker_group.execute(record_signals)  # runs on each worker actor's main thread

    class SignalsTorchConfig(config_cls):
        @property
        def backend_cls(self):
            return SignalsBackend

    return SignalsTorchConfig(backend=backend, timeout_s=timeout_s)


def fit_relaying_signals(trainer: TorchTrainer, board: ActorHandle) -> int:
    """``trainer.fit()`` in a thread (so Ray Train installs no SIGINT handler of its own, which would end
    the workers at once); meanwhile this main thread relays the first SIGINT/SIGTERM to the workers through
    ``board`` and, on a second, ends the job at once. Returns the job's exit code (0, or 128 + signal when
    the workers stopped on a signal), having printed the workers' ``interrupted`` line."""
    import ray

    got: list[int] = []
    failed: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            failed.append(err)

    fitting = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    previous = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in RELAYED}
    try:
        fitting.start()
        relayed = False
        while fitting.is_alive():
            fitting.join(JOIN_S)
            if got and not relayed:
                board.request.remote(got[0])
                relayed = True
            if len(got) > 1:  # ray.shutdown() (the caller's) then ends the workers
                name = signal.Signals(got[1]).name
                print(f"launch/ray_train.py: error: {name} again: stopped the workers at once, not waiting "
                      "for the checkpoint on exit", file=sys.stderr, flush=True)  # fmt: skip
                return 128 + got[1]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failed:
        raise failed[0]
    outcome = ray.get(board.result.remote(), timeout=BOARD_TIMEOUT_S)
    if outcome is None:
        return 0
    line, code = outcome
    print(f"distgnn train: {line}", file=sys.stderr, flush=True)
    return 128 + got[0] if got else code


def failure_line(err: Exception, actor_died: type) -> str:
    """One line for a failed run, as ``distgnn train --nproc`` says it: the worker that failed first and
    how (its own line, Ray-prefixed, came before). Ray Train's ``worker_failures`` holds one entry per
    failed rank: a worker whose process died (killed by its watchdog or the OOM killer, or crashed) comes
    first, then one that failed (exit code 2) before one a peer's failure stopped (3). Other errors: Ray's
    last line."""
    causes = []
    for rank, failure in sorted((getattr(err, "worker_failures", None) or {}).items()):
        if isinstance(getattr(failure, "health_check_failure", failure), actor_died):
            causes.append((0, f"worker rank {rank} died (its process was killed or crashed)"))
        elif exited := re.search(r"worker rank \d+ failed with exit code (\d+)", str(failure)):
            code = int(exited.group(1))
            causes.append((1 + (code == 3), f"worker rank {rank} failed with exit code {code}"))
    if causes:
        return f"{min(causes)[1]}; the other workers were stopped"
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"Ray training failed: {lines[-1] if lines else type(err).__name__}"


def _import_ray():
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError as err:
        raise DistGNNError(
            f"the Ray launcher needs Ray Train ({err.name or err} is missing): pip install 'distgnn[ray]'"
        ) from None
    return ray, RunConfig, ScalingConfig, TorchConfig, TorchTrainer


def start_local_ray(ray, **init_args) -> None:
    """``ray.init`` of a local instance; Ray's start-up timeout (a fixed 30 s for the raylet to register,
    which a machine busy with other jobs can overrun) becomes one line saying what to do."""
    try:
        ray.init(**init_args)
    except Exception as err:
        if "timed out during startup" not in str(err):
            raise
        ray.shutdown()
        raise DistGNNError(
            "Ray's local instance did not start within Ray's 30 s (is the machine busy with other jobs?): "
            "start one with `ray start --head` and pass --address auto"
        ) from None


def run(argv: list[str]) -> int:
    own, cfg = parse(argv)
    from distgnn.config import JobShape
    from distgnn.kernels.build import prebuild
    from distgnn.partitioning import load_meta

    shape = JobShape.of(cfg.parallel, own.workers)  # the same one line as every other launcher's
    num_parts = int(load_meta(cfg.job.partitions)["num_parts"])
    if num_parts != shape.parts:
        raise DistGNNError(
            f"{cfg.job.partitions} has {num_parts} parts; {own.workers} workers need "
            f"{shape.parts} for --strategy {cfg.parallel.strategy}"
        )
    if not own.address:
        os.environ.update({k: v for k, v in LOCAL_RAY_ENV.items() if k not in os.environ})
    ray, RunConfig, ScalingConfig, TorchConfig, TorchTrainer = _import_ray()
    if own.address:
        ray.init(address=own.address)
    else:
        prebuild(cfg.parallel.kernel)  # local instance: build once here, before the workers start
        start_local_ray(
            ray,
            num_cpus=max(os.cpu_count() or 1, int(own.workers * own.cpus_per_worker + 0.999)),
            include_dashboard=own.dashboard,
            dashboard_host=own.dashboard_host,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,  # fits a container's 64 MB-ish /dev/shm better
            _node_ip_address="127.0.0.1",
        )
    backend = "nccl" if own.gpu else "gloo"
    try:
        board = ray.remote(num_cpus=0)(StopBoard).remote()
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"cfg": cfg, "board": board},
            torch_config=torch_config(TorchConfig, backend, int(cfg.job.timeout)),
            scaling_config=ScalingConfig(
                num_workers=own.workers, use_gpu=own.gpu, resources_per_worker={"CPU": own.cpus_per_worker}
            ),
            run_config=RunConfig(
                name=f"distgnn-{uuid.uuid4().hex[:8]}", storage_path=str(Path(own.storage).resolve())
            ),
        )
        return fit_relaying_signals(trainer, board)
    except Exception as err:  # Ray wraps a worker's error
        raise DistGNNError(failure_line(err, ray.exceptions.RayActorError)) from err
    finally:
        ray.shutdown()


def main() -> int:
    try:
        return run(sys.argv[1:])
    except DistGNNError as err:
        print(f"launch/ray_train.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
