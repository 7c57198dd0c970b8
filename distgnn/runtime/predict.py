"""``distgnn predict``: a trained model over every node of a graph, outputs in the graph's original order.

Each rank loads the whole model (from a checkpoint directory, gathered as ``distgnn export`` does, or from
an exported file) and runs it over its part with the graph strategy's propagation: full-graph inference
is exact on any number of parts, whatever strategy trained the model, so the process count need not be
the training one. The outputs (the logits, or with ``layer`` the input of that layer: the embeddings
after ``layer`` layers) land in one ``.npy`` of ``[num_nodes, width]`` rows in original node-id order:
rank 0 creates a temporary file, every rank writes its rows into it (memory-mapped: nothing is gathered
in one process; several nodes need a shared filesystem), and rank 0 renames it into place, so a failed
run leaves no partial output.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from distgnn.checkpoint.export import gather_model
from distgnn.comm.layout import ProcessLayout
from distgnn.config import DEFAULT_TIMEOUT_S, JobShape, ParallelConfig, TrainConfig
from distgnn.errors import DistGNNError
from distgnn.models.exported import model_from, read_exported
from distgnn.parallel.build import build_strategy
from distgnn.partitioning import load_meta
from distgnn.runtime import failure, watchdog
from distgnn.runtime.preflight import require_part, writable_dir
from distgnn.runtime.worker import report

PROG = "distgnn predict"
DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass(frozen=True)
class PredictJob:
    """What every prediction worker is handed."""

    model: str  # a checkpoint directory (its newest complete set) or a `distgnn export` file
    partitions: str
    out: str
    layer: int | None = None  # None: the logits; L: the input of layer L (embeddings after L layers)
    dtype: str = "float32"
    kernel: str = "auto"
    timeout: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise DistGNNError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.layer is not None and self.layer < 1:
            raise DistGNNError(f"--layer must be >= 1, got {self.layer}")
        if not str(self.out).endswith(".npy"):
            raise DistGNNError(f"--out must name a .npy file, got {self.out}")


def load_model_dict(source: str | os.PathLike) -> dict:
    """The exported-model dict of a checkpoint directory or an exported file."""
    return gather_model(source) if Path(source).is_dir() else read_exported(source)


def run_predict(job: PredictJob, layout: ProcessLayout | None = None) -> int:
    """One prediction process; returns its exit code, having printed what went wrong in one line."""
    try:
        predict(job, layout)
    except DistGNNError as err:
        return report(PROG, err, int(os.environ.get("LOCAL_RANK", "0")))
    return 0


def predict(job: PredictJob, layout: ProcessLayout | None = None) -> None:
    """Join the group (torchrun's environment, or ``layout``), check this rank's part, predict, write."""
    world = layout.world_size if layout is not None else int(os.environ.get("WORLD_SIZE", "1"))
    rank = layout.rank if layout is not None else int(os.environ.get("RANK", "0"))
    meta = load_meta(job.partitions)
    num_parts = int(meta["num_parts"])
    if num_parts != world:
        noun = "process" if world == 1 else "processes"
        raise DistGNNError(
            f"partition directory {job.partitions} has {num_parts} parts but the job has {world} {noun}; "
            f"run with --nproc {num_parts}"
        )
    data = load_model_dict(job.model)  # every rank: a bad file is one line before any group exists
    if rank == 0:
        writable_dir(Path(job.out).parent, "--out directory")
    if world > 1:
        watchdog.start(rank, grace=job.timeout)
    own = layout is None
    try:
        layout = ProcessLayout.init_from_env(timeout=job.timeout) if own else layout
        try:
            require_part(job.partitions, layout, JobShape.of(ParallelConfig(), world))
            with failure.reported(layout.rank, layout.world_size, layout.store):
                rows, keys, num_nodes = predict_part(job, data, meta, layout)
                write_rows(job.out, rows, keys, num_nodes, job.dtype, layout)
        finally:
            if own:
                layout.destroy()
    finally:
        watchdog.stop()


def predict_part(
    job: PredictJob, data: dict, meta: dict, layout: ProcessLayout
) -> tuple[Tensor, Tensor, int]:
    """(this rank's output rows, their original node ids, the graph's node count); ``meta``: the partition
    directory's ``meta.json``."""
    c = data["config"]
    cfg = TrainConfig.from_flat(
        model=c["name"], layers=c["layers"], hidden=c["hidden"], heads=c["heads"], dropout=c["dropout"],
        kernel=job.kernel, partitions=job.partitions, progress=False,
    )  # fmt: skip
    if (int(meta["feat_dim"]), int(meta["num_classes"])) != (c["in_dim"], c["out_dim"]):
        raise DistGNNError(
            f"the model was trained on {c['in_dim']} features and {c['out_dim']} classes; "
            f"{job.partitions} has {meta['feat_dim']} and {meta['num_classes']}"
        )
    stop = c["layers"] if job.layer is None else job.layer
    if stop > c["layers"]:
        raise DistGNNError(f"--layer {stop}: the model has {c['layers']} layers")
    strategy = build_strategy(cfg, job.partitions, layout)
    model = model_from(data).to(layout.device)
    strategy.attach(model)
    with torch.no_grad():
        rows = model.forward_range(strategy.x, strategy.prop, 0, stop)
    strategy.flush()
    return rows.reshape(rows.shape[0], -1), strategy.data.keys, int(meta["num_nodes"])


def write_rows(
    out: str, rows: Tensor, keys: Tensor, num_nodes: int, dtype: str, layout: ProcessLayout
) -> None:
    """Every rank's rows into one ``[num_nodes, width]`` .npy at their original ids, renamed into place."""
    target = Path(out)
    tmp = target.parent / f".{target.name}.partial.npy"
    width = rows.shape[1]
    try:
        if layout.rank == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(tmp, mode="w+", dtype=DTYPES[dtype], shape=(num_nodes, width)).flush()
        _barrier(layout)
        table = np.load(tmp, mmap_mode="r+", allow_pickle=False)
        table[keys.cpu().numpy()] = rows.detach().float().cpu().numpy().astype(DTYPES[dtype])
        table.flush()
        del table
        _barrier(layout)
        if layout.rank == 0:
            os.replace(tmp, target)
    except BaseException:
        if layout.rank == 0:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def _barrier(layout: ProcessLayout) -> None:
    if layout.is_distributed:
        dist.barrier(group=layout.group)
