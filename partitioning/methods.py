"""Node-to-part assignment: METIS (5.2 via cmeel-metis, or pymetis), KaMinPar, random / contiguous baselines.

METIS and KaMinPar partition the symmetrised simple graph (see edges.symmetric_csr); the training graph
keeps its direction. Both balance the node count (3% tolerance). Training-node balance is reported,
not enforced: we call METIS with a single balance constraint (as pymetis 2025.2 must: its ``ncon`` is
fixed at 1) and KaMinPar has a single node weight too.
"""

from __future__ import annotations

import os
import tempfile
import types
from typing import Literal

import numpy as np

from distgnn.data.graph import Graph
from distgnn.data.mapped import pieces
from distgnn.data.progress import count_bar
from distgnn.errors import DistGNNError

from . import metis_lib
from .edges import CHUNK_EDGES, symmetric_csr

Method = Literal["metis", "kaminpar", "random", "contiguous"]
Objective = Literal["cut", "vol"]
METHODS: tuple[str, ...] = ("metis", "kaminpar", "random", "contiguous")
OBJECTIVES: tuple[str, ...] = ("cut", "vol")

# METIS's default imbalance for k-way is ufactor=30 (3%); KaMinPar's epsilon is the same tolerance.
KAMINPAR_EPS = 0.03
# METIS 5.2 options set beyond objtype/seed: none, METIS's defaults. DGL sets niter=1, niparts=1 and
# dropedges=1. dropedges (drop light edges while coarsening) halves METIS's memory on a 2M-node / 40M-edge
# graph (2.6 -> 1.2 GB), but on the 16-community benchmark graph into 8 parts it cut 29% more edges
# (9.66M vs 7.47M) and ran slower (49.6 s vs 36.8 s); the whole `distgnn partition` process peaks at
# 4.1 GB without it, well under DGL's 9+ GB. So the defaults stay.
METIS_OPTIONS: dict[str, int] = {}
METIS_MAX_SEED = 2**31 - 1  # METIS 5.2's options are 32-bit integers


def check_options(num_parts: int, method: str, objective: str, seed: int = 0) -> None:
    """Reject options that no graph could satisfy (checked before loading the graph)."""
    if method not in METHODS:
        raise DistGNNError(f"unknown partition method {method!r}: choose one of {', '.join(METHODS)}")
    if objective not in OBJECTIVES:
        raise DistGNNError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if num_parts < 1:
        raise DistGNNError(f"--parts must be at least 1, got {num_parts}")
    if method == "kaminpar" and objective == "vol":
        raise DistGNNError("--objective vol needs --method metis: KaMinPar only minimises the edge cut")
    if method == "metis" and not 0 <= seed <= METIS_MAX_SEED:
        raise DistGNNError(f"--seed must be in [0, {METIS_MAX_SEED}] for METIS, got {seed}")


def check_request(num_nodes: int, num_parts: int, method: str, objective: str, seed: int = 0) -> None:
    """Reject a request that cannot be served for this graph, before any expensive work."""
    check_options(num_parts, method, objective, seed)
    if num_nodes <= 0:
        raise DistGNNError("graph is empty: it has no nodes")
    if num_parts > num_nodes:
        raise DistGNNError(
            f"cannot split {num_nodes} nodes into {num_parts} parts: use at most {num_nodes} parts"
        )


def assign_parts(
    graph: Graph,
    num_parts: int,
    *,
    method: Method = "metis",
    objective: Objective = "cut",
    seed: int = 0,
    threads: int | None = None,
) -> np.ndarray:
    """Return the part of every node as an int64 array [N] with values in [0, num_parts).

    ``threads`` is KaMinPar's thread count (default: all usable cores). KaMinPar is reproducible for a
    given seed only with one thread; METIS and random are always reproducible.
    """
    n = graph.num_nodes
    check_request(n, num_parts, method, objective, seed)
    if method == "contiguous" or num_parts == 1:
        return contiguous_parts(n, num_parts)
    if method == "random":
        return random_parts(n, num_parts, seed)
    if method == "metis":
        parts = metis_parts(graph, num_parts, objective=objective, seed=seed)
    else:
        parts = kaminpar_parts(graph, num_parts, seed=seed, threads=threads)
    if parts is None:
        # No edges: every split has cut 0; the balanced contiguous one is as good as any.
        return contiguous_parts(n, num_parts)
    if parts.shape != (n,) or parts.min() < 0 or parts.max() >= num_parts:
        raise DistGNNError(f"{method} returned an invalid partition (values outside [0, {num_parts}))")
    return parts


def contiguous_parts(num_nodes: int, num_parts: int) -> np.ndarray:
    """Equal ranges of node IDs in the given order (sizes differ by at most one)."""
    bounds = np.linspace(0, num_nodes, num_parts + 1).round().astype(np.int64)
    return np.repeat(np.arange(num_parts, dtype=np.int64), np.diff(bounds))


def random_parts(num_nodes: int, num_parts: int, seed: int) -> np.ndarray:
    """A seeded uniformly random balanced assignment (a shuffled contiguous split)."""
    parts = contiguous_parts(num_nodes, num_parts)
    np.random.default_rng(seed).shuffle(parts)
    return parts


