"""A source's size read from its headers, before loading: what `distgnn partition` plans memory from."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from distgnn.data import save_graph_dir, save_npz, synthetic_graph
from distgnn.data.shape import EDGES_PER_NODE, SourceShape, source_shape
from distgnn.errors import DistGNNError


def test_exact_sizes_from_headers(tmp_path):
    graph = synthetic_graph(300, 2000, 5, seed=1)
    save_npz(graph, tmp_path / "g.npz")
    save_graph_dir(graph, tmp_path / "gdir")
    want = SourceShape(300, graph.num_edges, 5)  # the schema stores the normalised edges
    assert source_shape(str(tmp_path / "g.npz")) == want
    assert source_shape(str(tmp_path / "gdir")) == dataclasses.replace(want, streamed=True)  # mapped
    assert source_shape("synthetic:nodes=1e6,edges=2e7,features=8") == SourceShape(10**6, 2 * 10**7, 8)
    streamed = source_shape("synthetic:nodes=1e6,edges=2e7,features=8,stream=true")
    assert streamed == SourceShape(10**6, 2 * 10**7, 8, streamed=True)


def test_an_edge_list_is_estimated_from_its_size_and_first_lines(tmp_path):
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 50_000, size=(200_000, 2))
    path = tmp_path / "edges.txt"
    np.savetxt(path, pairs, fmt="%d")
    shape = source_shape(str(path))
    assert not shape.exact and shape.streamed  # read in chunks
    assert 0.9 * 200_000 <= shape.num_edges <= 1.1 * 200_000
    assert shape.num_nodes == shape.num_edges // EDGES_PER_NODE  # assumed, not read


def test_unreadable_headers_are_one_line(tmp_path):
    bad = tmp_path / "g.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DistGNNError, match=r"g\.npz: cannot read its size"):
        source_shape(str(bad))
