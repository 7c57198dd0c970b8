"""METIS 5.2 via ctypes (metis_lib), its options, the 32-bit partitioner input and the pymetis fallback."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.errors import DistGNNError
from distgnn.partitioning import assign_parts, edge_cut, methods, metis_lib
from distgnn.partitioning.edges import symmetric_csr

METIS = metis_lib.load()
needs_metis52 = pytest.mark.skipif(METIS is None, reason="cmeel-metis (METIS 5.2) is not installed")


def test_symmetric_csr_in_int32_equals_the_int64_one(toy_graph, monkeypatch):
    x64, a64 = symmetric_csr(toy_graph)
    import distgnn.partitioning.edges as edges

    monkeypatch.setattr(edges, "CHUNK_EDGES", 97)  # the narrowing runs chunk by chunk
    x32, a32 = symmetric_csr(toy_graph, dtype=np.int32)
    assert x32.dtype == a32.dtype == np.int32
    np.testing.assert_array_equal(x32, x64)
    np.testing.assert_array_equal(a32, a64)


@needs_metis52
def test_the_library_has_32_bit_indices_and_the_options_we_set():
    assert METIS.idx is np.int32 and METIS.real is np.float32
    assert METIS.fits(2**31 - 1, 2**31 - 1) and not METIS.fits(2**31, 10)
    assert methods.METIS_OPTIONS == {}  # METIS defaults: dropedges cut 29% more edges at 2M nodes


@needs_metis52
@pytest.mark.parametrize("options", [{}, {"dropedges": 1}])
def test_metis52_finds_the_planted_communities(make_graph, options):
    g = make_graph(num_nodes=3000, num_edges=30000, communities=4, p_intra=0.95, seed=2)
    xadj, adjncy = symmetric_csr(g, dtype=np.int32)
    parts = metis_lib.part_graph_kway(METIS, xadj, adjncy, 4, objective="cut", seed=0, options=options)
    assert parts.dtype == np.int64 and parts.shape == (g.num_nodes,)
    assert np.bincount(parts, minlength=4).max() <= 1.03 * g.num_nodes / 4 + 1
    # Reference: the cut of the planted split (community of each node, relabelled by METIS's parts).
    rng = np.random.default_rng(2)
    comm = rng.integers(0, 4, g.num_nodes)
    assert edge_cut(g, parts) <= 1.02 * edge_cut(g, comm)


@needs_metis52
def test_our_options_cut_no_more_than_dgls(make_graph):
    # DGL calls the same library with niter=1, niparts=1, dropedges=1; we keep METIS's refinement defaults.
    g = make_graph(num_nodes=3000, num_edges=30000, communities=4, p_intra=0.95, seed=2)
    xadj, adjncy = symmetric_csr(g, dtype=np.int32)
    dgl = {"niter": 1, "niparts": 1, "dropedges": 1}
    cuts = [
        edge_cut(g, metis_lib.part_graph_kway(METIS, xadj, adjncy, 4, objective="cut", seed=0, options=o))
        for o in (methods.METIS_OPTIONS, dgl)
    ]
    assert cuts[0] <= cuts[1]


@needs_metis52
def test_metis52_cut_is_as_good_as_pymetis(make_graph, monkeypatch):
    g = make_graph(num_nodes=4000, num_edges=40000, communities=16, p_intra=0.7, seed=5)
    ours = edge_cut(g, assign_parts(g, 8, method="metis", seed=0))
    monkeypatch.setattr(metis_lib, "load", lambda: None)
    reference = edge_cut(g, assign_parts(g, 8, method="metis", seed=0))
    assert ours <= 1.03 * reference


@needs_metis52
def test_metis52_is_reproducible_per_seed(make_graph):
    g = make_graph(num_nodes=2000, num_edges=16000, communities=8, p_intra=0.6, seed=1)
    a = assign_parts(g, 4, method="metis", seed=7)
    np.testing.assert_array_equal(a, assign_parts(g, 4, method="metis", seed=7))


@needs_metis52
def test_wrong_index_dtype_is_refused_before_calling_metis(toy_graph):
    xadj, adjncy = symmetric_csr(toy_graph)  # int64
    with pytest.raises(TypeError, match=r"^xadj must be a C-contiguous int32 array$"):
        metis_lib.part_graph_kway(METIS, xadj, adjncy, 2, objective="cut", seed=0, options={})


@needs_metis52
def test_a_metis_input_error_becomes_one_line(toy_graph):
    xadj, adjncy = symmetric_csr(toy_graph, dtype=np.int32)
    with pytest.raises(DistGNNError, match=r"^METIS failed to partition the graph: input error$"):
        metis_lib.part_graph_kway(METIS, xadj, adjncy, 2, objective="cut", seed=0, options={"ctype": 99})


def test_pymetis_fallback_when_the_library_is_missing(make_graph, monkeypatch):
    monkeypatch.setattr(metis_lib, "load", lambda: None)
    g = make_graph(num_nodes=2000, num_edges=20000, communities=4, seed=3)
    parts = assign_parts(g, 4, method="metis", seed=0)
    assert edge_cut(g, parts) < 0.25 * edge_cut(g, assign_parts(g, 4, method="random"))


@needs_metis52
def test_pymetis_fallback_when_the_graph_does_not_fit_the_index_type(make_graph, monkeypatch):
    tiny = metis_lib.MetisLib(lib=METIS.lib, idx=np.int8, real=METIS.real)  # holds at most 127
    monkeypatch.setattr(metis_lib, "load", lambda: tiny)
    called = []
    monkeypatch.setattr(metis_lib, "part_graph_kway", lambda *a, **k: called.append(1))
    g = make_graph(num_nodes=300, num_edges=2500, seed=4)
    parts = assign_parts(g, 3, method="metis", seed=0)
    assert not called and set(np.unique(parts)) == {0, 1, 2}


@pytest.mark.parametrize("seed", [-1, 2**31])
def test_a_seed_outside_metis_range_fails_before_any_work(toy_graph, tmp_path, seed):
    from distgnn.partitioning import partition_graph

    want = rf"^--seed must be in \[0, 2147483647\] for METIS, got {seed}$"
    with pytest.raises(DistGNNError, match=want):
        partition_graph(toy_graph, 2, tmp_path / "out", method="metis", seed=seed, progress=False)
    assert not (tmp_path / "out").exists()
    assign_parts(toy_graph, 2, method="random", seed=2**31)  # other methods take any seed
