"""Normalisation rules and the CSR build, checked against plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import add_self_loops, build_csr, normalize_edges
from distgnn.errors import DistGNNError


def _random_edges(seed: int, n: int = 30, e: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, e), rng.integers(0, n, e)  # plenty of duplicates and self-loops


def _reference(src, dst, symmetrize, remove_self_loops):
    pairs = set(zip(src.tolist(), dst.tolist(), strict=True))
    if symmetrize:
        pairs |= {(d, s) for s, d in pairs}
    if remove_self_loops:
        pairs = {(s, d) for s, d in pairs if s != d}
    return sorted(pairs, key=lambda p: (p[1], p[0]))


@pytest.mark.parametrize("symmetrize", [True, False])
@pytest.mark.parametrize("remove_self_loops", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normalize_matches_set_reference(symmetrize, remove_self_loops, seed):
    src, dst = _random_edges(seed)
    s, d = normalize_edges(src, dst, 30, symmetrize=symmetrize, remove_self_loops=remove_self_loops)
    assert s.dtype == np.int64 and d.dtype == np.int64
    assert list(zip(s.tolist(), d.tolist(), strict=True)) == _reference(
        src, dst, symmetrize, remove_self_loops
    )


def test_normalize_without_dedup_keeps_order_and_repeats():
    src, dst = np.array([0, 1, 1, 2]), np.array([1, 1, 2, 0])
    s, d = normalize_edges(src, dst, 3, dedup=False)
    assert s.tolist() == [0, 1, 2, 1, 2, 0]
    assert d.tolist() == [1, 2, 0, 0, 1, 2]
    s, d = normalize_edges(np.array([0, 0]), np.array([1, 1]), 2, symmetrize=False, dedup=False)
    assert s.tolist() == [0, 0] and d.tolist() == [1, 1]


def test_normalize_empty_and_all_self_loops():
    s, d = normalize_edges(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 4)
    assert s.shape == (0,) and d.shape == (0,)
    s, d = normalize_edges(np.array([2, 3]), np.array([2, 3]), 4)
    assert s.shape == (0,) and d.shape == (0,)


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        ([0, -1], [1, 2], "edge endpoint -1 is outside the node range [0, 5)"),
        ([0, 1], [1, 5], "edge endpoint 5 is outside the node range [0, 5)"),
        ([0, 1], [1], "edge arrays must be 1-D and equally long, got src (2,) and dst (1,)"),
        ([0.0, 1.0], [1, 2], "edge src must hold integer node IDs, got dtype float64"),
    ],
)
def test_normalize_rejects_bad_edges(src, dst, message):
    with pytest.raises(DistGNNError) as err:
        normalize_edges(np.array(src), np.array(dst), 5)
    assert str(err.value) == message


def test_build_csr_matches_reference_and_keeps_duplicates():
    src, dst = _random_edges(3, n=12, e=80)
    indptr, indices = build_csr(src, dst, 12)
    assert indptr.dtype == np.int64 and indices.dtype == np.int64
    assert indptr.tolist() == [0, *np.cumsum(np.bincount(dst, minlength=12)).tolist()]
    for v in range(12):
        assert indices[indptr[v] : indptr[v + 1]].tolist() == sorted(src[dst == v].tolist())


def test_build_csr_on_normalised_edges_and_isolated_nodes():
    s, d = normalize_edges(np.array([0, 0]), np.array([1, 3]), 5)
    indptr, indices = build_csr(s, d, 5)
    assert indptr.tolist() == [0, 2, 3, 3, 4, 4]
    assert indices.tolist() == [1, 3, 0, 0]


def test_add_self_loops_appends_one_per_node():
    s, d = add_self_loops(np.array([0, 2]), np.array([1, 0]), 3)
    assert s.tolist() == [0, 2, 0, 1, 2]
    assert d.tolist() == [1, 0, 0, 1, 2]


def test_normalize_at_scale_matches_np_unique():
    # A behavioural smoke check at scale: same counts as np.unique over (min, max) pairs.
    rng = np.random.default_rng(0)
    n = 50_000
    src, dst = rng.integers(0, n, 300_000), rng.integers(0, n, 300_000)
    s, d = normalize_edges(src, dst, n)
    keep = src != dst
    undirected = np.unique(np.minimum(src, dst)[keep] * n + np.maximum(src, dst)[keep])
    assert s.shape[0] == 2 * undirected.shape[0]
    key = d * n + s
    assert np.all(key[1:] > key[:-1])  # sorted by (dst, src), no repeats
