"""Which partition directory a worker trains on: ``--partitions``, or the built-in synthetic graph
partitioned once into ``runs/synthetic-<P>p`` (by the first local process; the others wait for it)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from distgnn.config import JobShape, TrainConfig
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


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise DistGNNError(f"timed out after {timeout:g}s waiting for rank 0 to write {path}")
        time.sleep(0.2)
