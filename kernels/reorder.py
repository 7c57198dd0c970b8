"""Node orders that make neighbour gathers local: nodes aggregated together end up stored together.

A gather ``x[j]`` over the in-edges of consecutive rows touches far fewer distinct cache lines and pages
when neighbours have nearby ids. ``locality_order`` returns a permutation ``perm`` (new id -> old id);
``permute_csr`` relabels a square CSR with it, and features follow with ``x[perm]``.
"""

from __future__ import annotations

import numpy as np

from distgnn.errors import DistGNNError

METHODS = ("rcm", "degree", "identity")


def _as_arrays(indptr, indices) -> tuple[np.ndarray, np.ndarray]:
    ip = np.asarray(indptr.cpu() if hasattr(indptr, "cpu") else indptr, dtype=np.int64)
    ix = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices, dtype=np.int64)
    if ip.ndim != 1 or ip.size < 1 or ip[0] != 0 or ip[-1] != ix.size:
        raise DistGNNError("locality_order needs a CSR: indptr must start at 0 and end at the edge count")
    n = ip.size - 1
    if ix.size and (ix.min() < 0 or ix.max() >= n):
        raise DistGNNError(f"locality_order needs a square graph: indices must lie in [0, {n})")
    return ip, ix


def locality_order(indptr, indices, method: str = "rcm") -> np.ndarray:
    """A node permutation (int64, new id -> old id) for a square CSR.

    ``rcm``: reverse Cuthill-McKee on the symmetrised graph (scipy), a bandwidth-reducing BFS order;
    ``degree``: by descending in-degree (hubs first, so their rows stay hot); ``identity``: unchanged.
    """
    if method not in METHODS:
        raise DistGNNError(f"unknown locality order {method!r}; choose one of {', '.join(METHODS)}")
    ip, ix = _as_arrays(indptr, indices)
    n = ip.size - 1
    if method == "identity":
        return np.arange(n, dtype=np.int64)
    if method == "degree":
        return np.argsort(-np.diff(ip), kind="stable").astype(np.int64)
    try:
        import scipy.sparse as sp
        from scipy.sparse.csgraph import reverse_cuthill_mckee
    except ImportError as exc:
        raise DistGNNError("locality_order(method='rcm') needs scipy (pip install scipy)") from exc
    a = sp.csr_matrix((np.ones(ix.size, dtype=np.int8), ix, ip), shape=(n, n))
    sym = (a + a.T).tocsr()
    return np.asarray(reverse_cuthill_mckee(sym, symmetric_mode=True), dtype=np.int64)


def permute_csr(indptr, indices, perm) -> tuple[np.ndarray, np.ndarray]:
    """Relabel a square CSR by ``perm`` (new -> old): row r of the result is old row perm[r]."""
    ip, ix = _as_arrays(indptr, indices)
    perm = np.asarray(perm, dtype=np.int64)
    n = ip.size - 1
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise DistGNNError(f"perm must be a permutation of range({n})")
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n, dtype=np.int64)
    deg = np.diff(ip)[perm]
    new_ip = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(deg, out=new_ip[1:])
    starts = ip[perm]
    # Gather each old row's slice in the new row order, then rename the sources.
    offs = np.arange(ix.size, dtype=np.int64) - np.repeat(new_ip[:-1], deg)
    new_ix = inv[ix[np.repeat(starts, deg) + offs]]
    return new_ip, new_ix
