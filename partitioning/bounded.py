"""The node-to-part assignment under a memory budget: KaMinPar on its compressed graph.

The symmetric simple structure partitioners need is normalised on disk from the graph's edges
(``build_csr_on_disk`` with symmetrising on: the same values ``edges.symmetric_csr`` gives in memory),
streamed into a ParHIP file a chunk at a time, and loaded by KaMinPar with ``compress=True``: it compresses
the neighbourhoods while it reads (gap + variable-length codes), so the graph it partitions takes a few bytes
per edge instead of the 8 of its plain form; its ``terapart`` preset also coarsens without the large
temporaries of the others (TeraPart, Sanders et al. 2025). Measured on 2M nodes / 40M edges into 8 parts:
with communities as contiguous ID ranges the whole of KaMinPar peaks at 330 MB (``fast`` preset,
compressed: 635 MB; uncompressed: 873 MB); with the same kind of graph under randomly permuted IDs (little
to compress, nothing local to coarsen) every preset peaks at 1.6-1.8 GB, about 41 bytes per edge.

Random and contiguous assignments need no structure and run as in memory (so would METIS, on the whole
graph: the memory plan, ``budget.plan_memory``, sends a METIS request that does not fit here as KaMinPar).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from distgnn.data.csr_on_disk import build_csr_on_disk, load_csr_files
from distgnn.data.graph import Graph

from .edges import edge_chunks
from .methods import assign_parts, import_kaminpar, kaminpar_solve, write_parhip


def features_on_disk(graph: Graph, scratch: Path) -> Graph:
    """``graph`` with its features memory-mapped from a file in ``scratch`` (unless they are mapped
    already), so they take no memory while KaMinPar runs; the parts gather their rows later. The file is
    unlinked at once: the mapping keeps it readable (POSIX), and its space returns when the graph goes."""
    if isinstance(graph.x, np.memmap):
        return graph
    path = scratch / "x.npy"
    np.save(path, graph.x, allow_pickle=False)
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    path.unlink()
    return dataclasses.replace(graph, x=x)


def bounded_parts(
    graph: Graph,
    num_parts: int,
    *,
    method: str,
    seed: int,
    memory_bytes: int,
    scratch: Path,
    threads: int | None = None,
    symmetric: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """The part of every node (int64 [N]), holding about ``memory_bytes`` besides KaMinPar's compressed
    graph; ``scratch`` (an existing directory) takes the symmetric CSR and the ParHIP file meanwhile.
    ``symmetric``: the graph's CSR already is that structure (symmetric, without self-loops or repeats:
    every loader's default normalisation), so it is written out as it is, with no second build."""
    if method != "kaminpar" or num_parts == 1:
        return assign_parts(graph, num_parts, method=method, seed=seed)  # type: ignore[arg-type]
    kaminpar = import_kaminpar()
    sym = scratch / "symmetric-csr"
    parhip = scratch / "graph.parhip"
    try:
        if symmetric:
            xadj, adjncy = graph.indptr, graph.indices
        else:
            build_csr_on_disk(
                edge_chunks(graph),
                graph.num_nodes,
                sym,
                memory_bytes=memory_bytes,
                symmetrize=True,
                num_edges=graph.num_edges,
                progress=progress,
            )
            xadj, adjncy = load_csr_files(sym)
        if adjncy.shape[0] == 0:
            return assign_parts(graph, num_parts, method="contiguous")
        write_parhip(str(parhip), xadj, adjncy, progress=progress)
        m = int(adjncy.shape[0])
        del xadj, adjncy
        shutil.rmtree(sym, ignore_errors=True)
        if progress:  # one call into the library, which reports no progress of its own
            print(f"KaMinPar: compressing and partitioning {m:,} edges...", file=sys.stderr, flush=True)
        kgraph = kaminpar.load_graph(str(parhip), kaminpar.GraphFileFormat.PARHIP, compress=True)
        os.unlink(parhip)
        return kaminpar_solve(kgraph, num_parts, seed=seed, threads=threads, preset="terapart")
    finally:
        shutil.rmtree(sym, ignore_errors=True)
        parhip.unlink(missing_ok=True)
