"""What a rank holds for its graph: the local CSR built by filtering (same edges, same order as a sort
would give), no second copy of the edges on one process, no cached row ids, no mapped partition bulk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distgnn.data.synthetic import synthetic_graph
from distgnn.kernels import CSR
from distgnn.parallel.local_graph import LocalGraph
from distgnn.partitioning import load_part, partition_graph


@pytest.fixture(scope="module")
def part_dir(tmp_path_factory):
    graph = synthetic_graph(num_nodes=90, num_edges=500, num_features=4, num_classes=3, seed=2)
    path = str(tmp_path_factory.mktemp("lg") / "parts")
    partition_graph(graph, 1, path, progress=False)
    return path


def test_self_loops_are_filtered_keeping_each_rows_edge_order():
    # rows 0..3 over 5 sources (4 = a halo row); row 1 and 3 have self-loops, row 2 is empty
    indptr = np.array([0, 3, 6, 6, 8])
    indices = np.array([4, 2, 1, 1, 0, 3, 3, 2])
    in_deg = np.array([3, 2, 0, 1, 0])
    g = LocalGraph.from_csr(4, 1, indptr, indices, in_deg, np.ones(5, dtype=np.int64))
    src = torch.tensor([4, 2, 1, 0, 3, 2])
    dst = torch.tensor([0, 0, 0, 1, 1, 3])
    want = CSR.from_edges(src, dst, 4, 5)
    assert torch.equal(g.full.indptr, want.indptr) and torch.equal(g.full.indices, want.indices)
    assert g.full.num_src == 5
    assert g.inner.num_edges == 5 and g.boundary.num_edges == 1  # the edge from halo row 4


def test_one_process_keeps_one_copy_of_its_edges_and_no_row_ids(part_dir):
    part = load_part(part_dir, 0)
    g = LocalGraph.from_part(part)
    assert g.n_halo == 0 and g.inner is g.full  # every source owned: no second copy
    t = g.inner_loops.transposed()  # what one-process GCN training builds
    assert g.inner_loops.num_edges == g.full.num_edges + g.n_owned
    for csr in (g.full, g.inner_loops, t):
        assert csr._row_ids is None  # set-up used them once; they are not kept (one index per edge)
    assert torch.equal(g.full.row_ids(), CSR(g.full.indptr, g.full.indices, g.full.num_src).row_ids())


def test_the_strategy_drops_the_mapped_partition_bulk(part_dir):
    from distgnn.comm.layout import ProcessLayout
    from distgnn.config import TrainConfig
    from distgnn.parallel.build import build_strategy

    cfg = TrainConfig.from_flat(progress=False, model="gcn", hidden=8, epochs=1, kernel="cpu")
    strategy = build_strategy(cfg, part_dir, ProcessLayout.single())
    part = strategy.prop.part
    assert part.x.size == 0 and part.indices.size == 0
    assert not isinstance(part.x, np.memmap) and not isinstance(part.indices, np.memmap)
    assert part.n_halo == 0 and part.n_owned == 90  # the sizes are still there
    full = load_part(part_dir, 0)
    assert torch.equal(strategy.data.x, torch.from_numpy(np.array(full.x)))
