"""``distgnn profile sweep``: partition one graph at several part counts and tabulate the prediction.

Every row is one strategy on P devices (ranks):

- ``graph``: P parts, one rank each (graph-parallel);
- ``pipeline``: the whole graph (1 part) through P stages; a P larger than the model's layer count has
  no pipeline (every stage needs a layer), so that row is skipped and the reason recorded;
- ``hybrid``: S stages (``--stages``) times P / S parts; every P must be a multiple of S and S must be
  2 .. layers, else the sweep stops before any work with one line.

Each row is predicted with its own :class:`~distgnn.config.ParallelConfig`: the sweep's options (e.g.
``--chunks``, ``--comm-dtype``) at the row's strategy and stages (graph rows: 1 chunk).

Partitions are cached (``<cache>/<dataset>-<method>-p<G>``, a normal partition directory) and shared:
graph at P, hybrid at S * P and pipeline (G = 1) read the same directories, later sweeps (another model,
another network) reuse them, and only the cheap prediction is recomputed. The result is
``<out>/sweep.json`` (strict JSON, ``format`` ``distgnn-sweep``), which ``distgnn profile report`` draws.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from distgnn import jsonio
from distgnn.config import ParallelConfig
from distgnn.errors import DistGNNError
from distgnn.metrics import human_bytes
from distgnn.models.registry import build_model
from distgnn.profile.exchanges import ModelSpec
from distgnn.profile.network import Network
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.predict import predict_volume
from distgnn.profile.strategies import KNOWN_STRATEGIES, check_options, predictor
from distgnn.profile.tables import table

SWEEP_FORMAT = "distgnn-sweep"
SWEEP_VERSION = 1


def parse_parts(text: str) -> list[int]:
    """``"2,4,8"`` -> [2, 4, 8] (sorted, unique, each >= 1)."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise DistGNNError(f"--parts must be comma-separated integers, got {text!r}") from None
    if not values or values[0] < 1:
        raise DistGNNError(f"--parts needs part counts >= 1, got {text!r}")
    return values


