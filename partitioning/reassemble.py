"""Rebuild the original graph (original node IDs, original edge order) from a partition directory.

The inverse of partitioning: used by the tests to prove nothing was lost or reordered, and handy for a
user who wants the whole graph back from a directory they were given.
"""

from __future__ import annotations

import os

import numpy as np

from distgnn.data.graph import Graph

from .format import load_meta, load_part


def reassemble(part_dir: str | os.PathLike, *, verify: bool = True) -> Graph:
    """Load every part and return the source graph in its original node numbering."""
    meta = load_meta(part_dir)
    parts = [load_part(part_dir, p, mmap=True, verify=verify) for p in range(int(meta["num_parts"]))]
    n = int(meta["num_nodes"])
    order = np.concatenate([np.asarray(p.orig_ids) for p in parts])  # new global ID -> original ID

    deg_new = np.concatenate([np.diff(p.indptr) for p in parts])
    deg_old = np.empty(n, dtype=np.int64)
    deg_old[order] = deg_new
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg_old, out=indptr[1:])

    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    for part in parts:
        start = part.node_range[0]
        gids = np.concatenate([np.arange(start, part.node_range[1], dtype=np.int64), part.halo_gids])
        src_old = order[gids[part.indices]]
        rows_old = np.asarray(part.orig_ids)
        deg = np.diff(part.indptr)
        pos = np.repeat(indptr[rows_old] - part.indptr[:-1], deg) + np.arange(part.indices.shape[0])
        indices[pos] = src_old

    def gather(name: str) -> np.ndarray:
        first = np.asarray(getattr(parts[0], name))
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        out[order] = np.concatenate([np.asarray(getattr(p, name)) for p in parts])
        return out

    return Graph(
        indptr=indptr,
        indices=indices,
        x=gather("x"),
        y=gather("y"),
        train_mask=gather("train_mask"),
        val_mask=gather("val_mask"),
        test_mask=gather("test_mask"),
        num_classes=int(meta["num_classes"]),
        name=str(meta.get("dataset", "graph")),
    )
