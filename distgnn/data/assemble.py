"""The last step of every loader: check the node arrays, normalise the edges, build and validate a Graph."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from distgnn.data.graph import Graph
from distgnn.data.mapped import pieces
from distgnn.data.normalize import build_csr, normalize_edges
from distgnn.errors import DistGNNError


def check_rows(what: str, arr: np.ndarray, num_nodes: int) -> None:
    """One-line error when a per-node array does not have one row per node."""
    if arr.ndim == 0 or arr.shape[0] != num_nodes:
        rows = arr.shape[0] if arr.ndim else 0
        raise DistGNNError(f"{what} has {rows} rows but the graph has {num_nodes} nodes")


def as_features(what: str, x: np.ndarray) -> np.ndarray:
    """float32 [N, F] features, rejecting non-numeric arrays and NaN/Inf."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DistGNNError(f"{what} must be 2-D [nodes, features], got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DistGNNError(f"{what} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not all(np.isfinite(piece).all() for piece in pieces(x)):  # pieces: a mapped x is not kept
        raise DistGNNError(f"{what} contain NaN or Inf")
    return x


def as_labels(what: str, y: np.ndarray) -> np.ndarray:
    """int64 [N] labels; -1 means unlabelled. Float labels may use NaN for unlabelled (as OGB does)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DistGNNError(f"{what} must be 1-D (one class per node), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        nan = np.isnan(y)
        known = y[~nan]
        if known.size and not np.all(known == np.round(known)):
            raise DistGNNError(f"{what} must be integer class IDs, got fractional values")
        y = np.where(nan, -1, y).astype(np.int64)
    elif not np.issubdtype(y.dtype, np.integer):
        raise DistGNNError(f"{what} must be integer class IDs, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and y.min() < -1:
        raise DistGNNError(f"{what} contain {int(y.min())}; class IDs must be >= 0 (or -1 for unlabelled)")
    return y


# (src, dst, num_nodes, symmetrize) -> the normalised in-edge CSR (indptr, indices); see in_memory_csr.
CsrBuild = Callable[[np.ndarray, np.ndarray, int, bool], tuple[np.ndarray, np.ndarray]]


def in_memory_csr(
    src: np.ndarray, dst: np.ndarray, num_nodes: int, symmetrize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The normalised CSR built in memory (``distgnn.data.csr_on_disk.CsrOnDisk`` gives the same values
    from files, under a memory budget)."""
    src, dst = normalize_edges(src, dst, num_nodes, symmetrize=symmetrize)
    return build_csr(src, dst, num_nodes)


def assemble_graph(
    src: np.ndarray,
    dst: np.ndarray,
    num_nodes: int,
    *,
    x: np.ndarray,
    y: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    name: str,
    num_classes: int | None = None,
    symmetrize: bool = True,
    csr: CsrBuild = in_memory_csr,
) -> Graph:
    """Normalise the edges (self-loops and duplicates dropped, optionally symmetrised), build the CSR with
    ``csr`` and validate. ``num_classes`` defaults to ``max(y) + 1`` (0 when nothing is labelled)."""
    if num_nodes <= 0:
        raise DistGNNError("graph is empty: it has no nodes")
    indptr, indices = csr(src, dst, num_nodes, symmetrize)
    del src, dst
    return graph_from_csr(indptr, indices, x=x, y=y, masks=masks, name=name, num_classes=num_classes)


def graph_from_csr(
    indptr: np.ndarray,
    indices: np.ndarray,
    *,
    x: np.ndarray,
    y: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    name: str,
    num_classes: int | None = None,
) -> Graph:
    """The validated Graph of a normalised CSR and its node arrays (``num_classes`` as in assemble_graph)."""
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    train, val, test = (np.asarray(m, dtype=bool) for m in masks)
    graph = Graph(indptr, indices, x, y, train, val, test, num_classes=max(num_classes, 0), name=name)
    graph.validate()
    return graph
