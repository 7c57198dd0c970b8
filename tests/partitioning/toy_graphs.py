"""Small hand-built graphs for the partitioner and CLI tests (no dependency on the loaders)."""

from __future__ import annotations

import numpy as np

from distgnn.data.graph import Graph


def build_graph(
    num_nodes: int = 600,
    num_edges: int = 6000,
    communities: int = 4,
    p_intra: float = 0.9,
    feat_dim: int = 5,
    num_classes: int = 3,
    seed: int = 0,
    name: str = "toy",
) -> Graph:
    """A directed community graph with self-loops, duplicate edges, isolated nodes and unlabelled nodes.

    Node IDs are shuffled relative to communities so that contiguous splitting has no free lunch.
    """
    rng = np.random.default_rng(seed)
    comm = rng.integers(0, communities, num_nodes)
    members = np.argsort(comm, kind="stable")
    starts = np.searchsorted(comm[members], np.arange(communities))
    sizes = np.bincount(comm, minlength=communities)
    src = rng.integers(0, num_nodes, num_edges)
    c = comm[src]
    intra = members[starts[c] + (rng.random(num_edges) * sizes[c]).astype(np.int64)]
    dst = np.where(rng.random(num_edges) < p_intra, intra, rng.integers(0, num_nodes, num_edges))
    # A few self-loops and an exact duplicate run; the last 5 nodes stay isolated.
    src[:7] = dst[:7]
    src, dst = np.concatenate([src, src[10:20]]), np.concatenate([dst, dst[10:20]])
    keep = (src < num_nodes - 5) & (dst < num_nodes - 5)
    src, dst = src[keep], dst[keep]
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=num_nodes), out=indptr[1:])
    y = np.where(rng.random(num_nodes) < 0.8, comm % num_classes, -1).astype(np.int64)
    split = rng.random(num_nodes)
    labelled = y >= 0
    return Graph(
        indptr=indptr,
        indices=src.astype(np.int64),
        x=rng.standard_normal((num_nodes, feat_dim)).astype(np.float32),
        y=y,
        train_mask=labelled & (split < 0.5),
        val_mask=labelled & (split >= 0.5) & (split < 0.75),
        test_mask=labelled & (split >= 0.75),
        num_classes=num_classes,
        name=name,
    )