def cache_name(dataset: str, method: str, parts: int) -> str:
    """A readable, collision-free directory name for one cached partition."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(dataset).name if os.path.exists(dataset) else dataset)[:40]
    digest = hashlib.sha256(
        os.path.abspath(dataset).encode() if os.path.exists(dataset) else dataset.encode()
    )
    return f"{slug.strip('-')}-{digest.hexdigest()[:8]}-{method}-p{parts}"


@dataclass(frozen=True)
class Cell:
    """One row of the sweep: ``strategy`` on ``parts`` devices as ``stages`` x ``graph_parts``."""

    parts: int
    strategy: str
    graph_parts: int
    stages: int
    skipped: str | None = None


def parse_strategies(text: str) -> list[str]:
    """``"graph,hybrid"`` -> ["graph", "hybrid"] (order kept, duplicates dropped, each one known)."""
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not names:
        raise DistGNNError(f"--strategy needs at least one of {', '.join(KNOWN_STRATEGIES)}, got {text!r}")
    for name in names:
        predictor(name)
    return names


def model_depth(spec: ModelSpec) -> int:
    """The model's layer count, the most pipeline stages it can have (independent of the graph's sizes)."""
    return build_model(spec.model, 1, spec.hidden, 1, layers=spec.layers, heads=spec.heads).num_layers


def plan(parts: list[int], strategies: list[str], stages: int, depth: int) -> list[Cell]:
    """The rows of the sweep, in P then strategy order; bad combinations fail here, before any work."""
    if "hybrid" in strategies:
        if not 2 <= stages <= depth:
            raise DistGNNError(
                f"--strategy hybrid needs --stages S with 2 <= S <= {depth} (the model's layers), "
                f"got {stages}"
            )
        bad = [p for p in parts if p % stages]
        if bad:
            raise DistGNNError(
                f"--strategy hybrid runs {stages} stages x P/{stages} parts: P={bad[0]} is not a multiple "
                f"of --stages {stages}"
            )
    cells = []
    for p in parts:
        for s in strategies:
            if s == "graph":
                cells.append(Cell(p, s, p, 1))
            elif s == "hybrid":
                cells.append(Cell(p, s, p // stages, stages))
            elif p <= depth:
                cells.append(Cell(p, s, 1, p))
            else:
                reason = f"P devices are P stages of at least one layer each; the model has {depth} layers"
                cells.append(Cell(p, s, 1, p, skipped=reason))
    return cells


def row_config(cell: Cell, options: Mapping[str, Any]) -> ParallelConfig:
    """The ParallelConfig one row is predicted with: ``options`` at the row's strategy and stages (chunks
    apply to the pipeline and hybrid rows; a graph row has 1)."""
    values = {**options, "strategy": cell.strategy, "stages": cell.stages}
    if cell.strategy == "graph":
        values["chunks"] = 1
    return ParallelConfig(**values)


def sweep(
    dataset: str,
    parts: list[int],
    spec: ModelSpec,
    strategies: list[str],
    options: Mapping[str, Any] | None = None,
    *,
    stages: int = 1,
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    method: str = "metis",
    network: Network | None = None,
    progress: bool = True,
) -> dict:
    """Partition (or reuse) every part count the rows need, predict every row, write and return the sweep.

    ``options``: ParallelConfig fields every row shares (not strategy or stages); ``stages`` is the
    hybrid's stage count S, the pipeline's stages are each row's P.
    """
    from distgnn.data import load_graph
    from distgnn.partitioning import partition_graph
    from distgnn.partitioning.methods import check_options as check_partition

    options = dict(options or {})
    per_row = {"strategy", "stages"} & set(options)
    if per_row:
        raise DistGNNError(f"sweep options cannot set {', '.join(sorted(per_row))} (each row has its own)")
    if stages < 1:
        raise DistGNNError(f"stages must be >= 1, got {stages}")
    for s in strategies:
        predictor(s)
        check_options(s, options)
    cells = plan(parts, strategies, stages, model_depth(spec))
    configs = {c: row_config(c, options) for c in cells if c.skipped is None}  # bad options: before any work
    needed = sorted({c.graph_parts for c in cells if c.skipped is None})
    for g in needed:
        check_partition(g, method, "cut")
    cache = Path(cache_dir) if cache_dir else Path(out_dir) / "partitions"
    dirs = {g: cache / cache_name(dataset, method, g) for g in needed}
    missing = [g for g in needed if not (dirs[g] / "meta.json").is_file()]
    if missing:
        graph = load_graph(dataset, progress=progress)
        if missing[-1] > graph.num_nodes:
            raise DistGNNError(f"cannot split {graph.num_nodes} nodes into {missing[-1]} parts")
        for i, g in enumerate(missing, 1):
            if progress:
                print(f"sweep: partition {i}/{len(missing)} ({g} parts) -> {dirs[g]}", file=sys.stderr)
            start = time.perf_counter()
            partition_graph(graph, g, dirs[g], method=method, progress=progress)
            if progress:
                print(f"sweep: {g} parts done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        del graph
    rows, skipped = [], []
    infos: dict[int, PartitionInfo] = {}
    bar = tqdm(cells, desc="predict", unit="row", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for cell in bar:
        bar.set_postfix(P=cell.parts, strategy=cell.strategy, refresh=True)
        if cell.skipped is not None:
            skipped.append({"parts": cell.parts, "strategy": cell.strategy, "reason": cell.skipped})
            continue
        if cell.graph_parts not in infos:
            infos[cell.graph_parts] = PartitionInfo.from_dir(dirs[cell.graph_parts])
        rows.append(_row(cell, infos[cell.graph_parts], spec, configs[cell], network))
    result = {
        "format": SWEEP_FORMAT,
        "version": SWEEP_VERSION,
        "dataset": dataset,
        "method": method,
        "model": vars(spec),
        "options": {  # the ParallelConfig of every row, but its strategy; stages: the hybrid's S
            **{f.name: f.default for f in fields(ParallelConfig) if f.name != "strategy"},
            **options,
            "stages": stages,
        },
        "network": network.to_dict() if network is not None else None,
        "rows": rows,
        "skipped": skipped,
    }
    jsonio.write_atomic(Path(out_dir) / "sweep.json", result, indent=1)
    return result


def _row(cell: Cell, info: PartitionInfo, spec: ModelSpec, parallel: ParallelConfig, network: Network | None):
    vol = predict_volume(info, spec, parallel)
    summary = vol.summary(peers=False)
    mem = [m["total"] for m in summary["per_rank_memory_bytes"]]
    quality = info.meta["quality"]
    return {
        "parts": cell.parts,
        "strategy": cell.strategy,
        "graph_parts": cell.graph_parts,
        "stages": cell.stages,
        "partition": info.path,
        "total_bytes": summary["total_bytes"],
        "straggler_bytes": summary["straggler"]["bytes"],
        "replication_factor": quality["replication_factor"],
        "edge_cut": quality["edge_cut"],
        "max_rank_memory_bytes": max(mem),
        "mean_rank_memory_bytes": sum(mem) / len(mem),
        "comm_s": network.epoch_time(vol) if network is not None else None,
    }


def layout(row: dict) -> str:
    """How a row's P devices are used: ``8 parts``, ``8 stages``, ``2 st x 4 parts``."""
    g = row["graph_parts"]
    parts = f"{g} part{'s' if g != 1 else ''}"
    if row["strategy"] == "graph":
        return parts
    if row["strategy"] == "pipeline":
        return f"{row['stages']} stages"
    return f"{row['stages']} st x {parts}"


def sweep_table(result: dict) -> str:
    """The sweep as a terminal table, then the skipped rows and why."""
    headers = [
        "P",
        "strategy",
        "layout",
        "total/epoch",
        "straggler",
        "replication",
        "edge cut",
        "max rank mem",
        "comm time",
    ]
    rows = [
        [
            r["parts"],
            r["strategy"],
            layout(r),
            human_bytes(r["total_bytes"]),
            human_bytes(r["straggler_bytes"]),
            f"{r['replication_factor']:.3f}",
            r["edge_cut"],
            human_bytes(r["max_rank_memory_bytes"]),
            "-" if r["comm_s"] is None else f"{1000 * r['comm_s']:.3f} ms",
        ]
        for r in result["rows"]
    ]
    by_reason: dict[tuple[str, str], list[str]] = {}
    for s in result.get("skipped", []):
        by_reason.setdefault((s["strategy"], s["reason"]), []).append(str(s["parts"]))
    notes = [f"not applicable: {s} at P={','.join(ps)}: {why}" for (s, why), ps in by_reason.items()]
    return "\n".join([table(headers, rows), *notes])
