"""``distgnn profile sweep``: partition one graph at several part counts and tabulate the prediction.

Partitions are cached (``<cache>/<dataset>-<method>-p<P>``, a normal partition directory) and reused by
later sweeps; only the cheap prediction is recomputed. The result is ``<out>/sweep.json`` (strict JSON,
``format`` ``distgnn-sweep``), which ``distgnn profile report`` draws.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from tqdm import tqdm

from distgnn import jsonio
from distgnn.errors import DistGNNError
from distgnn.metrics import human_bytes
from distgnn.profile.exchanges import ModelSpec
from distgnn.profile.network import Network
from distgnn.profile.partition_info import PartitionInfo
from distgnn.profile.predict import predict_volume
from distgnn.profile.strategies import StrategyOptions, predictor
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


def sweep(
    dataset: str,
    parts: list[int],
    spec: ModelSpec,
    strategies: list[str],
    opts: StrategyOptions,
    *,
    out_dir: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    method: str = "metis",
    network: Network | None = None,
    progress: bool = True,
) -> dict:
    """Partition (or reuse) at each P, predict every strategy, write and return the sweep."""
    from distgnn.data import load_graph
    from distgnn.partitioning import partition_graph

    for s in strategies:
        predictor(s)
    cache = Path(cache_dir) if cache_dir else Path(out_dir) / "partitions"
    dirs = {p: cache / cache_name(dataset, method, p) for p in parts}
    graph = None
    missing = [p for p in parts if not (dirs[p] / "meta.json").is_file()]
    if missing:
        graph = load_graph(dataset, progress=progress)
        if missing[-1] > graph.num_nodes:
            raise DistGNNError(f"cannot split {graph.num_nodes} nodes into {missing[-1]} parts")
    rows = []
    bar = tqdm(parts, desc="sweep", unit="P", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for p in bar:
        bar.set_postfix(P=p, refresh=True)
        if p in missing:
            partition_graph(graph, p, dirs[p], method=method, progress=False)
        info = PartitionInfo.from_dir(dirs[p])
        quality = info.meta["quality"]
        for s in strategies:
            vol = predict_volume(info, spec, s, opts)
            summary = vol.summary(peers=False)
            mem = [m["total"] for m in summary["per_rank_memory_bytes"]]
            rows.append(
                {
                    "parts": p,
                    "strategy": s,
                    "total_bytes": summary["total_bytes"],
                    "straggler_bytes": summary["straggler"]["bytes"],
                    "replication_factor": quality["replication_factor"],
                    "edge_cut": quality["edge_cut"],
                    "max_rank_memory_bytes": max(mem),
                    "mean_rank_memory_bytes": sum(mem) / len(mem),
                    "comm_s": network.epoch_time(vol) if network is not None else None,
                }
            )
    result = {
        "format": SWEEP_FORMAT,
        "version": SWEEP_VERSION,
        "dataset": dataset,
        "method": method,
        "model": vars(spec),
        "options": vars(opts),
        "network": network.to_dict() if network is not None else None,
        "rows": rows,
    }
    jsonio.write_atomic(Path(out_dir) / "sweep.json", result, indent=1)
    return result


def sweep_table(result: dict) -> str:
    """The sweep as a terminal table."""
    headers = [
        "P",
        "strategy",
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
            human_bytes(r["total_bytes"]),
            human_bytes(r["straggler_bytes"]),
            f"{r['replication_factor']:.3f}",
            r["edge_cut"],
            human_bytes(r["max_rank_memory_bytes"]),
            "-" if r["comm_s"] is None else f"{1000 * r['comm_s']:.3f} ms",
        ]
        for r in result["rows"]
    ]
    return table(headers, rows)
