"""The offline partitioning pipeline: assign parts, relabel, build each part, write the directory."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import distgnn
from distgnn.data.graph import Graph
from distgnn.errors import DistGNNError

from .bounded import bounded_parts
from .budget import MemoryPlan
from .build import REORDERS, build_local, relabel, send_lists
from .edges import global_degrees
from .format import PartitionWriter, check_target, scratch_beside
from .methods import Method, Objective, assign_parts, check_request
from .quality import PartStats, quality_report

_LABELS = {"metis": "METIS", "kaminpar": "KaMinPar", "random": "random", "contiguous": "contiguous"}


def partition_graph(
    graph: Graph,
    num_parts: int,
    out_dir: str | os.PathLike,
    *,
    method: Method = "metis",
    objective: Objective = "cut",
    seed: int = 0,
    reorder: str = "none",
    overwrite: bool = False,
    progress: bool = True,
    memory: MemoryPlan | None = None,
    scratch: str | os.PathLike | None = None,
    symmetric: bool = False,
) -> dict[str, Any]:
    """Partition ``graph`` into ``num_parts`` and write the partition directory ``out_dir``.

    Returns the meta.json content (sizes, node ranges, quality report, checksums, phase timings).
    Bad requests fail before any work; the directory appears only once it is complete. With a bounded
    ``memory`` plan (``budget.plan_memory``) the assignment runs out of core (``bounded.bounded_parts``,
    its files in ``scratch``, default a temporary directory beside ``out_dir``) and ``memory.method``
    replaces ``method``; the graph's CSR may then be memory-mapped (``distgnn.data.csr_on_disk``).
    ``symmetric`` says the CSR is symmetric without self-loops or repeats (the loaders' normalisation), so
    the out-of-core partitioner reads it as its structure instead of building a symmetric copy.
    """
    graph.validate()
    check_request(graph.num_nodes, num_parts, method, objective, seed)
    if reorder not in REORDERS:
        raise DistGNNError(f"unknown reorder {reorder!r}; choose one of {', '.join(REORDERS)}")
    check_target(Path(out_dir), overwrite)
    timings: dict[str, float] = {}

    if memory is not None and memory.bounded:
        method = memory.method  # type: ignore[assignment]
    t = time.perf_counter()
    if progress:
        print(
            f"partitioning {graph.num_nodes:,} nodes / {graph.num_edges:,} edges into {num_parts} parts "
            f"with {_LABELS[method]}...",
            file=sys.stderr,
            flush=True,
        )
    if memory is not None and memory.bounded:
        with contextlib.nullcontext(Path(scratch)) if scratch else scratch_beside(out_dir) as work:
            parts = bounded_parts(
                graph,
                num_parts,
                method=method,
                seed=seed,
                memory_bytes=memory.csr_budget,
                scratch=work,
                symmetric=symmetric,
                progress=progress,
            )
    else:
        parts = assign_parts(graph, num_parts, method=method, objective=objective, seed=seed)
    timings["partition"] = time.perf_counter() - t

    t = time.perf_counter()
    relab = relabel(parts, num_parts, graph=graph, reorder=reorder)
    del parts
    in_deg, out_deg = global_degrees(graph)
    in_deg, out_deg = in_deg[relab.order], out_deg[relab.order]

    stats: list[PartStats] = []
    halos: list[tuple[np.ndarray, np.ndarray]] = []
    with PartitionWriter(out_dir, overwrite=overwrite) as writer:
        bar = tqdm(
            total=2 * num_parts, desc="building parts", unit="step", file=sys.stderr, disable=not progress
        )
        for p in range(num_parts):
            arrays = build_local(graph, relab, p, in_deg, out_deg)
            for name, array in arrays.items():
                writer.write_array(p, name, array)
            n_owned = arrays["indptr"].shape[0] - 1
            stats.append(
                PartStats(
                    n_owned=n_owned,
                    n_halo=int(arrays["halo_gids"].shape[0]),
                    n_edges=int(arrays["indices"].shape[0]),
                    n_cut=int(np.count_nonzero(arrays["indices"] >= n_owned)),
                    n_train=int(np.count_nonzero(arrays["train_mask"])),
                )
            )
            halos.append((arrays["halo_gids"], arrays["halo_offsets"]))
            del arrays
            bar.update()
        n_send = []
        for p in range(num_parts):
            sends = send_lists(p, relab, halos)
            n_send.append(int(sends["send_idx"].shape[0]))
            for name, array in sends.items():
                writer.write_array(p, name, array)
            bar.update()
        bar.close()
        timings["build_write"] = time.perf_counter() - t

        report = quality_report(stats)
        meta = {
            "created_by": f"distgnn {distgnn.__version__}",
            "dataset": graph.name,
            "num_parts": num_parts,
            "num_nodes": graph.num_nodes,
            "num_edges": graph.num_edges,
            "feat_dim": graph.feat_dim,
            "num_classes": int(graph.num_classes),
            "method": method,
            "reorder": reorder,
            "objective": objective if method in ("metis", "kaminpar") else None,
            "seed": seed if method in ("metis", "kaminpar", "random") else None,
            "node_ranges": [list(relab.node_range(p)) for p in range(num_parts)],
            "part_sizes": [
                {"n_owned": s.n_owned, "n_halo": s.n_halo, "n_edges": s.n_edges, "n_send": n_send[p]}
                for p, s in enumerate(stats)
            ],
            "quality": report,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
        if memory is not None:
            meta["memory"] = memory.as_meta()
        return writer.commit(meta)
