"""Chunks: the pieces of a stage's rows that stream through a pipeline, cut with METIS.

Chunks are cut at load time from the rows a rank holds (the whole graph of a 1-part partition directory
for the pipeline strategy), with the partitioner's METIS call, so most edges stay inside a chunk and few
neighbour reads need history. Each chunk is aggregated like a partition: its rows are "owned", every
other source row of its in-edges is a "halo" row, read from the history cache.

The history cache stores rows in *slot* order (``chunk_slots``): owned rows grouped by chunk, then halo
rows grouped by their owners' chunk. A chunk's own rows, and the halo rows it receives, are then one
contiguous slot range: writing them to the cache and taking their gradients are slice copies, not
scattered row copies, and the other sources a chunk reads come out grouped by chunk.
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
    slots: slice | Tensor  # cache slots of ``rows`` (a slice when contiguous, as for a chunking's chunks)
    others: Tensor  # int64 [n_o] cache slots of the other source rows of the chunk's in-edges, ascending
    graph: LocalGraph  # in-edges of ``rows`` over [rows | others]
    edges_from_other_chunks: Tensor  # int64 [num_chunks]: in-edges whose source is in chunk k
    other_runs: list[tuple[int, int, int]]  # (chunk k, start, stop): ``others[start:stop]`` are in chunk k


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


def chunk_slots(chunk_of: np.ndarray, n_owned: int) -> np.ndarray:
    """The cache slot of every row of ``[owned | halo]``: owned rows grouped by chunk, then halo rows
    grouped by chunk, in row order inside a group."""
    owned = np.argsort(chunk_of[:n_owned], kind="stable")
    order = np.concatenate([owned, n_owned + np.argsort(chunk_of[n_owned:], kind="stable")])
    slot_of = np.empty_like(order)
    slot_of[order] = np.arange(len(order))
    return slot_of


def as_index(slots: np.ndarray, device: torch.device | str = "cpu") -> slice | Tensor:
    """``slots`` as a slice when they are consecutive and ascending, else as an int64 tensor."""
    if len(slots) and np.array_equal(slots, np.arange(slots[0], slots[0] + len(slots))):
        return slice(int(slots[0]), int(slots[0]) + len(slots))
    return torch.from_numpy(np.ascontiguousarray(slots, dtype=np.int64)).to(device)


def build_chunks(
    chunk_of: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    in_degree: np.ndarray,
    out_degree: np.ndarray,
    num_chunks: int,
    device: torch.device | str = "cpu",
    *,
    slot_of: np.ndarray | None = None,
) -> list[Chunk]:
    """One :class:`Chunk` per chunk id for rows ``0..N-1`` with in-edge CSR ``indptr``/``indices`` over
    sources ``0..len(chunk_of)-1`` (their chunks in ``chunk_of``) and global degrees of those sources.
    ``slot_of``: the cache slot of every source (default: ``chunk_slots`` of this chunking)."""
    n = len(indptr) - 1
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    slot_of = chunk_slots(chunk_of, n) if slot_of is None else slot_of
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
        others = others[np.argsort(slot_of[others])]  # in slot order: reads walk the cache forward
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
        other_chunk = chunk_of[others].astype(np.int64)
        cuts = np.flatnonzero(np.diff(other_chunk)) + 1
        starts, stops = np.concatenate([[0], cuts]), np.concatenate([cuts, [len(others)]])
        runs = [(int(other_chunk[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b > a]
        chunks.append(
            Chunk(
                index=c,
                rows=torch.from_numpy(rows).to(device),
                slots=as_index(slot_of[rows], device),
                others=torch.from_numpy(slot_of[others]).to(device),
                graph=graph,
                edges_from_other_chunks=torch.from_numpy(per_chunk.astype(np.int64)),
                other_runs=runs,
            )
        )
    return chunks
