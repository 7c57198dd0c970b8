"""Partition quality: edge cut, balance, halo sizes, replication factor, halo volume.

What these mean for training: the edge cut is how many in-edges need a remote source; the halo of a part
is the set of remote source nodes it receives every layer (its size is the rows it receives, and the total
halo volume is the rows on the wire per layer); the replication factor is how many copies of a node's
row exist across parts on average; balance (max / mean over parts) bounds the slowest rank.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from distgnn.data.graph import Graph

from .edges import edge_chunks


@dataclass
class PartStats:
    """Sizes of one part, as measured while it is built."""

    n_owned: int
    n_halo: int
    n_edges: int  # in-edges of owned nodes
    n_cut: int  # of those, edges whose source is owned by another part
    n_train: int


def _balance(values: list[int]) -> float | None:
    mean = float(np.mean(values)) if values else 0.0
    return float(max(values) / mean) if mean > 0 else None


def quality_report(stats: list[PartStats]) -> dict[str, Any]:
    """Aggregate per-part stats into the report stored in meta.json and shown by ``distgnn info``."""
    num_nodes = sum(s.n_owned for s in stats)
    num_edges = sum(s.n_edges for s in stats)
    cut = sum(s.n_cut for s in stats)
    halo = [s.n_halo for s in stats]
    return {
        "edge_cut": int(cut),
        "edge_cut_fraction": float(cut / num_edges) if num_edges else 0.0,
        "node_balance": _balance([s.n_owned for s in stats]),
        "edge_balance": _balance([s.n_edges for s in stats]),
        "train_balance": _balance([s.n_train for s in stats]),
        "halo_volume": int(sum(halo)),
        "replication_factor": float((num_nodes + sum(halo)) / num_nodes) if num_nodes else 0.0,
        "parts": [asdict(s) for s in stats],
    }


def assignment_stats(graph: Graph, parts: np.ndarray, num_parts: int) -> list[PartStats]:
    """Per-part stats straight from an assignment (no relabelling, no files): for comparing methods.

    Cost O(P * E) vectorised work with an N-byte scratch mask per part; meant for evaluation and tests,
    the partitioner itself measures these while building.
    """
    parts = np.asarray(parts, dtype=np.int64)
    n = graph.num_nodes
    owned = np.bincount(parts, minlength=num_parts)
    edges = np.zeros(num_parts, dtype=np.int64)
    cut = np.zeros(num_parts, dtype=np.int64)
    halo_sizes = []
    for p in range(num_parts):
        seen = np.zeros(n, dtype=bool)
        for src, dst in edge_chunks(graph):
            into = parts[dst] == p
            edges[p] += int(into.sum())
            remote = src[into & (parts[src] != p)]
            cut[p] += remote.shape[0]
            seen[remote] = True
        halo_sizes.append(int(seen.sum()))
    train = np.bincount(parts[graph.train_mask], minlength=num_parts)
    return [
        PartStats(int(owned[p]), halo_sizes[p], int(edges[p]), int(cut[p]), int(train[p]))
        for p in range(num_parts)
    ]


def edge_cut(graph: Graph, parts: np.ndarray) -> int:
    """Number of (directed) edges whose endpoints lie in different parts."""
    parts = np.asarray(parts)
    return int(sum(int(np.count_nonzero(parts[src] != parts[dst])) for src, dst in edge_chunks(graph)))
