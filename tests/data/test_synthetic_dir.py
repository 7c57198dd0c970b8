"""The synthetic generator written to a graph directory a chunk at a time (write_synthetic_dir)."""

from __future__ import annotations

import numpy as np
import pytest

from distgnn.data import load_graph
from distgnn.data.csr_on_disk import CsrOnDisk
from distgnn.data.synthetic_dir import write_synthetic_dir
from distgnn.errors import DistGNNError


def test_the_model_holds_and_chunks_change_nothing(tmp_path):
    kw = {"num_nodes": 20_000, "num_edges": 200_000, "num_features": 64, "num_classes": 4, "seed": 3}
    write_synthetic_dir(tmp_path / "one", **kw, chunk_pairs=1 << 20)
    write_synthetic_dir(tmp_path / "many", **kw, chunk_pairs=1 << 16)  # 2 chunks of pairs
    a = load_graph(str(tmp_path / "one"), progress=False)
    b = load_graph(str(tmp_path / "many"), progress=False, csr=CsrOnDisk(tmp_path / "csr", 1 << 20))
    assert a.num_nodes == 20_000 and a.feat_dim == 64 and a.num_classes == 4
    assert 0.99 * 200_000 <= a.num_edges <= 200_000  # the few repeats drawn are merged on load
    dst = np.repeat(np.arange(a.num_nodes), np.diff(a.indptr))
    assert abs((a.y[a.indices] == a.y[dst]).mean() - 0.8) < 0.01  # homophily 0.8
    assert a.train_mask.sum() == 4 * 20 and a.val_mask.sum() == 2_000 and a.test_mask.sum() == 4_000
    # Communities are contiguous ID blocks (locality): most edges join nearby IDs.
    assert np.median(np.abs(a.indices - dst)) < 20_000 / 4
    # The random stream is drawn per pair, so the chunk size does not change the graph.
    for key in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(DistGNNError, match="homophily"):
        write_synthetic_dir(tmp_path / "g", num_nodes=100, num_edges=400, homophily=2.0)
    (tmp_path / "g").mkdir()
    with pytest.raises(DistGNNError, match="already exists"):
        write_synthetic_dir(tmp_path / "g", num_nodes=100, num_edges=400)
    assert [p.name for p in tmp_path.iterdir()] == ["g"]


def test_the_synthetic_spec_streams_with_stream_true(tmp_path):
    from distgnn.data import load_graph

    spec = "synthetic:nodes=2000,edges=20000,features=4,classes=4,seed=3"
    graph = load_graph(spec + ",stream=true", progress=False)
    write_synthetic_dir(
        tmp_path / "g", num_nodes=2000, num_edges=20000, num_features=4, num_classes=4, seed=3
    )
    expect = load_graph(str(tmp_path / "g"), progress=False)
    for key in ("indptr", "indices", "x", "y", "train_mask", "val_mask", "test_mask"):
        np.testing.assert_array_equal(getattr(graph, key), getattr(expect, key))
    assert not np.array_equal(load_graph(spec, progress=False).indptr, graph.indptr)  # another generator
    with pytest.raises(DistGNNError, match="shuffle is not supported"):
        load_graph(spec + ",stream=true,shuffle=false", progress=False)
