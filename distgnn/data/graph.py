"""The one in-memory graph type: an in-edge CSR plus node features, labels and split masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distgnn.data.mapped import pieces
from distgnn.errors import DistGNNError


@dataclass
class Graph:
    """A node-classification graph.

    Edges are stored as a CSR over *destinations*: the in-neighbours (sources) of node ``v`` are
    ``indices[indptr[v]:indptr[v + 1]]``. That is the layout aggregation reads ("sum over my in-edges").
    ``y`` is -1 where a node has no label; such nodes are never in a mask.
    """

    indptr: np.ndarray  # int64 [N + 1]
    indices: np.ndarray  # int64 [E], source of each in-edge
    x: np.ndarray  # float32 [N, F]
    y: np.ndarray  # int64 [N]
    train_mask: np.ndarray  # bool [N]
    val_mask: np.ndarray  # bool [N]
    test_mask: np.ndarray  # bool [N]
    num_classes: int
    name: str = "graph"

    @property
    def num_nodes(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def num_edges(self) -> int:
        return int(self.indices.shape[0])

    @property
    def feat_dim(self) -> int:
        return int(self.x.shape[1])

    def in_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def out_degree(self) -> np.ndarray:
        return np.bincount(self.indices, minlength=self.num_nodes).astype(np.int64)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(src, dst) COO arrays, in CSR order."""
        dst = np.repeat(np.arange(self.num_nodes, dtype=np.int64), np.diff(self.indptr))
        return self.indices.astype(np.int64, copy=False), dst

    def validate(self) -> None:
        """Raise DistGNNError with one clear line if the arrays are inconsistent."""
        n = self.num_nodes
        if n <= 0:
            raise DistGNNError("graph is empty: it has no nodes")
        if (
            self.indptr[0] != 0
            or self.indptr[-1] != self.indices.shape[0]
            or np.any(np.diff(self.indptr) < 0)
        ):
            raise DistGNNError(
                "graph CSR is malformed: indptr must start at 0, rise, and end at the edge count"
            )
        for piece in pieces(self.indices):  # pieces: a memory-mapped CSR's pages are not kept
            if piece.size and (piece.min() < 0 or piece.max() >= n):
                raise DistGNNError(f"graph has edge endpoints outside [0, {n})")
        for name in ("x", "y", "train_mask", "val_mask", "test_mask"):
            rows = getattr(self, name).shape[0]
            if rows != n:
                raise DistGNNError(f"{name} has {rows} rows but the graph has {n} nodes")
        if self.x.ndim != 2:
            raise DistGNNError(f"x must be 2-D [nodes, features], got shape {self.x.shape}")
        if not all(np.isfinite(piece).all() for piece in pieces(self.x)):
            raise DistGNNError("features contain NaN or Inf")
        labelled = self.y >= 0
        if np.any(self.y >= self.num_classes):
            raise DistGNNError(f"labels must be < num_classes={self.num_classes}")
        for name in ("train_mask", "val_mask", "test_mask"):
            if np.any(getattr(self, name) & ~labelled):
                raise DistGNNError(f"{name} contains nodes without a label (y = -1)")
