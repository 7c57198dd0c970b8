"""Edge sources read in bounded chunks: a text edge list and a graph directory, built out of core, give the
CSR their in-memory loaders give; bad IDs name the file's line."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import load_edgelist, load_graph_dir, save_graph_dir
from distgnn.data.csr_on_disk import MIN_MEMORY, build_csr_on_disk, load_csr_files
from distgnn.data.edge_chunks import array_chunks, graph_dir_edges
from distgnn.data.edgelist import edgelist_edges, edgelist_node_count
from distgnn.errors import DistGNNError

TEXT = """# a SNAP-style header
0 1
1,2
2\t0   # trailing comment

3 3
4 , 1
1 2
7 5
"""


def _build(stream, out, symmetrize=True):
    build_csr_on_disk(
        stream.chunks,
        stream.num_nodes,
        out,
        memory_bytes=MIN_MEMORY,
        symmetrize=symmetrize,
        num_edges=stream.num_edges,
    )
    return load_csr_files(out)


@pytest.mark.parametrize("chunk_bytes", [4, 16, 1 << 20])
@pytest.mark.parametrize("symmetrize", [True, False])
def test_text_edge_list_matches_load_edgelist(tmp_path, chunk_bytes, symmetrize):
    path = tmp_path / "edges.txt"
    path.write_text(TEXT)
    stream = edgelist_edges(path, chunk_bytes=chunk_bytes)
    assert (stream.num_nodes, stream.num_edges) == (8, 7)
    assert sum(len(s) for s, _ in stream.chunks) == 7 == sum(len(s) for s, _ in stream.chunks)  # re-iterable
    indptr, indices = _build(stream, tmp_path / "csr", symmetrize)
    g = load_edgelist(path, symmetrize=symmetrize)
    np.testing.assert_array_equal(indptr, g.indptr)
    np.testing.assert_array_equal(indices, g.indices)


def test_a_larger_text_edge_list_in_many_chunks(tmp_path):
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 5000, 60_000), rng.integers(0, 5000, 60_000)
    path = tmp_path / "edges.txt"
    path.write_text("".join(f"{s} {d}\n" for s, d in zip(src.tolist(), dst.tolist(), strict=True)))
    stream = edgelist_edges(path, num_nodes=5000, chunk_bytes=4096)
    assert stream.num_edges is None
    indptr, indices = _build(stream, tmp_path / "csr")
    g = load_edgelist(path)
    np.testing.assert_array_equal(indptr, g.indptr)
    np.testing.assert_array_equal(indices, g.indices)


@pytest.mark.parametrize(
    ("text", "num_nodes", "message"),
    [
        ("0 1\n# c\n2 -4\n", None, "edges.txt:3: negative node ID -4"),
        ("0 1\n\n1 2\n2 9\n", 5, "edges.txt:4: node ID 9 is outside the node range [0, 5)"),
        ("0 1\n1 x\n", None, "edges.txt:2: expected two integer node IDs, got '1 x'"),
    ],
)
def test_text_errors_name_the_line(tmp_path, text, num_nodes, message):
    path = tmp_path / "edges.txt"
    path.write_text(text)
    with pytest.raises(DistGNNError) as err:
        stream = edgelist_edges(path, num_nodes=num_nodes, chunk_bytes=4)
        build_csr_on_disk(stream.chunks, stream.num_nodes, tmp_path / "csr", memory_bytes=MIN_MEMORY)
    assert str(err.value) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edges.txt"]


def test_node_count_of_an_empty_file(tmp_path):
    path = tmp_path / "edges.txt"
    path.write_text("# nothing\n")
    assert edgelist_node_count(path) == (0, 0)


@pytest.mark.parametrize("symmetrize", [True, False])
def test_graph_dir_matches_load_graph_dir(tmp_path, symmetrize):
    rng = np.random.default_rng(1)
    n, e = 300, 4000
    arrays = {
        "edge_src": rng.integers(0, n, e).astype(np.int32),
        "edge_dst": rng.integers(0, n - 10, e).astype(np.int32),
        "x": np.ones((n, 2), dtype=np.float32),
        "y": np.zeros(n, dtype=np.int64),
        "train_mask": np.ones(n, dtype=bool),
        "val_mask": np.zeros(n, dtype=bool),
        "test_mask": np.zeros(n, dtype=bool),
    }
    save_graph_dir(arrays, tmp_path / "g")
    stream = graph_dir_edges(tmp_path / "g", chunk_edges=333)
    assert (stream.num_nodes, stream.num_edges) == (n, e)
    indptr, indices = _build(stream, tmp_path / "csr", symmetrize)
    g = load_graph_dir(tmp_path / "g", symmetrize=symmetrize)
    np.testing.assert_array_equal(indptr, g.indptr)
    np.testing.assert_array_equal(indices, g.indices)


def test_graph_dir_errors(tmp_path):
    with pytest.raises(DistGNNError, match="not a directory"):
        graph_dir_edges(tmp_path / "none")
    (tmp_path / "g").mkdir()
    with pytest.raises(DistGNNError, match="graph.json does not exist"):
        graph_dir_edges(tmp_path / "g")


def test_array_chunks_are_views_and_checked():
    src, dst = np.arange(10), np.arange(10) + 1
    chunks = list(array_chunks(src, dst, 4))
    assert [len(s) for s, _ in chunks] == [4, 4, 2] and all(np.shares_memory(s, src) for s, _ in chunks)
    with pytest.raises(DistGNNError, match="equally long"):
        array_chunks(src, dst[:3])
    with pytest.raises(DistGNNError, match="chunk_edges must be >= 1"):
        array_chunks(src, dst, 0)
