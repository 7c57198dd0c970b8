"""Assignment methods, the symmetrised partitioner input, and the quality report."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.errors import DistGNNError
from distgnn.partitioning import assign_parts, assignment_stats, edge_cut, load_part, partition_graph
from distgnn.partitioning.edges import global_degrees, symmetric_csr
from distgnn.partitioning.methods import write_parhip


def test_symmetric_csr_matches_a_set_reference(toy_graph):
    xadj, adjncy = symmetric_csr(toy_graph)
    src, dst = toy_graph.edges()
    pairs = {(int(a), int(b)) for a, b in zip(src, dst, strict=True) if a != b}
    pairs |= {(b, a) for a, b in pairs}
    want = sorted(pairs)
    got = [(u, int(v)) for u in range(toy_graph.num_nodes) for v in adjncy[xadj[u] : xadj[u + 1]]]
    assert got == want
    assert xadj.dtype == adjncy.dtype == np.int64


def test_symmetric_csr_with_small_chunks_is_unchanged(toy_graph, monkeypatch):
    whole = symmetric_csr(toy_graph)
    import distgnn.partitioning.edges as edges

    monkeypatch.setattr(edges, "CHUNK_EDGES", 97)
    chunked = symmetric_csr(toy_graph)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_global_degrees_skip_self_loops(toy_graph):
    src, dst = toy_graph.edges()
    assert np.any(src == dst)  # the fixture has self-loops
    in_deg, out_deg = global_degrees(toy_graph)
    np.testing.assert_array_equal(in_deg, np.bincount(dst[src != dst], minlength=toy_graph.num_nodes))
    np.testing.assert_array_equal(out_deg, np.bincount(src[src != dst], minlength=toy_graph.num_nodes))


@pytest.mark.parametrize("method", ["metis", "kaminpar"])
def test_graph_partitioners_cut_far_fewer_edges_than_random(make_graph, method):
    g = make_graph(num_nodes=2000, num_edges=20000, communities=4, seed=3)
    cut = edge_cut(g, assign_parts(g, 4, method=method, seed=0))
    random_cut = edge_cut(g, assign_parts(g, 4, method="random", seed=0))
    # 10% of edges are inter-community; a random 4-way split cuts ~75% of all edges.
    assert cut < 0.25 * random_cut
    parts = assign_parts(g, 4, method=method, seed=0)
    assert np.bincount(parts, minlength=4).max() <= 1.05 * g.num_nodes / 4


def test_volume_objective_gives_a_valid_balanced_partition(make_graph):
    g = make_graph(num_nodes=1500, num_edges=12000, seed=1)
    parts = assign_parts(g, 3, method="metis", objective="vol", seed=0)
    assert parts.dtype == np.int64 and set(np.unique(parts)) == {0, 1, 2}
    assert edge_cut(g, parts) < 0.5 * edge_cut(g, assign_parts(g, 3, method="random"))


def test_seeds_make_assignments_reproducible(toy_graph):
    for method in ("metis", "kaminpar", "random"):
        # KaMinPar is bit-reproducible with one thread only.
        a = assign_parts(toy_graph, 3, method=method, seed=7, threads=1)
        b = assign_parts(toy_graph, 3, method=method, seed=7, threads=1)
        np.testing.assert_array_equal(a, b, err_msg=method)
    assert not np.array_equal(
        assign_parts(toy_graph, 3, method="random", seed=1),
        assign_parts(toy_graph, 3, method="random", seed=2),
    )


def test_contiguous_and_random_baselines(toy_graph):
    n = toy_graph.num_nodes  # 600
    contiguous = assign_parts(toy_graph, 4, method="contiguous")
    np.testing.assert_array_equal(contiguous, np.repeat(np.arange(4), n // 4))
    rnd = assign_parts(toy_graph, 4, method="random", seed=0)
    np.testing.assert_array_equal(np.bincount(rnd), [n // 4] * 4)
    np.testing.assert_array_equal(assign_parts(toy_graph, 1, method="metis"), np.zeros(n, dtype=np.int64))


def test_edgeless_graph_gets_a_balanced_split(make_graph):
    g = make_graph(num_nodes=10, num_edges=0)
    for method in ("metis", "kaminpar"):
        np.testing.assert_array_equal(np.bincount(assign_parts(g, 3, method=method)), [3, 4, 3])


def test_parhip_writer_layout(tmp_path):
    xadj = np.array([0, 2, 3, 4], dtype=np.int64)
    adjncy = np.array([1, 2, 0, 0], dtype=np.int64)
    path = tmp_path / "g.parhip"
    write_parhip(str(path), xadj, adjncy)
    raw = path.read_bytes()
    header = np.frombuffer(raw[:24], dtype="<u8")
    np.testing.assert_array_equal(header, [1 | 2 | 8, 3, 4])
    offsets = np.frombuffer(raw[24 : 24 + 4 * 8], dtype="<u8")
    np.testing.assert_array_equal(offsets, 24 + 4 * 8 + 4 * xadj)
    np.testing.assert_array_equal(np.frombuffer(raw[56:], dtype="<u4"), adjncy)


def test_quality_report_matches_an_independent_count(make_graph, tmp_path):
    g = make_graph(num_nodes=300, num_edges=2500, seed=4)
    meta = partition_graph(g, 3, tmp_path / "out", method="metis", progress=False)
    q = meta["quality"]
    # Recover the assignment by original ID from the written parts.
    parts = np.empty(g.num_nodes, dtype=np.int64)
    for p in range(3):
        parts[load_part(tmp_path / "out", p).orig_ids] = p
    src, dst = g.edges()
    cut_pairs = parts[src] != parts[dst]
    assert q["edge_cut"] == int(cut_pairs.sum()) == edge_cut(g, parts)
    assert q["edge_cut_fraction"] == pytest.approx(cut_pairs.mean())
    halos = [
        {int(s) for s, d in zip(src, dst, strict=True) if parts[d] == p and parts[s] != p} for p in range(3)
    ]
    assert [s["n_halo"] for s in q["parts"]] == [len(h) for h in halos]
    assert q["halo_volume"] == sum(len(h) for h in halos)
    assert q["replication_factor"] == pytest.approx((g.num_nodes + sum(len(h) for h in halos)) / g.num_nodes)
    sizes = np.bincount(parts)
    assert q["node_balance"] == pytest.approx(sizes.max() / sizes.mean())
    edges = np.bincount(parts[dst], minlength=3)
    assert q["edge_balance"] == pytest.approx(edges.max() / edges.mean())
    train = np.bincount(parts[g.train_mask], minlength=3)
    assert q["train_balance"] == pytest.approx(train.max() / train.mean())
    # The standalone evaluator agrees with what the builder measured.
    assert [vars(s) for s in assignment_stats(g, parts, 3)] == q["parts"]


def test_bad_requests_fail_with_one_line(toy_graph, make_graph):
    small = make_graph(num_nodes=10, num_edges=20)
    with pytest.raises(DistGNNError, match=r"^cannot split 10 nodes into 11 parts: use at most 10 parts$"):
        assign_parts(small, 11)
    with pytest.raises(DistGNNError, match=r"^--parts must be at least 1, got 0$"):
        assign_parts(small, 0)
    with pytest.raises(
        DistGNNError, match=r"^unknown partition method 'spectral': choose one of metis, kaminpar"
    ):
        assign_parts(small, 2, method="spectral")
    with pytest.raises(
        DistGNNError, match=r"^--objective vol needs --method metis: KaMinPar only minimises the edge cut$"
    ):
        assign_parts(small, 2, method="kaminpar", objective="vol")


def test_missing_kaminpar_gives_the_install_hint(toy_graph, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_kaminpar(name, *args, **kwargs):
        if name == "kaminpar":
            raise ImportError("No module named 'kaminpar'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kaminpar)
    with pytest.raises(DistGNNError) as err:
        assign_parts(toy_graph, 2, method="kaminpar")
    assert (
        str(err.value) == "--method kaminpar requires the kaminpar package: pip install 'distgnn[kaminpar]'"
    )
