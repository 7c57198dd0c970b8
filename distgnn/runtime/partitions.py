"""Which partition directory a worker trains on: ``--partitions``, or the built-in synthetic graph
partitioned once into ``runs/synthetic-<P>p`` (by the first local process; the others wait for it).
:func:`partition_once` does the same for any graph (``examples/train_script.py``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from distgnn.config import DEFAULT_TIMEOUT_S, JobShape, TrainConfig
from distgnn.errors import DistGNNError

SYNTHETIC_SPEC = "synthetic"
CACHE_ROOT = Path("runs")


def synthetic_cache(num_parts: int) -> Path:
    return CACHE_ROOT / f"synthetic-{num_parts}p"


def resolve_partitions(cfg: TrainConfig, shape: JobShape, *, rank: int, timeout: float = 0.0) -> str:
    """The partition directory to train on, checked against the job's shape before any process group."""
    from distgnn.partitioning import load_meta

    parts = shape.parts
    if cfg.job.partitions:
        part_dir = cfg.job.partitions
    else:
        part_dir = str(synthetic_cache(parts))
        progress = cfg.run.progress
        if progress and rank == 0 and not (Path(part_dir) / "meta.json").exists():
            print(f"no --partitions: partitioning the synthetic graph into {part_dir}", file=sys.stderr)
        partition_once(SYNTHETIC_SPEC, parts, part_dir, rank=rank, timeout=timeout, progress=progress)
    num_parts = int(load_meta(part_dir)["num_parts"])
    if num_parts != parts:
        world = shape.world
        if shape.strategy != "graph":
            raise DistGNNError(
                f"partition directory {part_dir} has {num_parts} parts but {shape.strategy} training "
                f"on {world} processes with {shape.stages} stages needs {parts}"
            )
        noun = "process" if world == 1 else "processes"
        raise DistGNNError(
            f"partition directory {part_dir} has {num_parts} parts but the job has {world} {noun}; "
            f"run with --nproc {num_parts} (or torchrun --nproc_per_node {num_parts})"
        )
    return part_dir


def partition_once(
    spec: str,
    parts: int,
    out_dir: str | Path,
    *,
    rank: int,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: bool = False,
) -> str:
    """``out_dir``, holding the graph ``spec`` names (:func:`distgnn.data.load_graph`) in ``parts`` parts:
    written by local rank 0 unless its ``meta.json`` is there; the other local ranks wait up to
    ``timeout`` seconds for it. Safe before any process group exists: a partition directory appears only
    once it is complete (``partition_graph`` writes it elsewhere and renames it into place)."""
    meta = Path(out_dir) / "meta.json"
    if not meta.exists():
        if rank == 0:
            from distgnn.data import load_graph
            from distgnn.partitioning import partition_graph

            partition_graph(load_graph(spec, progress=progress), parts, out_dir, progress=progress)
        else:
            _wait_for(meta, timeout)
    return str(out_dir)


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise DistGNNError(f"timed out after {timeout:g}s waiting for rank 0 to write {path}")
        time.sleep(0.2)
