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
Needs the ``ray`` extra: ``pip install 'distgnn[ray]'``.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from distgnn.errors import DistGNNError

if TYPE_CHECKING:
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


def train_loop(config: dict) -> None:
    """One Ray Train worker: Ray's process group -> ProcessLayout -> the worker entry every launcher uses."""
    from distgnn.comm.layout import ProcessLayout, store_from_env
    from distgnn.kernels.build import prebuild
    from distgnn.runtime.worker import run_worker

    cfg = config["cfg"]
    prebuild(cfg.parallel.kernel)  # a no-op where the launcher (or another worker on this node) built it
    layout = ProcessLayout.from_group(store=store_from_env())  # Ray's env:// group and its store
    code = run_worker(cfg, layout)
    if code:  # the worker printed its one line; Ray reports the failed worker to the driver
        raise DistGNNError(f"worker rank {layout.rank} exited with code {code}")


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
        ray.init(
            num_cpus=max(os.cpu_count() or 1, int(own.workers * own.cpus_per_worker + 0.999)),
            include_dashboard=own.dashboard,
            dashboard_host=own.dashboard_host,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,  # fits a container's 64 MB-ish /dev/shm better
            _node_ip_address="127.0.0.1",
        )
    backend = "nccl" if own.gpu else "gloo"
    try:
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"cfg": cfg},
            torch_config=TorchConfig(backend=backend, timeout_s=int(cfg.job.timeout)),
            scaling_config=ScalingConfig(
                num_workers=own.workers, use_gpu=own.gpu, resources_per_worker={"CPU": own.cpus_per_worker}
            ),
            run_config=RunConfig(
                name=f"distgnn-{uuid.uuid4().hex[:8]}", storage_path=str(Path(own.storage).resolve())
            ),
        )
        trainer.fit()
    except Exception as err:  # Ray wraps a worker's error; report its last line
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise DistGNNError(f"Ray training failed: {lines[-1] if lines else type(err).__name__}") from err
    finally:
        ray.shutdown()
    return 0


def main() -> int:
    try:
        return run(sys.argv[1:])
    except DistGNNError as err:
        print(f"launch/ray_train.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
