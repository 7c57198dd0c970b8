"""Edge sources read in bounded chunks, for the out-of-core CSR build (``distgnn.data.csr_on_disk``).

Each source is an ``EdgeStream``: an iterable of ``(src, dst)`` integer array pairs, the node count, and
the input edge count when it is known (it sizes the buckets). The chunks are re-iterable: each iteration
reads the source again.

- ``array_chunks``: slices of a ``(src, dst)`` pair already in memory or memory-mapped (no copies).
- ``graph_dir_edges``: a graph directory's ``edge_src.npy`` / ``edge_dst.npy``, memory-mapped; the node
  count is the row count of ``x.npy``, as when the directory is loaded.
- ``distgnn.data.edgelist.edgelist_edges``: a text edge list (or OGB's ``edge.csv.gz``), parsed a chunk
  of text at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distgnn import jsonio
from distgnn.data.graph_dir import FORMAT_NAME, FORMAT_VERSION, MARKER, open_npy
from distgnn.data.mapped import release
from distgnn.errors import DistGNNError

CHUNK_EDGES = 1 << 22


@dataclass(frozen=True)
class EdgeStream:
    """``chunks`` of ``(src, dst)`` over nodes ``[0, num_nodes)``; ``num_edges`` when known up front."""

    chunks: Iterable[tuple[np.ndarray, np.ndarray]]
    num_nodes: int
    num_edges: int | None


class _Rechunk:
    """Re-iterable slices of two equally long 1-D arrays."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, chunk_edges: int) -> None:
        self.src, self.dst, self.step = src, dst, chunk_edges

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for a in range(0, self.src.shape[0], self.step):
            yield self.src[a : a + self.step], self.dst[a : a + self.step]
            release(self.src, self.dst)  # memory-mapped: the pages read are not kept


def array_chunks(
    src: np.ndarray, dst: np.ndarray, chunk_edges: int = CHUNK_EDGES
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Views of ``chunk_edges`` edges at a time of an in-memory or memory-mapped ``(src, dst)`` pair."""
    if src.ndim != 1 or dst.ndim != 1 or src.shape != dst.shape:
        raise DistGNNError(
            f"edge arrays must be 1-D and equally long, got src {src.shape} and dst {dst.shape}"
        )
    if chunk_edges < 1:
        raise DistGNNError(f"chunk_edges must be >= 1, got {chunk_edges}")
    return _Rechunk(src, dst, chunk_edges)


def graph_dir_edges(path: str | os.PathLike[str], chunk_edges: int = CHUNK_EDGES) -> EdgeStream:
    """The edges of a graph directory, memory-mapped, in chunks (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise DistGNNError(f"{path}: not a directory (a graph directory holds {MARKER} and .npy files)")
    jsonio.read_document(path / MARKER, FORMAT_NAME, FORMAT_VERSION)
    files = {k: path / f"{k}.npy" for k in ("edge_src", "edge_dst", "x")}
    missing = [f.name for f in files.values() if not f.exists()]
    if missing:
        raise DistGNNError(f"{path}: missing {', '.join(missing)}")
    src, dst, x = (open_npy(f) for f in files.values())
    if x.ndim == 0:
        raise DistGNNError(f"{files['x']}: x must be [nodes, features], got a scalar")
    try:
        chunks = array_chunks(src, dst, chunk_edges)
    except DistGNNError as err:
        raise DistGNNError(f"{files['edge_src']}, {files['edge_dst']}: {err}") from None
    return EdgeStream(chunks, int(x.shape[0]), int(src.shape[0]))
