"""Normalisation rules for COO edge arrays, and the CSR build every loader ends with.

The rules are explicit so every source yields the same kind of graph: by default edges are made
symmetric (u->v implies v->u), self-loops are dropped (GCN adds its own, counted once) and duplicates
are merged. All work is vectorised numpy on one combined int64 key ``dst * N + src``: sorting that key
orders edges by destination then source (the CSR order), and equal neighbours mark duplicates. That keeps
a 40M-edge graph to a few int64 arrays of E entries and one radix-friendly sort.
"""

from __future__ import annotations

import numpy as np

from distgnn.errors import DistGNNError

MAX_KEYED_NODES = 3_037_000_499  # floor(sqrt(2**63 - 1)): dst * N + src must fit in int64


def _as_edge_arrays(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    src = np.asarray(src)
    dst = np.asarray(dst)
    if src.ndim != 1 or dst.ndim != 1 or src.shape[0] != dst.shape[0]:
        raise DistGNNError(
            f"edge arrays must be 1-D and equally long, got src {src.shape} and dst {dst.shape}"
        )
    for name, arr in (("src", src), ("dst", dst)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise DistGNNError(f"edge {name} must hold integer node IDs, got dtype {arr.dtype}")
    if num_nodes < 0 or num_nodes > MAX_KEYED_NODES:
        raise DistGNNError(f"num_nodes must be in [0, {MAX_KEYED_NODES}], got {num_nodes}")
    src = src.astype(np.int64, copy=False)
    dst = dst.astype(np.int64, copy=False)
    if src.size:
        lo = min(int(src.min()), int(dst.min()))
        hi = max(int(src.max()), int(dst.max()))
        if lo < 0 or hi >= num_nodes:
            bad = lo if lo < 0 else hi
            raise DistGNNError(f"edge endpoint {bad} is outside the node range [0, {num_nodes})")
    return src, dst


def edge_keys(src: np.ndarray, dst: np.ndarray, num_nodes: int, symmetrize: bool) -> np.ndarray:
    """int64 keys ``dst * N + src`` (and ``src * N + dst`` when symmetrising), built without temporaries."""
    e = src.shape[0]
    key = np.empty(2 * e if symmetrize else e, dtype=np.int64)
    np.multiply(dst, num_nodes, out=key[:e])
    key[:e] += src
    if symmetrize:
        np.multiply(src, num_nodes, out=key[e:])
        key[e:] += dst
    return key


def unique_sorted(key: np.ndarray) -> np.ndarray:
    """Drop repeats from a sorted array (np.unique without its extra copies)."""
    if key.size < 2:
        return key
    keep = np.empty(key.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(key[1:], key[:-1], out=keep[1:])
    return key if keep.all() else key[keep]


def normalize_edges(
    src: np.ndarray,
    dst: np.ndarray,
    num_nodes: int,
    *,
    symmetrize: bool = True,
    remove_self_loops: bool = True,
    dedup: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the normalisation rules to a COO edge list and return int64 ``(src, dst)``.

    With ``dedup`` the result is sorted by (dst, src), i.e. already in CSR order. Without it, edge order is
    kept (with the reversed copies appended when symmetrising). Endpoints outside ``[0, num_nodes)`` raise.
    """
    src, dst = _as_edge_arrays(src, dst, num_nodes)
    if remove_self_loops:
        loop = src == dst
        if loop.any():
            keep = ~loop
            src, dst = src[keep], dst[keep]
    if not dedup:
        if symmetrize:
            return np.concatenate([src, dst]), np.concatenate([dst, src])
        return src.copy(), dst.copy()
    key = edge_keys(src, dst, num_nodes, symmetrize)
    key.sort()
    key = unique_sorted(key)
    new_dst, new_src = np.divmod(key, num_nodes) if num_nodes else (key, key)
    return new_src, new_dst


def add_self_loops(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Append one self-loop per node (v->v for every v), after the given edges.

    Existing self-loops are kept; call ``normalize_edges`` first to have exactly one loop per node.
    """
    src, dst = _as_edge_arrays(src, dst, num_nodes)
    loops = np.arange(num_nodes, dtype=np.int64)
    return np.concatenate([src, loops]), np.concatenate([dst, loops])


def csr_from_sorted_keys(key: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR from ascending keys ``dst * N + src``. Overwrites ``key`` with the column indices."""
    indptr = np.searchsorted(key, np.arange(num_nodes + 1, dtype=np.int64) * num_nodes, side="left")
    indices = np.remainder(key, num_nodes, out=key) if num_nodes else key
    return indptr.astype(np.int64, copy=False), indices


def build_csr(src: np.ndarray, dst: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """In-edge CSR ``(indptr, indices)``: the sources of node v are ``indices[indptr[v]:indptr[v+1]]``.

    Sources are sorted within each row. Duplicates and self-loops are kept as given (normalise first).
    """
    src, dst = _as_edge_arrays(src, dst, num_nodes)
    key = edge_keys(src, dst, num_nodes, symmetrize=False)
    if key.size > 1 and not bool(np.all(key[1:] >= key[:-1])):
        key.sort()
    return csr_from_sorted_keys(key, num_nodes)
