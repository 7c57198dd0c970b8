"""Bounded-memory passes over a graph's edges: chunked COO views, global degrees, the symmetric structure.

Partitioning a 40M-edge graph must not hold several int64 copies of every edge at once, so every pass
here walks the in-edge CSR a block of destination rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from distgnn.data.graph import Graph
from distgnn.data.mapped import release

# Edges per chunk: 4M edges -> ~32 MB per int64 temporary.
CHUNK_EDGES = 1 << 22


def edge_chunks(graph: Graph, chunk_edges: int = CHUNK_EDGES) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (src, dst) int64 arrays for consecutive blocks of destination rows, in CSR order."""
    indptr = graph.indptr
    n = graph.num_nodes
    row = 0
    while row < n:
        # Take rows until about chunk_edges edges (always at least one row).
        end = int(np.searchsorted(indptr, indptr[row] + chunk_edges, side="right")) - 1
        end = min(max(end, row + 1), n)
        lo, hi = int(indptr[row]), int(indptr[end])
        dst = np.repeat(np.arange(row, end, dtype=np.int64), np.diff(indptr[row : end + 1]))
        yield graph.indices[lo:hi].astype(np.int64, copy=False), dst
        release(graph.indices, graph.indptr)  # a memory-mapped CSR's pages are not kept (data.mapped)
        row = end


def global_degrees(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Global (in_degree, out_degree) per node, int64, counting edges that are not self-loops."""
    n = graph.num_nodes
    in_deg = np.diff(graph.indptr).astype(np.int64)
    release(graph.indptr)
    out_deg = np.zeros(n, dtype=np.int64)
    for src, dst in edge_chunks(graph):  # a chunk at a time: a memory-mapped CSR is never copied whole
        np.add.at(out_deg, src, 1)
        loops = dst[src == dst]
        if loops.size:
            counts = np.bincount(loops, minlength=n)
            in_deg -= counts
            out_deg -= counts
    return in_deg, out_deg


def symmetric_csr(graph: Graph, dtype: type[np.integer] = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """The undirected simple structure partitioners need: (xadj [N+1], adjncy [M]) of ``dtype``.

    Every edge u->v becomes u-v in both directions; self-loops and duplicates are dropped. The training
    graph keeps its direction: this structure is only the partitioner's input. Memory: one int64 buffer of
    2E keys (src * N + dst), sorted and compacted in place, then turned into neighbour IDs (in place for
    int64; chunk by chunk into the narrower array otherwise, so a partitioner with 32-bit indices gets
    its input without an extra int64 copy). ``dtype`` must hold N and M.
    """
    n = graph.num_nodes
    keys = np.empty(2 * graph.num_edges, dtype=np.int64)
    fill = 0
    for src, dst in edge_chunks(graph):
        keep = src != dst
        src, dst = src[keep], dst[keep]
        k = src.shape[0]
        np.multiply(src, n, out=keys[fill : fill + k])
        keys[fill : fill + k] += dst
        np.multiply(dst, n, out=keys[fill + k : fill + 2 * k])
        keys[fill + k : fill + 2 * k] += src
        fill += 2 * k
    keys[:fill].sort()
    write = _dedupe_sorted_in_place(keys, fill)
    keys.resize(write, refcheck=False)  # shrink in place (realloc) instead of copying the prefix
    xadj = np.searchsorted(keys, np.arange(n + 1, dtype=np.int64) * n).astype(dtype)
    if np.dtype(dtype) == np.int64:
        np.remainder(keys, n, out=keys)
        return xadj, keys
    adjncy = np.empty(write, dtype=dtype)
    for lo in range(0, write, CHUNK_EDGES):
        hi = min(lo + CHUNK_EDGES, write)
        np.remainder(keys[lo:hi], n, out=adjncy[lo:hi], casting="unsafe")
    del keys
    return xadj, adjncy


def _dedupe_sorted_in_place(keys: np.ndarray, fill: int) -> int:
    """Compact the unique values of sorted ``keys[:fill]`` to its front; return how many there are.

    Works a chunk at a time: the write position never passes the read position, so no extra full copy.
    """
    write = 0
    prev = -1  # keys are >= 0
    for lo in range(0, fill, CHUNK_EDGES):
        hi = min(lo + CHUNK_EDGES, fill)
        block = keys[lo:hi]
        first = np.empty(hi - lo, dtype=bool)
        first[0] = block[0] != prev
        np.not_equal(block[1:], block[:-1], out=first[1:])
        prev = int(block[-1])
        uniq = block[first]
        keys[write : write + uniq.shape[0]] = uniq
        write += uniq.shape[0]
    return write