def metis_parts(graph: Graph, num_parts: int, *, objective: str, seed: int) -> np.ndarray | None:
    """METIS k-way on the symmetrised simple graph (k-way: METIS's volume objective is k-way only).

    Uses METIS 5.2 with 32-bit indices (``metis_lib``, from the cmeel-metis wheel) and ``METIS_OPTIONS``;
    DGL runs the same library with ``niter=1, niparts=1, dropedges=1``. Falls
    back to pymetis (METIS 5.1, 64-bit indices, ~5x the memory here) when that wheel is missing or the
    graph does not fit 32-bit indices. The symmetric CSR is built directly in the library's index type, so
    METIS reads it without a copy, and is freed before returning. Returns None for a graph without
    (non-loop) edges.
    """
    metis = metis_lib.load()
    m_upper = 2 * graph.num_edges  # the symmetrised adjacency is at most twice the directed edges
    if metis is not None and metis.fits(graph.num_nodes, m_upper):
        xadj, adjncy = symmetric_csr(graph, dtype=metis.idx)
        if adjncy.size == 0:
            return None
        return metis_lib.part_graph_kway(
            metis, xadj, adjncy, num_parts, objective=objective, seed=seed, options=METIS_OPTIONS
        )
    import pymetis

    xadj, adjncy = symmetric_csr(graph, dtype=pymetis.zero_copy_dtype())  # zero-copy for pymetis
    if adjncy.size == 0:
        return None
    objtype = pymetis.ObjType.VOL if objective == "vol" else pymetis.ObjType.CUT
    options = pymetis.Options(seed=int(seed), objtype=int(objtype))
    try:
        result = pymetis.part_graph(
            num_parts, pymetis.CSRAdjacency(xadj, adjncy), recursive=False, options=options
        )
    except (RuntimeError, MemoryError) as err:
        raise DistGNNError(f"METIS failed to partition the graph: {err}") from err
    del xadj, adjncy
    return np.asarray(result.vertex_part, dtype=np.int64)


def kaminpar_parts(
    graph: Graph, num_parts: int, *, seed: int, threads: int | None = None
) -> np.ndarray | None:
    """KaMinPar (its fast preset) on the symmetrised graph, through a temporary ParHIP binary file.

    The symmetric CSR is freed once written, so it never coexists with KaMinPar's own copy. Returns
    None for a graph without (non-loop) edges.
    """
    kaminpar = import_kaminpar()
    with tempfile.TemporaryDirectory(prefix="distgnn-kaminpar-") as tmp:
        path = os.path.join(tmp, "graph.parhip")
        xadj, adjncy = symmetric_csr(graph)
        if adjncy.size == 0:
            return None
        write_parhip(path, xadj, adjncy)
        del xadj, adjncy
        kgraph = kaminpar.load_graph(path, kaminpar.GraphFileFormat.PARHIP)
    return kaminpar_solve(kgraph, num_parts, seed=seed, threads=threads)


def import_kaminpar() -> types.ModuleType:
    """The ``kaminpar`` module, or one line saying how to install it."""
    try:
        import kaminpar
    except ImportError:
        raise DistGNNError(
            "--method kaminpar requires the kaminpar package: pip install 'distgnn[kaminpar]'"
        ) from None
    return kaminpar


def kaminpar_solve(
    kgraph: object, num_parts: int, *, seed: int, threads: int | None, preset: str = "fast"
) -> np.ndarray:
    """KaMinPar with ``preset`` (one of ``kaminpar.context_names()``) on a loaded graph: the part of every
    node, int64."""
    import kaminpar

    kaminpar.reseed(int(seed))
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    solver = kaminpar.KaMinPar(threads, kaminpar.context_by_name(preset))
    return np.asarray(solver.compute_partition(kgraph, num_parts, KAMINPAR_EPS), dtype=np.int64)


def write_parhip(path: str, xadj: np.ndarray, adjncy: np.ndarray, *, progress: bool = False) -> None:
    """Write the ParHIP binary graph format: header, byte offsets (uint64), neighbour IDs.

    Header = (version, n, m) as uint64. Version bits set mean "absent / 32-bit": bit0 no edge weights,
    bit1 no node weights, bit3 32-bit node IDs (used when n < 2^32, halving the file).
    """
    n, m = xadj.shape[0] - 1, adjncy.shape[0]
    narrow = n < 2**32
    width = 4 if narrow else 8
    version = 1 | 2 | (8 if narrow else 0)
    base = 3 * 8 + (n + 1) * 8
    with open(path, "wb") as f, count_bar("writing KaMinPar's input", n + 1 + m, "entry", progress) as bar:
        np.array([version, n, m], dtype="<u8").tofile(f)
        for piece in pieces(xadj, CHUNK_EDGES):
            (piece * width + base).astype("<u8").tofile(f)
            bar.update(piece.shape[0])
        for piece in pieces(adjncy, CHUNK_EDGES):
            piece.astype("<u4" if narrow else "<u8").tofile(f)
            bar.update(piece.shape[0])
