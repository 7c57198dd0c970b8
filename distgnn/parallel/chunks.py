"""Chunks: the pieces of a stage's rows that stream through a pipeline, cut with METIS.

Chunks are cut at load time from the rows a rank holds (the whole graph of a 1-part partition directory
for the pipeline strategy), with the partitioner's METIS call, so most edges stay inside a chunk and few
neighbour reads need history. Each chunk is aggregated like a partition: its rows are "owned", every
other source row of its in-edges is a "halo" row, read from the history cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from distgnn.data.graph import Graph
from distgnn.parallel.local_graph import LocalGraph


@dataclass
class Chunk:
    index: int
    rows: Tensor  # int64 [n_c] local row ids, ascending
    others: Tensor  # int64 [n_o] local ids of the other source rows of the chunk's in-edges
    other_chunk: Tensor  # int64 [n_o] the chunk of each other source row
    graph: LocalGraph  # in-edges of ``rows`` over [rows | others]
    edges_from_other_chunks: Tensor  # int64 [num_chunks]: in-edges whose source is in chunk k


def assign_chunks(indptr: np.ndarray, indices: np.ndarray, num_chunks: int, seed: int = 0) -> np.ndarray:
    """The chunk of every row (METIS k-way on the symmetrised graph; contiguous when it has no edges)."""
    from distgnn.partitioning.methods import assign_parts

    n = len(indptr) - 1
    graph = Graph(
        indptr=np.asarray(indptr, dtype=np.int64), indices=np.asarray(indices, dtype=np.int64),
        x=np.zeros((n, 0), np.float32), y=np.zeros(n, np.int64), train_mask=np.zeros(n, bool),
        val_mask=np.zeros(n, bool), test_mask=np.zeros(n, bool), num_classes=1,
    )  # fmt: skip
    return assign_parts(graph, num_chunks, method="metis", seed=seed)


def build_chunks(
    chunk_of: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    in_degree: np.ndarray,
    out_degree: np.ndarray,
    num_chunks: int,
    device: torch.device | str = "cpu",
) -> list[Chunk]:
    """One :class:`Chunk` per chunk id for rows ``0..N-1`` with in-edge CSR ``indptr``/``indices`` over
    sources ``0..len(chunk_of)-1`` (their chunks in ``chunk_of``) and global degrees of those sources."""
    n = len(indptr) - 1
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    chunks = []
    for c in range(num_chunks):
        rows = np.flatnonzero(chunk_of[:n] == c)
        starts, ends = indptr[rows], indptr[rows + 1]
        counts = ends - starts
        src = indices[np.repeat(ends - counts.cumsum(), counts) + np.arange(counts.sum())]
        src = src if counts.sum() else np.zeros(0, np.int64)
        own = np.full(len(chunk_of), -1, dtype=np.int64)
        own[rows] = np.arange(len(rows))
        others = np.unique(src[own[src] < 0])
        pos = own.copy()
        pos[others] = len(rows) + np.arange(len(others))
        local = pos[src]
        sub_indptr = np.concatenate([[0], np.cumsum(counts)])
        nodes = np.concatenate([rows, others])
        graph = LocalGraph.from_csr(
            len(rows), len(others), sub_indptr, local, in_degree[nodes], out_degree[nodes],
            device=device, name=f"chunk {c}",
        )  # fmt: skip
        keep = src != np.repeat(rows, counts)  # self-loops are not neighbour reads
        per_chunk = np.bincount(chunk_of[src[keep]], minlength=num_chunks)
        chunks.append(
            Chunk(
                index=c,
                rows=torch.from_numpy(rows).to(device),
                others=torch.from_numpy(others).to(device),
                other_chunk=torch.from_numpy(chunk_of[others].astype(np.int64)).to(device),
                graph=graph,
                edges_from_other_chunks=torch.from_numpy(per_chunk.astype(np.int64)),
            )
        )
    return chunks
