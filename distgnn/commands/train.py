"""`distgnn train`: full-graph training on a partition directory, one process per part.

Three ways to start it, one code path:

- under torchrun (``torchrun --nproc_per_node P -m distgnn train ...``): RANK/WORLD_SIZE come from the
  launcher;
- ``--nproc P``: this process becomes a local launcher, starting P workers through torch's elastic
  agent (the engine behind torchrun) with the same arguments minus ``--nproc``;
- neither: a single process (world size 1).

Without ``--partitions`` the built-in synthetic graph is partitioned once into ``runs/`` (cached per
process count) and trained on.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from distgnn.commands.options import add_config_arguments, config_argv, config_from_args
from distgnn.config import TrainConfig
from distgnn.errors import DistGNNError, PeerFailedError

if TYPE_CHECKING:
    from distgnn.runtime.interrupt import StopRequest

SYNTHETIC_SPEC = "synthetic"
CACHE_ROOT = Path("runs")
DEFAULT_TIMEOUT_S = 300.0
SHARE_STORE_OPT_OUT = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
AGENT_LOGGERS = ("torch.distributed.elastic", "torch.multiprocessing")  # the agent's and its worker pool's
INTERRUPTED = {128 + signal.SIGINT, 128 + signal.SIGTERM}  # exit codes of a worker stopped by a signal

EPILOG = """\
examples:
  distgnn train                                   # synthetic graph, 1 process (partitioned into runs/ once)
  distgnn train --nproc 2                         # the same on 2 local processes
  distgnn partition --dataset data/cora.npz --parts 4 --out runs/cora-4
  distgnn train --partitions runs/cora-4 --nproc 4 --feature-norm row --metrics-out runs/cora.jsonl
  torchrun --nproc_per_node 4 -m distgnn train --partitions runs/cora-4 --model gat --hidden 8 --heads 8
  distgnn train --partitions runs/cora-4 --nproc 4 --model deepgcn --layers 32 --hidden 64 \\
      --halo-staleness 1 --comm-dtype bf16
  distgnn train --partitions runs/cora-4 --nproc 4 --checkpoint-dir runs/ckpt --checkpoint-every 50
  distgnn train --partitions runs/cora-4 --nproc 4 --checkpoint-dir runs/ckpt --resume
  distgnn train --partitions runs/cora-4 --nproc 4 --checkpoint-dir runs/ckpt --checkpoint-every 10 \\
      --max-restarts 3 --checkpoint-on-exit     # survive a killed worker; save on Ctrl-C / SIGTERM
  distgnn partition --dataset data/cora.npz --parts 1 --out runs/cora-1
  distgnn train --partitions runs/cora-1 --nproc 4 --strategy pipeline --stages 4 --chunks 8 \
      --model deepgcn --layers 16 --hidden 64 --exact-epochs 10

The number of processes must be stages x the number of parts (graph: the parts; pipeline: the stages,
on a 1-part directory). Metrics: one JSON object per epoch (epoch, loss, train/val/test accuracy, epoch_s,
compute_s, comm_s, exposed_comm_s, comm_bytes, bubble_s, history_bytes, stale_read_frac) written by rank 0
to --metrics-out.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a GNN on a partition directory (one process per part)",
        description=(
            "Full-graph GNN training: every epoch computes every layer on every node. --strategy graph "
            "(default): each process owns one part and exchanges halo rows with its peers, exact (equal to "
            "single-process training) unless --halo-staleness 1 or a 16-bit --comm-dtype is asked for. "
            "--strategy pipeline: each process runs a range of layers over the whole graph while chunks "
            "stream through the stages; neighbours in chunks not yet computed this epoch are read from a "
            "historical-embedding cache (last epoch's rows): exact with --chunks 1, approximate otherwise. "
            "Evaluation is always exact."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--partitions", metavar="DIR", help="partition directory (default: synthetic graph in runs/)"
    )
    add_config_arguments(p)
    p.add_argument("--nproc", type=int, metavar="P", help="start P local worker processes (torch elastic)")
    p.add_argument(
        "--max-restarts",
        type=int,
        default=0,
        metavar="K",
        help="with --nproc: restart the worker group up to K times when a worker dies; it resumes from "
        "the newest complete checkpoint in --checkpoint-dir (under torchrun: torchrun --max-restarts)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SEC",
        help=f"process-group timeout: a dead peer ends the job after SEC (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from distgnn.kernels import isa

    cfg = config_from_args(args)
    isa.chosen()  # a DISTGNN_CPU_ISA this CPU cannot run is one line here, before any process starts
    if args.timeout <= 0:
        raise DistGNNError(f"timeout must be > 0 seconds, got {args.timeout}")
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if args.max_restarts < 0:
        raise DistGNNError(f"max-restarts must be >= 0, got {args.max_restarts}")
    if args.max_restarts and (args.nproc is None or launched):
        raise DistGNNError("--max-restarts needs --nproc (under torchrun, give torchrun --max-restarts)")
    if args.nproc is not None:
        if args.nproc < 1:
            raise DistGNNError(f"nproc must be >= 1, got {args.nproc}")
        if launched and int(os.environ["WORLD_SIZE"]) != args.nproc:
            raise DistGNNError(
                f"--nproc {args.nproc} conflicts with the launcher's WORLD_SIZE={os.environ['WORLD_SIZE']}"
            )
        if not launched:
            return launch_local(args)
    return worker(args, cfg)


# -- the local launcher -------------------------------------------------------------------------------


def launch_local(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` workers with torch's elastic agent (what torchrun runs), standalone mode."""
    from distgnn.runtime import forkserver

    nproc = args.nproc
    part_dir = resolve_partitions(args, config_from_args(args), nproc, rank=0)
    with worker_environment(nproc):
        # Workers are forked from a server that imports torch once, started now (it inherits the
        # environment set above) so that its imports overlap the kernel build check and the rendezvous.
        return _launch(args, part_dir, forkserver.start())


def _launch(args: argparse.Namespace, part_dir: str, start_method: str) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from distgnn.kernels.build import prebuild
    from distgnn.runtime import forkserver, loopback

    cfg = config_from_args(args)
    prebuild(cfg.parallel.kernel)  # compile the C++ kernels once here, not in every worker's first epoch
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=args.nproc,
        run_id=f"distgnn-{uuid.uuid4().hex[:12]}",
        rdzv_backend=loopback.register_backend(),  # torch's c10d rendezvous on a loopback-only store
        rdzv_endpoint=f"{loopback.LOOPBACK}:0",
        local_addr=loopback.LOOPBACK,  # MASTER_ADDR: the workers' store listens on loopback only too
        max_restarts=args.max_restarts,
        monitor_interval=0.1,
        start_method=start_method,
    )
    if "LOGLEVEL" not in os.environ:
        quiet_agent_warnings()
    try:
        elastic_launch(config, entrypoint=forkserver.worker_main)("train", *worker_argv(args, part_dir))
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


def worker_argv(args: argparse.Namespace, part_dir: str) -> list[str]:
    """The arguments a worker gets: the config the user gave, minus ``--nproc``, plus the partitions."""
    return ["--partitions", part_dir, "--timeout", str(args.timeout), *config_argv(config_from_args(args))]


# -- partitions ---------------------------------------------------------------------------------------


def synthetic_cache(num_parts: int) -> Path:
    return CACHE_ROOT / f"synthetic-{num_parts}p"


def expected_parts(cfg: TrainConfig, world_size: int) -> int:
    """The partition count a job of ``world_size`` processes needs: one part per graph-parallel rank."""
    stages = cfg.parallel.stages
    if cfg.parallel.strategy == "pipeline" and world_size != stages:
        raise DistGNNError(
            f"--strategy pipeline runs one process per stage: {stages} stages need {stages} processes, "
            f"the job has {world_size}"
        )
    if world_size % stages:
        raise DistGNNError(
            f"{world_size} processes cannot run {stages} pipeline stages: the process count must be "
            "stages x graph parts"
        )
    return world_size // stages


def resolve_partitions(
    args: argparse.Namespace, cfg: TrainConfig, world_size: int, *, rank: int, timeout: float = 0.0
) -> str:
    """The partition directory to train on, checked against the job's shape before any process group.

    Without ``--partitions``, the synthetic graph is partitioned into ``runs/synthetic-<P>p`` once:
    the first local process writes it (atomically), the others wait for it to appear.
    """
    from distgnn.partitioning import load_meta

    parts = expected_parts(cfg, world_size)
    if args.partitions:
        part_dir = args.partitions
    else:
        part_dir = str(synthetic_cache(parts))
        if not (Path(part_dir) / "meta.json").exists():
            if rank == 0:
                from distgnn.data import load_graph
                from distgnn.partitioning import partition_graph

                progress = cfg.run.progress
                if progress:
                    print(
                        f"no --partitions: partitioning the synthetic graph into {part_dir}", file=sys.stderr
                    )
                graph = load_graph(SYNTHETIC_SPEC, progress=progress)
                partition_graph(graph, parts, part_dir, progress=progress)
            else:
                _wait_for(Path(part_dir) / "meta.json", timeout)
    num_parts = int(load_meta(part_dir)["num_parts"])
    if num_parts != parts:
        if cfg.parallel.strategy != "graph":
            raise DistGNNError(
                f"partition directory {part_dir} has {num_parts} parts but {cfg.parallel.strategy} training "
                f"on {world_size} processes with {cfg.parallel.stages} stages needs {parts}"
            )
        noun = "process" if world_size == 1 else "processes"
        raise DistGNNError(
            f"partition directory {part_dir} has {num_parts} parts but the job has {world_size} {noun}; "
            f"run with --nproc {num_parts} (or torchrun --nproc_per_node {num_parts})"
        )
    return part_dir


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise DistGNNError(f"timed out after {timeout:g}s waiting for rank 0 to write {path}")
        time.sleep(0.2)


# -- one worker ---------------------------------------------------------------------------------------


def worker(args: argparse.Namespace, cfg: TrainConfig) -> int:
    """One training process. SIGINT/SIGTERM stop every rank after the current epoch (one line from
    rank 0, exit 130/143; with --checkpoint-on-exit a checkpoint first), not with a traceback per rank."""
    from distgnn.runtime.interrupt import StopRequest, TrainingInterrupted

    with StopRequest().installed() as stop:
        try:
            return train_worker(args, cfg, stop)
        except TrainingInterrupted as interrupted:
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"distgnn train: {interrupted}", file=sys.stderr, flush=True)
            return interrupted.exit_code


def train_worker(args: argparse.Namespace, cfg: TrainConfig, stop: StopRequest) -> int:
    """Join the group, load this rank's part, train, report on rank 0."""
    from distgnn.comm.layout import ProcessLayout
    from distgnn.runtime import watchdog
    from distgnn.runtime.preflight import has_meta, require_part
    from distgnn.train import train_partition

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    # A part-count mismatch fails on every rank at once, before the group exists; a node lacking the
    # directory or its part is found by all ranks together once the group exists (distgnn.runtime.preflight).
    if args.partitions and world > 1 and not has_meta(args.partitions):
        part_dir = args.partitions
    else:
        part_dir = resolve_partitions(args, cfg, world, rank=local_rank, timeout=args.timeout)
    if world > 1:  # a rank stopped (SIGSTOP) longer than its peers wait is killed (distgnn.runtime.watchdog)
        watchdog.start(rank, grace=args.timeout)
    try:
        layout = ProcessLayout.init_from_env(timeout=args.timeout)
        try:
            require_part(part_dir, layout, expected_parts(cfg, world))  # one line on every rank, no hang
            train_partition(cfg, part_dir, layout, stop)
        finally:
            layout.destroy()
    finally:
        watchdog.stop()
    return 0
